"""Chains built from settings over the real HTTP providers: fallback order, refusal handling,
cost totals, and the checks behind `storyloom providers`."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import SecretStr

from providers.base import ImageRequest, ImageResult, ProviderAuthError
from providers.check import check_chains
from providers.config import ProviderSettings
from providers.pricing import PriceTable
from providers.refusal import SceneRefused, retry_refused, soften_prompt
from providers.registry import ChainFailed, build_chain
from tests.fakes.helpers import SleepRecorder, provider_settings
from tests.fakes.services import FakeElevenLabs, FakeFal, FakeOpenAI, FakeReplicate


@pytest_asyncio.fixture
async def fal() -> AsyncIterator[FakeFal]:
    server = await FakeFal().start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


def image_chain(settings: ProviderSettings):  # type: ignore[no-untyped-def]
    chain = build_chain("image", settings.image, settings)
    for p in chain.providers:
        p.service.retry.sleep = SleepRecorder()
    return chain


def req(prompt: str = "a lighthouse at dusk", count: int = 1) -> ImageRequest:
    return ImageRequest(prompt=prompt, width=512, height=512, seed=5, count=count)


async def test_bad_key_falls_through_to_the_next_provider(
    fal: FakeFal, oai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    settings = provider_settings(
        image="fal:fal-ai/flux/dev, openai:gpt-image-1",
        fal_base_url=fal.url, fal_key=SecretStr("fal-wrong-key-987654"),
        openai_base_url=f"{oai.url}/v1",
    )
    chain = image_chain(settings)
    assert chain.names == ["fal", "openai"]
    with caplog.at_level(logging.WARNING):
        result: ImageResult = await chain.run(lambda p: p.generate(req()))
    assert result.usage.provider == "openai"
    assert len(fal.calls("POST", "/fal-ai/flux/dev")) == 1  # tried once, not retried
    assert len(oai.calls("POST", "/v1/images/generations")) == 1
    record = next(r for r in caplog.records if getattr(r, "provider", "") == "fal")
    assert "key rejected" in record.reason  # type: ignore[attr-defined]
    assert "fal-wrong-key" not in caplog.text


async def test_overloaded_provider_is_skipped_after_its_retries(
    fal: FakeFal, oai: FakeOpenAI
) -> None:
    settings = provider_settings(
        image="fal:fal-ai/flux/dev,openai:gpt-image-1", provider_retries=2,
        fal_base_url=fal.url, openai_base_url=f"{oai.url}/v1",
    )
    for _ in range(3):
        fal.script("POST", "/fal-ai/flux/dev", 503, {"detail": "overloaded"}, {"Retry-After": "1"})
    chain = image_chain(settings)
    result = await chain.run(lambda p: p.generate(req()))
    assert result.usage.provider == "openai"
    assert chain.providers[0].service.retry.sleep.calls == [1.0, 1.0]


async def test_every_provider_failing_is_chain_failed(fal: FakeFal, oai: FakeOpenAI) -> None:
    settings = provider_settings(
        image="fal:fal-ai/flux/dev,openai:gpt-image-1", fal_base_url=fal.url,
        openai_base_url=f"{oai.url}/v1", fal_key=SecretStr("fal-bad-0000000"),
        openai_api_key=SecretStr("sk-bad-0000000000"),
    )
    with pytest.raises(ChainFailed) as info:
        await image_chain(settings).run(lambda p: p.generate(req()))
    assert [type(e) for e in info.value.errors] == [ProviderAuthError, ProviderAuthError]
    assert "bad-0000" not in str(info.value)


async def test_refusal_is_retried_once_softened(fal: FakeFal) -> None:
    fal.refuse_words = {"blood"}
    settings = provider_settings(image="fal:fal-ai/flux/dev", fal_base_url=fal.url)
    chain = image_chain(settings)
    result = await retry_refused(
        lambda r: chain.run(lambda p: p.generate(r)),
        req("the knight, covered in blood, kills the dragon"), label="Scene 2",
    )
    assert len(result.images) == 1
    prompts = [c.json["prompt"] for c in fal.calls("POST", "/fal-ai/flux/dev")]
    assert len(prompts) == 2 and "blood" in prompts[0]
    assert "blood" not in prompts[1] and "kills" not in prompts[1]
    assert "family-friendly" in prompts[1]


async def test_refused_twice_tells_the_person_which_scene(fal: FakeFal) -> None:
    fal.refuse_words = {"lighthouse"}
    settings = provider_settings(image="fal:fal-ai/flux/dev", fal_base_url=fal.url)
    chain = image_chain(settings)
    with pytest.raises(SceneRefused) as info:
        await retry_refused(lambda r: chain.run(lambda p: p.generate(r)), req(), label="Scene 4")
    assert info.value.user_message.startswith("Scene 4 was turned down")
    assert len(fal.calls("POST", "/fal-ai/flux/dev")) == 2


async def test_a_refusing_provider_lets_the_next_one_try(fal: FakeFal, oai: FakeOpenAI) -> None:
    fal.refuse_words = {"lighthouse"}
    settings = provider_settings(image="fal:fal-ai/flux/dev,openai:gpt-image-1",
                                 fal_base_url=fal.url, openai_base_url=f"{oai.url}/v1")
    result = await image_chain(settings).run(lambda p: p.generate(req()))
    assert result.usage.provider == "openai"


async def test_cost_totals_match_the_calls_made(fal: FakeFal) -> None:
    settings = provider_settings(
        image="fal:fal-ai/flux/dev", fal_base_url=fal.url,
        price_overrides=json.dumps({"fal:fal-ai/flux/dev": 0.01}),
    )
    chain = image_chain(settings)
    results = [await chain.run(lambda p, n=n: p.generate(req(count=n))) for n in (1, 2, 3)]
    assert sum(r.usage.units for r in results) == 6
    assert sum(r.usage.usd for r in results) == pytest.approx(0.06)
    assert len(fal.calls("POST", "/fal-ai/flux/dev")) == 3


def test_price_overrides() -> None:
    table = PriceTable('{"openai": {"per": "mtok", "usd": 1, "usd_output": 2}, "fal": 0.5}')
    assert table.usage("openai", "any", "mtok", 1_000_000, 1_000_000).usd == pytest.approx(3.0)
    assert table.usage("fal", "x", "second", 4).usd == pytest.approx(2.0)
    assert table.usage("replicate", "black-forest-labs/flux-schnell", "image", 2).usd == 0.006
    with pytest.raises(ValueError, match="not JSON"):
        PriceTable("{nope")
    with pytest.raises(ValueError, match="PRICE_OVERRIDES"):
        PriceTable('{"fal": {"per": "parsec", "usd": 1}}')


def test_soften_prompt() -> None:
    out = soften_prompt("A gory battle: the pirate stabs the sailor with a knife")
    assert "gory" not in out and "stabs" not in out and "knife" not in out
    assert out.endswith("nothing graphic")


def test_offline_stays_the_default() -> None:
    s = ProviderSettings(_env_file=None)  # type: ignore[call-arg]
    assert [s.script, s.image, s.video, s.speech, s.music] == ["offline"] * 5


async def test_check_chains(fal: FakeFal, oai: FakeOpenAI) -> None:
    el = await FakeElevenLabs().start()
    rep = await FakeReplicate().start()
    try:
        settings = provider_settings(
            script="openai:gpt-4o-mini",
            image="fal:fal-ai/flux/dev,openai:gpt-image-1,offline",
            video="replicate:kwaivgi/kling-v1.6-standard",
            speech="elevenlabs,openai:tts-1",
            music="offline",
            fal_base_url=fal.url, openai_base_url=f"{oai.url}/v1",
            elevenlabs_base_url=el.url, replicate_base_url=f"{rep.url}/v1",
            replicate_api_token=SecretStr("r8_wrong_token_123"),
        )
        results = await check_chains(settings)
        table = {(r.capability, r.provider): r for r in results}
        assert [(r.capability, r.provider) for r in results] == [
            ("script", "openai"), ("image", "fal"), ("image", "openai"), ("image", "offline"),
            ("video", "replicate"), ("speech", "elevenlabs"), ("speech", "openai"),
            ("music", "offline"),
        ]
        assert table["image", "fal"].ok and table["speech", "elevenlabs"].ok
        assert table["video", "replicate"].ok is False
        assert table["video", "replicate"].key_accepted is False
        assert "r8_wrong" not in table["video", "replicate"].detail
        assert len(oai.calls("GET", "/v1/models")) == 1  # probed once for three chain entries
        assert not oai.calls("POST") and not fal.calls("POST")  # nothing billable
        no_key = await check_chains(provider_settings(
            image="fal:fal-ai/flux/dev", fal_key=SecretStr("")))
        assert no_key[1].detail == "no key set (STORYLOOM_FAL_KEY)"
    finally:
        await el.stop()
        await rep.stop()
