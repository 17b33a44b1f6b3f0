"""fal.ai queue provider against a fake speaking the queue API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import SecretStr

from providers.base import (
    AnimateRequest,
    CharacterRef,
    ContentRefused,
    ImageRequest,
    Media,
    MusicRequest,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderUnavailable,
)
from providers.fal import FalAnimator, FalImageGenerator, FalMusicMaker, audio_url
from tests.fakes.base import png
from tests.fakes.helpers import REF_A, fast, provider_settings
from tests.fakes.services import GOOD_KEY, FakeFal


@pytest_asyncio.fixture
async def fal() -> AsyncIterator[FakeFal]:
    server = await FakeFal().start()
    yield server
    await server.stop()


def make(cls: type, fal: FakeFal, model: str, **kw: object):  # type: ignore[no-untyped-def]
    provider = cls.from_settings(model, provider_settings(fal_base_url=fal.url, **kw))
    fast(provider)
    return provider


async def test_image_submit_poll_fetch(fal: FakeFal) -> None:
    gen = make(FalImageGenerator, fal, "fal-ai/flux/dev")
    result = await gen.generate(ImageRequest(
        prompt="a lighthouse at dusk", negative_prompt="text", width=768, height=1344, seed=7,
        count=2,
    ))
    submit = fal.calls("POST", "/fal-ai/flux/dev")[0]
    assert submit.headers["Authorization"] == f"Key {GOOD_KEY}"
    assert submit.json["prompt"].startswith("a lighthouse at dusk")
    assert submit.json["image_size"] == {"width": 768, "height": 1344}
    assert submit.json["seed"] == 7 and submit.json["num_images"] == 2
    assert submit.json["negative_prompt"] == "text"
    # the queue status URLs use the app id, not the full endpoint path
    assert len(fal.calls("GET", "/fal-ai/flux/requests/")) >= 3
    assert len(result.images) == 2 and result.images[0].mime == "image/png"
    assert result.usage.units == 2 and result.usage.usd == pytest.approx(0.05)


async def test_reference_image_model_gets_the_sheet(fal: FakeFal) -> None:
    gen = make(FalImageGenerator, fal, "fal-ai/flux-pulid")
    await gen.generate(ImageRequest(
        prompt="Mara on the rocks", width=512, height=512, seed=3,
        characters=[CharacterRef(name="Mara", description="keeper",
                                 reference=Media(data=REF_A, mime="image/png"))],
    ))
    sent = fal.calls("POST", "/fal-ai/flux-pulid")[0].json
    header, _, payload = sent["reference_image_url"].partition(",")
    assert header == "data:image/png;base64" and base64.b64decode(payload) == REF_A


async def test_image_to_video_kling(fal: FakeFal) -> None:
    anim = make(FalAnimator, fal, "fal-ai/kling-video/v1.6/standard/image-to-video")
    frame = png()
    clip = await anim.animate(AnimateRequest(image=Media(data=frame, mime="image/png"),
                                             prompt="waves roll", duration_s=4, width=576,
                                             height=1024, motion="push_in"))
    sent = fal.calls("POST", "/fal-ai/kling-video")[0].json
    assert sent["duration"] == "5" and sent["aspect_ratio"] == "9:16"
    assert "waves roll" in sent["prompt"] and "push in" in sent["prompt"]
    assert base64.b64decode(sent["image_url"].split(",", 1)[1]) == frame
    assert clip.clip.mime == "video/mp4" and clip.duration_s == 5
    assert clip.usage.usd == pytest.approx(5 * 0.05)


async def test_content_policy_422_is_refused(fal: FakeFal) -> None:
    fal.refuse_words = {"blood"}
    with pytest.raises(ContentRefused, match="content checker"):
        await make(FalImageGenerator, fal, "fal-ai/flux/dev").generate(
            ImageRequest(prompt="blood on the sand", width=512, height=512, seed=0))


async def test_all_images_flagged_nsfw_is_refused(fal: FakeFal) -> None:
    fal.flag_nsfw = True
    with pytest.raises(ContentRefused, match="safety checker"):
        await make(FalImageGenerator, fal, "fal-ai/flux/schnell").generate(
            ImageRequest(prompt="x", width=512, height=512, seed=0))


async def test_video_deadline_cancels_and_fails(fal: FakeFal) -> None:
    fal.never_complete = True
    anim = make(FalAnimator, fal, "fal-ai/wan-i2v", video_deadline_s=0.1)
    with pytest.raises(ProviderUnavailable, match="still running"):
        await anim.animate(AnimateRequest(image=Media(data=png(), mime="image/png"),
                                          duration_s=5, width=512, height=512))
    assert len(fal.calls("PUT", "/fal-ai/wan-i2v/requests/")) == 1


async def test_bad_key_and_check(fal: FakeFal) -> None:
    good = await make(FalImageGenerator, fal, "fal-ai/flux/dev").check()
    assert good.reachable and good.key_accepted
    bad = make(FalImageGenerator, fal, "fal-ai/flux/dev", fal_key=SecretStr("fal-nope-1234567"))
    assert (await bad.check()).key_accepted is False
    with pytest.raises(ProviderAuthError):
        await bad.generate(ImageRequest(prompt="x", width=512, height=512, seed=0))
    assert not fal.calls("POST", "/fal-ai/flux/dev/")  # the check submitted nothing


async def test_stable_audio_music(fal: FakeFal) -> None:
    maker = make(FalMusicMaker, fal, "fal-ai/stable-audio")
    result = await maker.compose(MusicRequest(duration_s=33.2, mood="hopeful", seed=3))
    submit = fal.calls("POST", "/fal-ai/stable-audio")[0].json
    assert submit["seconds_total"] == 34 and submit["seed"] == 3 and "hopeful" in submit["prompt"]
    assert result.audio.mime == "audio/wav" and result.duration_s == 34
    assert result.usage.usd == pytest.approx(34 * 0.0025)


def test_audio_url_reads_each_family_and_refuses_none() -> None:
    assert audio_url({"audio_file": {"url": "https://x/a.wav"}}) == "https://x/a.wav"
    assert audio_url({"audio": {"url": "https://x/b.flac"}}) == "https://x/b.flac"
    assert audio_url({"audio_url": "https://x/c.mp3"}) == "https://x/c.mp3"
    for bad in ({}, {"audio": {"url": 3}}, {"audio_file": "not a url"}, [], None):
        with pytest.raises(ProviderBadResponse, match="no audio"):
            audio_url(bad)
