"""The story pipeline end to end on the real queue with the offline providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pipeline.api import StoryAPI
from pipeline.errors import BadIdea, BadRequest
from pipeline.events import EventKind, Outbox
from pipeline.models import Platform, Status, Story
from pipeline.runtime import Runtime
from tests.factories import ALICE, ROOM
from tests.fakes.recording import Recorder, recording
from tests.pipeline_helpers import finished

pytestmark = pytest.mark.slow

IDEA = "A lighthouse keeper befriends a stranded whale"


@pytest_asyncio.fixture
async def rec(rt: Runtime) -> Recorder:
    recorder = Recorder()
    rt.providers = recording(rt.providers, recorder)
    return recorder


async def _story(rt: Runtime, **opts: object) -> Story:
    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=2, pick="auto", **opts)
    return await api.start_story(IDEA, ALICE, ROOM, options)


async def test_three_scene_story_makes_a_checked_mp4(rt: Runtime, rec: Recorder) -> None:
    from pipeline.render.assemble import plan_timeline, probe

    await rt.outbox.ensure_group(Platform.console, "t")
    story = await finished(rt, await _story(rt))
    assert story.status == Status.done, story.error
    assert story.video is not None
    info = probe(await rt.media.path(story.video.media))
    assert (info.video_codec, info.width, info.height) == ("h264", 720, 1280)
    assert info.pix_fmt == "yuv420p" and info.audio_codec == "aac"
    narration = [s.voice.duration_s for s in story.scenes if s.voice]
    assert len(narration) == 3
    slots = plan_timeline(narration, 0.5)
    planned = slots[-1].start + slots[-1].length
    assert abs(info.duration_s - planned) < 0.5
    assert info.duration_s >= sum(narration)
    sheet = await rt.media.path(story.video.contact_sheet)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # One call per thing made: a script, one sheet per character, a storyboard call per
    # scene, a clip and a narration per scene, one music bed.
    counts = rec.counts()
    assert counts["script"] == 1 and counts["video"] == 3 and counts["speech"] == 3
    assert counts["image"] == 3 + len(story.characters) and counts["music"] == 1
    # The story's words reached the script, and progress went out as events.
    assert "whale" in " ".join(s.narration for s in story.scenes).lower()
    events = await Outbox(rt.redis).read(Platform.console, "t", "c", count=500, block_ms=10)
    kinds = [e.kind for _, e in events]
    assert kinds[0] == EventKind.created and kinds[-1] == EventKind.video
    steps = {e.step for _, e in events if e.kind == EventKind.progress}
    assert {"script", "animate", "voice", "assemble"} <= steps
    assert story.cost_usd == 0.0 and story.costs


@pytest.mark.parametrize("aspect,size", [("16:9", (1280, 720)), ("1:1", (720, 720))])
async def test_other_aspects(rt: Runtime, aspect: str, size: tuple[int, int]) -> None:
    from pipeline.render.assemble import probe

    story = await finished(rt, await _story(rt, aspect=aspect, music=False))
    assert story.status == Status.done, story.error
    assert story.video is not None
    info = probe(await rt.media.path(story.video.media))
    assert (info.width, info.height) == size


async def _done_story(rt: Runtime) -> Story:
    story = await finished(rt, await _story(rt))
    assert story.status == Status.done, story.error
    return story


async def test_each_step_run_twice_makes_no_second_provider_call(
    rt: Runtime, rec: Recorder
) -> None:
    """Simulate a crash after each step stored its outputs: rewind the status and rerun."""
    from pipeline.steps import STEP_FUNCTIONS

    story = await _done_story(rt)
    before = len(rec.calls)
    plan = [
        ("script", Status.drafting),
        ("cast", Status.casting),
        ("storyboard", Status.storyboarding),
        ("animate", Status.animating),
        ("voice", Status.voicing),
        ("assemble", Status.assembling),
    ]
    for step, status in plan:
        def rewind(s: Story, status: Status = status, step: str = step) -> None:
            s.status = status
            if step == "cast":
                for c in s.characters:
                    c.reference = None
            if step == "storyboard":
                for sc in s.scenes:
                    sc.candidates, sc.picked = [], None
            if step == "animate":
                for sc in s.scenes:
                    sc.clip = None
            if step == "voice":
                for sc in s.scenes:
                    sc.voice = None

        await rt.store.update(story.id, rewind)
        await STEP_FUNCTIONS[step](rt, story.id, {})
    assert len(rec.calls) == before, [c[0] for c in rec.calls[before:]]
    final = await rt.store.get(story.id)
    assert final.status == Status.done


@pytest.mark.parametrize("what,capabilities", [
    ("clip", {"video": 1}),
    ("voice", {"speech": 1}),
    ("frame", {"image": 1, "video": 1}),
])
async def test_regenerating_one_scene_calls_providers_for_that_scene_only(
    rt: Runtime, rec: Recorder, what: str, capabilities: dict[str, int]
) -> None:
    story = await _done_story(rt)
    old_video = story.video
    rec.clear()
    await StoryAPI(rt).regenerate(story.id, 1, what)  # type: ignore[arg-type]
    again = await finished(rt, story)
    assert again.status == Status.done, again.error
    assert rec.counts() == capabilities
    scene_two = again.scenes[1]
    for _cap, _fp, req in rec.calls:
        text = req.model_dump_json(exclude={"image", "characters"})
        assert scene_two.narration[:30] in text or scene_two.shot[:30] in text
    assert again.video is not None and old_video is not None
    if what != "voice":  # an offline re-voicing of the same text is the same audio
        assert again.video.media != old_video.media


@pytest.mark.parametrize("idea,reason", [
    ("", "empty"),
    ("   \n\t  ", "empty"),
    ("\x00\x07\x1b", "empty"),
    ("x" * 2001, "2000"),
    ("!!! ??? ...", "no words"),
])
async def test_bad_ideas_get_a_clear_message_and_nothing_is_enqueued(
    rt: Runtime, idea: str, reason: str
) -> None:
    from pipeline.queue import queue_depth

    with pytest.raises(BadIdea, match=reason):
        await StoryAPI(rt).start_story(idea, ALICE, ROOM)
    assert await queue_depth(rt.redis) == 0
    assert await rt.store.by_owner(ALICE) == []


async def test_approval_gate_waits_for_every_pick(rt: Runtime) -> None:
    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=2, pick="ask")
    story = await finished(rt, await api.start_story(IDEA, ALICE, ROOM, options))
    assert story.status == Status.awaiting_approval
    assert all(len(s.candidates) == 2 for s in story.scenes)
    with pytest.raises(BadRequest, match="scene 1, 2, 3"):
        await api.approve(story.id)
    with pytest.raises(BadRequest, match="no frame"):
        await api.pick(story.id, 0, "zz")
    for sc in story.scenes:
        await api.pick(story.id, sc.index, sc.candidates[1].id)
    await api.approve(story.id)
    done = await finished(rt, story)
    assert done.status == Status.done
    assert all(s.clip and s.clip.frame_id == s.candidates[1].id for s in done.scenes)


async def test_cancel_stops_the_story(rt: Runtime) -> None:
    api = StoryAPI(rt)
    story = await _story(rt)
    await api.cancel(story.id)
    after = await finished(rt, story)
    assert after.status == Status.cancelled and after.scenes == []


async def test_unicode_ideas_make_videos(rt: Runtime, tmp_path: Path) -> None:
    api = StoryAPI(rt)
    for idea in ("Маленький ёжик ищет звезду в тумане 🌟", "一只小猫在月光下寻找回家的路",
                 "ילדה קטנה בונה סירה מנייר"):
        options = api.default_options(scenes=3, candidates=1, pick="auto", music=False)
        story = await finished(rt, await api.start_story(idea, ALICE, ROOM, options))
        assert story.status == Status.done, (idea, story.error)


async def test_a_damaged_story_is_marked_failed_and_the_worker_serves_the_others(
    rt: Runtime,
) -> None:
    from pipeline.errors import CorruptStory
    from pipeline.store import story_key

    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto", music=False)
    broken = await api.start_story("A snail races a falling leaf", ALICE, ROOM, options)
    good = await api.start_story("A kite escapes into a thunderstorm", ALICE, ROOM, options)
    damaged = b'{"id": "%s", "scenes": 7}' % broken.id.encode()
    await rt.redis.hset(story_key(broken.id), "doc", damaged)

    done = await finished(rt, good)
    assert done.status == Status.done, done.error
    with pytest.raises(CorruptStory) as info:
        await rt.store.get(broken.id)
    assert "idea" in info.value.reason or "scenes" in info.value.reason
    counts = await rt.store.count_by_status()
    assert counts["failed"] == 1 and counts["done"] == 1


@pytest.mark.parametrize("lost", ["cast", "storyboard", "animate", "voice", "assemble"])
async def test_a_worker_stopped_between_handoff_and_enqueue_does_not_stall_the_story(
    rt: Runtime, rec: Recorder, lost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step moved the story on, then its worker stopped before queueing ``lost``. arq runs
    the interrupted job again; it must queue ``lost`` instead of dropping itself as stale."""
    import asyncio

    import pipeline.steps as steps

    real = steps.enqueue
    dropped: list[str] = []

    async def stop_once(redis: object, step: str, story_id: str, revision: int,
                        **kw: object) -> str | None:
        if step == lost and not dropped:
            dropped.append(step)
            raise asyncio.CancelledError  # what arq sees when a worker stops mid-job
        return await real(redis, step, story_id, revision, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(steps, "enqueue", stop_once)
    story = await finished(rt, await _story(rt, music=False))
    assert dropped == [lost]
    assert story.status == Status.done, (story.status, story.error)
    assert rec.counts()["script"] == 1 and rec.counts()["video"] == 3


def _paid_music(rt: Runtime, rep: Any) -> None:
    from providers.registry import Providers, build_chain
    from tests.fakes.helpers import fast, provider_settings

    settings = provider_settings(replicate_base_url=f"{rep.url}/v1")
    music = build_chain("music", "replicate:meta/musicgen,offline", settings)
    fast(music.providers[0])
    base = rt.providers
    rt.providers = Providers(script=base.script, image=base.image, video=base.video,
                             speech=base.speech, music=music)


async def test_music_from_a_paid_service_lies_under_the_story_and_is_charged_once(
    rt: Runtime
) -> None:
    from pipeline.render.assemble import probe
    from tests.fakes.services import FakeReplicate

    rep = await FakeReplicate().start()
    try:
        _paid_music(rt, rep)
        story = await finished(rt, await _story(rt))
        assert story.status == Status.done, story.error
        # a scene's clip redone: the story is reassembled over the same, already paid bed
        await StoryAPI(rt).regenerate(story.id, 1, "clip")
        story = await finished(rt, story)
    finally:
        await rep.stop()
    assert story.status == Status.done, story.error
    sent = rep.calls("POST", "/v1/models/meta/musicgen/predictions")
    assert len(sent) == 1 and sent[0].json["input"]["duration"] == 30  # the model's longest
    # the 1-second clip the fake answers is looped under the whole story
    assert story.video is not None
    info = probe(await rt.media.path(story.video.media))
    assert info.audio_codec == "aac" and info.duration_s > 10
    [cost] = [c for c in story.costs if c.step == "music"]
    assert (cost.provider, cost.model, cost.unit) == ("replicate", "meta/musicgen", "second")
    assert cost.usd == pytest.approx(30 * 0.0035) and story.cost_usd >= cost.usd


async def test_a_music_bed_over_budget_stops_the_story_before_it_is_bought(rt: Runtime) -> None:
    from tests.fakes.services import FakeReplicate

    rep = await FakeReplicate().start()
    try:
        _paid_music(rt, rep)
        story = await finished(rt, await _story(rt, budget_usd=0.05))  # the bed: 30 s × $0.0035
    finally:
        await rep.stop()
    assert story.status == Status.failed and story.failed_step == "assemble"
    assert "budget" in (story.error or "")
    assert not rep.calls("POST", "/v1/models/meta/musicgen/predictions")
    assert story.cost_usd == 0.0


# --------------------------------------------------------------------------- paid clips


KLING = "fal-ai/kling-video/v1.6/standard/image-to-video"


def _paid_video(rt: Runtime, fal: Any, **settings: Any) -> None:
    from providers.registry import Providers, build_chain
    from tests.fakes.helpers import fast, provider_settings

    video = build_chain("video", f"fal:{KLING}",
                        provider_settings(fal_base_url=fal.url, **settings))
    fast(video.providers[0])
    base = rt.providers
    rt.providers = Providers(script=base.script, image=base.image, video=video,
                             speech=base.speech, music=base.music)


async def _to_animating(rt: Runtime) -> Story:
    from pipeline.steps import step_cast, step_script, step_storyboard

    story = await _story(rt, music=False)
    for step in (step_script, step_cast, step_storyboard):
        await step(rt, story.id, {})
    story = await rt.store.get(story.id)
    assert story.status == Status.animating
    return story


async def _journals(rt: Runtime) -> int:
    return sum([1 async for _ in rt.redis.scan_iter(match="sl:jobs:*")])


async def test_a_step_killed_between_submit_and_result_submits_nothing_again(
    rt: Runtime,
) -> None:
    """The worker dies while three clips are being made: the step run again follows the three
    jobs it recorded, so the service is asked for (and bills) each clip once, and each is
    recorded on the story once."""
    import asyncio

    from pipeline.steps import step_animate
    from tests.fakes.services import FakeFal

    fal = await FakeFal().start()
    try:
        fal.job_s = 1.0
        _paid_video(rt, fal)
        story = await _to_animating(rt)
        killed = asyncio.create_task(step_animate(rt, story.id, {}))
        for _ in range(500):
            if await _journals(rt) == 3:
                break
            await asyncio.sleep(0.02)
        killed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await killed
        assert len(fal.submits()) == 3 and fal.bill == []
        await step_animate(rt, story.id, {})  # arq runs the job again
    finally:
        await fal.stop()
    after = await rt.store.get(story.id)
    assert after.status == Status.voicing and all(s.clip for s in after.scenes)
    assert len(fal.submits()) == 3 and len(fal.bill) == 3
    paid = [c for c in after.costs if c.step == "animate"]
    assert len(paid) == 3 and sum(c.usd for c in paid) == pytest.approx(fal.billed_usd)
    assert await _journals(rt) == 0


@pytest.mark.parametrize("running", [False, True])
async def test_a_scene_failing_for_good_stops_the_fan_out_and_every_bill_is_recorded(
    rt: Runtime, running: bool
) -> None:
    """Scene clips in a 3-scene fan-out, one refused for good. Queued jobs of the others are
    cancelled at the service (never billed); jobs it will finish anyway are waited for and
    recorded on the story. Either way the story's costs are the service's bill, and a retry
    of the step submits only what is missing."""
    from pipeline.steps import step_animate
    from providers.registry import ChainFailed
    from tests.fakes.services import FakeFal

    fal = await FakeFal().start()
    try:
        fal.job_s, fal.queue_s = (0.4, 0.0) if running else (30.0, 30.0)
        fal.reject_nth = {2}
        _paid_video(rt, fal)
        story = await _to_animating(rt)
        with pytest.raises(ChainFailed, match="content checker"):
            await step_animate(rt, story.id, {})
        after = await rt.store.get(story.id)
        paid = [c for c in after.costs if c.step == "animate"]
        assert sum(c.usd for c in paid) == pytest.approx(fal.billed_usd)
        assert len(fal.bill) == (2 if running else 0)
        assert len(fal.cancelled) == (0 if running else 2)
        assert not fal.running and await _journals(rt) == 0
        fal.reject_nth, fal.job_s, fal.queue_s = set(), 0.2, None
        await step_animate(rt, story.id, {})  # the step's retry
    finally:
        await fal.stop()
    after = await rt.store.get(story.id)
    assert after.status == Status.voicing
    assert len(fal.submits()) == (4 if running else 6)
    paid = [c for c in after.costs if c.step == "animate"]
    assert len(paid) == 3 and sum(c.usd for c in paid) == pytest.approx(fal.billed_usd)


async def test_two_stories_at_the_accounts_job_limit_meet_no_429(rt: Runtime) -> None:
    """Two stories animate at once (six clips) with a limit of 2 against an account that runs
    2 jobs at once: the slot lasts each job, so the service never answers 429."""
    import asyncio

    from pipeline.steps import step_animate
    from tests.fakes.services import FakeFal

    fal = await FakeFal().start()
    try:
        fal.job_s, fal.account_limit = 0.3, 2
        _paid_video(rt, fal, provider_concurrency=2)
        stories = [await _to_animating(rt) for _ in range(2)]
        await asyncio.gather(*(step_animate(rt, s.id, {}) for s in stories))
    finally:
        await fal.stop()
    for s in stories:
        after = await rt.store.get(s.id)
        assert after.status == Status.voicing and all(sc.clip for sc in after.scenes)
    assert fal.rejected_429 == 0 and fal.peak_running == 2 and len(fal.bill) == 6
