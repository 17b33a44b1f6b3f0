"""Replicate predictions against a fake speaking the Replicate HTTP API."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from providers.base import (
    AnimateRequest,
    CharacterRef,
    ContentRefused,
    ImageRequest,
    JobStopped,
    Media,
    MusicRequest,
    ProviderUnavailable,
    job_log,
)
from providers.replicate import ReplicateAnimator, ReplicateImageGenerator, ReplicateMusicMaker
from tests.fakes.base import png
from tests.fakes.helpers import REF_A, fast, provider_settings
from tests.fakes.joblog import MemoryJobLog
from tests.fakes.services import GOOD_KEY, FakeReplicate

VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


@pytest_asyncio.fixture
async def rep() -> AsyncIterator[FakeReplicate]:
    server = await FakeReplicate().start()
    yield server
    await server.stop()


def make(cls: type, rep: FakeReplicate, model: str, **kw: object):  # type: ignore[no-untyped-def]
    provider = cls.from_settings(model, provider_settings(replicate_base_url=f"{rep.url}/v1", **kw))
    fast(provider)
    return provider


async def test_created_without_waiting_then_read_once(rep: FakeReplicate) -> None:
    """No ``Prefer: wait``: the prediction id comes back at once, to be recorded before any
    waiting; a prediction that finished quickly is read with one GET."""
    gen = make(ReplicateImageGenerator, rep, "black-forest-labs/flux-schnell")
    result = await gen.generate(ImageRequest(prompt="a whale", width=1024, height=576, seed=9,
                                             count=2))
    sent = rep.calls("POST", "/v1/models/black-forest-labs/flux-schnell/predictions")[0]
    assert "Prefer" not in sent.headers
    assert sent.headers["Authorization"] == f"Bearer {GOOD_KEY}"
    assert sent.json["input"]["seed"] == 9 and sent.json["input"]["num_outputs"] == 2
    assert sent.json["input"]["aspect_ratio"] == "16:9"
    assert len(rep.calls("GET", "/v1/predictions/")) == 1
    assert len(result.images) == 2 and result.usage.usd == pytest.approx(2 * 0.003)
    assert rep.billed_usd == pytest.approx(result.usage.usd)


async def test_falls_back_to_polling_when_the_wait_ends(rep: FakeReplicate) -> None:
    rep.sync = False
    gen = make(ReplicateImageGenerator, rep, f"stability-ai/sdxl:{VERSION}")
    result = await gen.generate(ImageRequest(prompt="a whale", width=512, height=512, seed=1))
    sent = rep.calls("POST", "/v1/predictions")[0]
    assert sent.json["version"] == VERSION
    assert len(rep.calls("GET", "/v1/predictions/")) == 2
    assert len(result.images) == 1


async def test_reference_for_kontext(rep: FakeReplicate) -> None:
    gen = make(ReplicateImageGenerator, rep, "black-forest-labs/flux-kontext-pro")
    await gen.generate(ImageRequest(
        prompt="Mara waves", width=512, height=512, seed=1,
        characters=[CharacterRef(name="Mara", description="keeper",
                                 reference=Media(data=REF_A, mime="image/png"))]))
    sent = rep.calls("POST", "/v1/models/black-forest-labs/flux-kontext-pro")[0].json
    assert base64.b64decode(sent["input"]["input_image"].split(",", 1)[1]) == REF_A


async def test_video_prediction(rep: FakeReplicate) -> None:
    rep.sync = False
    anim = make(ReplicateAnimator, rep, "kwaivgi/kling-v1.6-standard")
    clip = await anim.animate(AnimateRequest(image=Media(data=png(), mime="image/png"),
                                             duration_s=9, width=1024, height=576))
    sent = rep.calls("POST", "/v1/models/kwaivgi/kling-v1.6-standard")[0].json["input"]
    assert sent["duration"] == 10 and sent["start_image"].startswith("data:image/png;base64,")
    assert clip.clip.mime == "video/mp4" and clip.duration_s == 10
    assert clip.usage.usd == pytest.approx(10 * 0.10)


async def test_nsfw_failure_is_refused_other_failures_unavailable(rep: FakeReplicate) -> None:
    gen = make(ReplicateImageGenerator, rep, "black-forest-labs/flux-dev")
    rep.outcome = "nsfw"
    with pytest.raises(ContentRefused, match="NSFW"):
        await gen.generate(ImageRequest(prompt="x", width=512, height=512, seed=0))
    rep.outcome = "failed"
    with pytest.raises(ProviderUnavailable, match="CUDA"):
        await gen.generate(ImageRequest(prompt="x", width=512, height=512, seed=0))


async def test_deadline_cancels_the_prediction(rep: FakeReplicate) -> None:
    rep.sync = False
    rep.polls_before_done = 10_000
    anim = make(ReplicateAnimator, rep, "wan-video/wan-2.1-i2v-480p", video_deadline_s=0.1)
    with pytest.raises(ProviderUnavailable, match="still running"):
        await anim.animate(AnimateRequest(image=Media(data=png(), mime="image/png"),
                                          duration_s=5, width=512, height=512))
    cancels = [c for c in rep.calls("POST", "/v1/predictions/") if c.path.endswith("/cancel")]
    assert len(cancels) == 1


async def test_check_uses_account(rep: FakeReplicate) -> None:
    probe = await make(ReplicateImageGenerator, rep, "a/b").check()
    assert probe.key_accepted and rep.calls("GET", "/v1/account")


async def test_music_prediction_is_capped_at_the_models_clip_length(rep: FakeReplicate) -> None:
    rep.sync = False
    maker = make(ReplicateMusicMaker, rep, "meta/musicgen")
    result = await maker.compose(MusicRequest(duration_s=41.3, mood="wistful", seed=5))
    sent = rep.calls("POST", "/v1/models/meta/musicgen/predictions")[0].json["input"]
    assert sent["duration"] == 30 and sent["output_format"] == "wav" and sent["seed"] == 5
    assert "wistful" in sent["prompt"] and "no vocals" in sent["prompt"]
    assert result.audio.mime == "audio/wav" and result.duration_s == 30
    assert result.usage.units == 30 and result.usage.usd == pytest.approx(30 * 0.0035)


async def test_music_failure_is_a_typed_error(rep: FakeReplicate) -> None:
    rep.outcome = "failed"
    with pytest.raises(ProviderUnavailable, match="CUDA"):
        await make(ReplicateMusicMaker, rep, "meta/musicgen").compose(MusicRequest(duration_s=8))


# --------------------------------------------------------------------------- paid jobs, once


async def test_a_prediction_interrupted_after_creation_is_resumed(rep: FakeReplicate) -> None:
    rep.sync, rep.job_s = False, 0.4
    journal = MemoryJobLog()
    anim = make(ReplicateAnimator, rep, "kwaivgi/kling-v1.6-standard")
    request = AnimateRequest(image=Media(data=png(), mime="image/png"), duration_s=5,
                             width=576, height=1024)
    with job_log(journal):
        first = asyncio.create_task(anim.animate(request))
    await journal.recorded(1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    with job_log(journal):
        clip = await anim.animate(request)
    assert len(rep.submits()) == 1 and len(rep.bill) == 1
    assert clip.usage.usd == pytest.approx(rep.billed_usd)


async def test_a_creation_whose_answer_was_lost_is_found_not_made_twice(
    rep: FakeReplicate,
) -> None:
    """The create call timed out after the service made the prediction: before trying again,
    the account's predictions are looked through for one with the same input."""
    rep.lose_answers, rep.lose_for_s = 1, 1.0
    gen = make(ReplicateImageGenerator, rep, "black-forest-labs/flux-schnell",
               provider_timeout_s=0.3)
    result = await gen.generate(ImageRequest(prompt="a whale", width=512, height=512, seed=4))
    assert len(rep.submits()) == 1 and len(rep.bill) == 1
    assert rep.calls("GET", "/v1/predictions") and len(result.images) == 1


async def test_giving_up_cancels_the_prediction(rep: FakeReplicate) -> None:
    rep.sync, rep.polls_before_done = False, 10_000
    journal = MemoryJobLog()
    anim = make(ReplicateAnimator, rep, "kwaivgi/kling-v1.6-standard")
    with job_log(journal):
        task = asyncio.create_task(anim.animate(AnimateRequest(
            image=Media(data=png(), mime="image/png"), duration_s=5, width=512, height=512)))
    await journal.recorded(1)
    journal.stop.set()
    with pytest.raises(JobStopped):
        await task
    assert len(rep.cancelled) == 1 and rep.bill == [] and journal.jobs == {}
