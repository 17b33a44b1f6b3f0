"""OpenAI's video API (Sora) and Runway's image-to-video API against fakes of each service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from providers.base import (
    AnimateRequest,
    ContentRefused,
    Media,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderUnavailable,
)
from providers.check import check_chains
from providers.registry import build_provider
from providers.runway import RunwayAnimator
from providers.sora import SoraAnimator
from tests.fakes.base import png
from tests.fakes.helpers import fast, provider_settings
from tests.fakes.services import GOOD_KEY
from tests.fakes.video_labs import FakeRunway, FakeSora


@pytest_asyncio.fixture
async def sora() -> AsyncIterator[FakeSora]:
    server = await FakeSora().start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def runway() -> AsyncIterator[FakeRunway]:
    server = await FakeRunway().start()
    yield server
    await server.stop()


def _request(width: int = 720, height: int = 1280, duration_s: float = 5.2) -> AnimateRequest:
    frame = Media(data=png((30, 90, 160), (width, height)), mime="image/png")
    return AnimateRequest(image=frame, prompt="the whale surfaces", motion="push_in",
                          duration_s=duration_s, width=width, height=height, seed=11)


def _sora(server: FakeSora, model: str = "sora-2", **kw: Any) -> SoraAnimator:
    provider = SoraAnimator.from_settings(
        model, provider_settings(openai_base_url=f"{server.url}/v1", **kw))
    fast(provider)
    return provider


def _runway(server: FakeRunway, model: str = "gen4_turbo", **kw: Any) -> RunwayAnimator:
    kw.setdefault("runway_api_key", SecretStr(GOOD_KEY))
    provider = RunwayAnimator.from_settings(model, provider_settings(runway_base_url=server.url,
                                                                     **kw))
    fast(provider)
    return provider


# --------------------------------------------------------------------------- Sora


async def test_sora_creates_polls_and_downloads_a_clip_from_the_frame(sora: FakeSora) -> None:
    result = await _sora(sora).animate(_request())
    create = sora.calls("POST", "/v1/videos")[0]
    assert create.headers["Authorization"] == f"Bearer {GOOD_KEY}"
    assert create.form["model"] == "sora-2"
    assert create.form["seconds"] == "8"  # the shortest allowed length covering 5.2 s
    assert create.form["size"] == "720x1280"
    assert create.form["prompt"].startswith("the whale surfaces")
    [(field, _, data)] = create.files
    assert field == "input_reference" and data.startswith(b"\x89PNG")
    assert len(sora.calls("GET", "/v1/videos/video_")) >= 3  # queued, in_progress, completed
    assert result.clip.mime == "video/mp4"
    assert result.duration_s == 8
    assert result.usage.provider == "openai" and result.usage.unit == "second"
    assert result.usage.units == 8 and result.usage.usd == pytest.approx(0.80)


async def test_sora_fits_a_frame_of_another_size_to_the_video_size(sora: FakeSora) -> None:
    await _sora(sora).animate(_request(width=1344, height=768, duration_s=3))
    create = sora.calls("POST", "/v1/videos")[0]
    assert create.form["size"] == "1280x720" and create.form["seconds"] == "4"


async def test_sora_pro_may_use_its_taller_size_and_costs_more(sora: FakeSora) -> None:
    result = await _sora(sora, "sora-2-pro").animate(
        _request(width=1080, height=1920, duration_s=11))
    create = sora.calls("POST", "/v1/videos")[0]
    assert create.form["size"] == "1024x1792" and create.form["seconds"] == "12"
    assert result.usage.usd == pytest.approx(12 * 0.30)


async def test_sora_moderation_is_a_refusal_at_create_and_in_the_job(sora: FakeSora) -> None:
    sora.refuse_words = {"whale"}
    with pytest.raises(ContentRefused, match="moderation"):
        await _sora(sora).animate(_request())
    sora.refuse_words = set()
    sora.fail_with = "moderation"
    with pytest.raises(ContentRefused, match="moderation"):
        await _sora(sora).animate(_request())


async def test_sora_failed_job_is_unavailable_not_a_refusal(sora: FakeSora) -> None:
    sora.fail_with = "internal"
    with pytest.raises(ProviderUnavailable, match="failed") as caught:
        await _sora(sora).animate(_request())
    assert not isinstance(caught.value, ContentRefused)


async def test_sora_deadline_cancels_the_video(sora: FakeSora) -> None:
    sora.statuses = ["queued", "in_progress"]
    with pytest.raises(ProviderUnavailable, match="still running"):
        await _sora(sora, video_deadline_s=0.3).animate(_request())
    assert sora.deleted == list(sora.videos)


async def test_sora_resume_polls_a_known_video_without_paying_again(sora: FakeSora) -> None:
    video_id = await _sora(sora).submit(_request())
    result = await _sora(sora).resume(video_id)  # e.g. another worker after a crash
    assert len(sora.calls("POST", "/v1/videos")) == 1
    assert result.duration_s == 8


async def test_sora_bad_key_is_an_auth_error_without_the_key(sora: FakeSora) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        await _sora(sora, openai_api_key=SecretStr("sk-wrong-key")).animate(_request())
    assert "sk-wrong-key" not in str(caught.value)


async def test_sora_limits_videos_in_progress(sora: FakeSora) -> None:
    sora.delay_s = 0.02
    provider = _sora(sora, provider_concurrency=8)
    await asyncio.gather(*[provider.animate(_request()) for _ in range(5)])
    assert sora.peak_active == 2


# --------------------------------------------------------------------------- Runway


async def test_runway_creates_a_task_with_its_version_header_and_downloads(
    runway: FakeRunway,
) -> None:
    result = await _runway(runway).animate(_request(duration_s=6))
    create = runway.calls("POST", "/v1/image_to_video")[0]
    assert create.headers["Authorization"] == f"Bearer {GOOD_KEY}"
    assert create.json["model"] == "gen4_turbo"
    assert create.json["promptImage"].startswith("data:image/png;base64,")
    assert create.json["ratio"] == "720:1280"
    assert create.json["duration"] == 10  # 6 s needs the 10 s clip
    assert create.json["seed"] == 11
    api_calls = [r for r in runway.requests if r.path.startswith("/v1/")]
    assert all(r.headers.get("X-Runway-Version") == "2024-11-06" for r in api_calls)
    assert len(runway.calls("GET", "/v1/tasks/")) == 4  # PENDING, THROTTLED, RUNNING, SUCCEEDED
    assert runway.calls("GET", "/cdn/")  # fetched from the signed URL, without the key
    assert result.clip.mime == "video/mp4" and result.duration_s == 10
    assert result.usage.provider == "runway"
    assert result.usage.units == 10 and result.usage.usd == pytest.approx(0.50)


async def test_runway_ratio_and_duration_as_the_model_allows(runway: FakeRunway) -> None:
    await _runway(runway, "gen3a_turbo").animate(_request(width=1280, height=720, duration_s=4))
    create = runway.calls("POST", "/v1/image_to_video")[0]
    assert create.json["ratio"] == "1280:768" and create.json["duration"] == 5


async def test_runway_safety_failure_is_a_refusal(runway: FakeRunway) -> None:
    runway.fail_with = "safety"
    with pytest.raises(ContentRefused, match="moderation"):
        await _runway(runway).animate(_request())


async def test_runway_internal_failure_is_unavailable(runway: FakeRunway) -> None:
    runway.fail_with = "internal"
    with pytest.raises(ProviderUnavailable) as caught:
        await _runway(runway).animate(_request())
    assert not isinstance(caught.value, ContentRefused)


async def test_runway_rejected_body_is_a_bad_request(runway: FakeRunway) -> None:
    runway.script("POST", "/v1/image_to_video", 400, body={
        "error": "Validation of body failed", "issues": [{"path": ["ratio"]}]})
    with pytest.raises(ProviderBadRequest, match="Validation of body failed"):
        await _runway(runway).animate(_request())


async def test_runway_deadline_cancels_the_task(runway: FakeRunway) -> None:
    runway.statuses = ["RUNNING"]
    with pytest.raises(ProviderUnavailable, match="still running"):
        await _runway(runway, video_deadline_s=0.3).animate(_request())
    assert runway.cancelled == list(runway.tasks)


async def test_runway_resume_polls_a_known_task(runway: FakeRunway) -> None:
    task_id = await _runway(runway).submit(_request(duration_s=6))
    result = await _runway(runway).resume(task_id, 6)
    assert len(runway.calls("POST", "/v1/image_to_video")) == 1
    assert result.duration_s == 10


async def test_runway_limits_tasks_in_progress(runway: FakeRunway) -> None:
    runway.delay_s = 0.02
    provider = _runway(runway, provider_concurrency=8)
    await asyncio.gather(*[provider.animate(_request()) for _ in range(5)])
    assert runway.peak_active == 2


# --------------------------------------------------------------------------- wiring


async def test_registry_and_checks_cover_both_without_spending(
    sora: FakeSora, runway: FakeRunway,
) -> None:
    settings = provider_settings(
        openai_base_url=f"{sora.url}/v1", runway_base_url=runway.url,
        runway_api_key=SecretStr(GOOD_KEY), video="openai:sora-2,runway:gen4_turbo,offline",
    )
    assert isinstance(build_provider("video", "openai", "sora-2", settings), SoraAnimator)
    assert isinstance(build_provider("video", "runway", "", settings), RunwayAnimator)
    results = [r for r in await check_chains(settings) if r.capability == "video"]
    assert [(r.provider, r.ok) for r in results] == [
        ("openai", True), ("runway", True), ("offline", True)]
    assert sora.calls("GET", "/v1/models/sora-2") and runway.calls("GET", "/v1/organization")
    assert not sora.calls("POST") and not runway.calls("POST")  # nothing was bought


async def test_checks_report_a_bad_runway_key_and_a_missing_one(runway: FakeRunway) -> None:
    bad = provider_settings(runway_base_url=runway.url, runway_api_key=SecretStr("nope"),
                            video="runway")
    [result] = [r for r in await check_chains(bad) if r.capability == "video"]
    assert not result.ok and result.key_accepted is False
    missing = provider_settings(runway_base_url=runway.url, video="runway")
    [result] = [r for r in await check_chains(missing) if r.capability == "video"]
    assert not result.ok and "STORYLOOM_RUNWAY_API_KEY" in result.detail
