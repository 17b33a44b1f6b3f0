"""The chaos suite: real ``storyloom worker`` processes killed, restarted, doubled, and their Valkey
restarted, against a fal.ai fake that takes real time and bills; then what people would see.

Run it alone with ``pytest tests/chaos -s`` (``-s`` shows the report each scenario prints);
``CHAOS_SEED=N`` replays a run's kill points and latencies.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pipeline.models import Status
from tests.chaos.harness import REPLICATE_VIDEO_MODEL, Cluster, Outcome, record

KILLS = 20
STORIES = 5
KILL_PHASE_S = 180.0  # the kills stop here even if fewer than KILLS were reached


def _check(out: Outcome) -> None:
    assert not out.problems, "\n".join(out.problems)


async def _finish(cluster: Cluster, seed: int, results: Path | None, limit_s: float,
                  may_fail: frozenset[str] = frozenset()) -> Outcome:
    """Let the stories end, retry what failed or hangs (``storyloom retry``), then judge."""
    await cluster.settle(limit_s)
    await cluster.recover()
    await cluster.settle(120)
    out = await cluster.verdict(seed, may_fail=may_fail)
    await cluster.stop_workers()
    record(out, cluster, results)
    return out


@pytest.mark.timeout(480)
async def test_worker_killed_at_twenty_seeded_points(
    cluster: Cluster, seed: int, results: Path | None
) -> None:
    """Five stories on one worker, SIGKILLed at 20 seeded moments (each 0.1-1.5 s after the
    restarted worker got going again), restarted each time. A story whose job died with its
    worker on every try must fail with a reason; it is then resumed (``StoryAPI.retry``, what
    ``storyloom retry`` does) and must finish."""
    await cluster.start_stories(STORIES)
    worker = cluster.start_worker()
    since = time.monotonic()
    for _ in range(KILLS):
        if cluster.clock() > KILL_PHASE_S:
            cluster.note(f"kill phase over after {KILL_PHASE_S:.0f}s (machine too slow?)")
            break
        await cluster.resume_failed()  # a story whose tries all died is resumed, as by a person
        if not cluster.unfinished():  # a fast machine: the kills go on with 5 more stories
            await cluster.start_stories(STORIES)
        if await cluster.wait_progress(since, 75) is None:
            break  # no story moves: the rest is judged below
        await asyncio.sleep(cluster.rng.uniform(0.1, 1.5))
        if not cluster.unfinished():
            await cluster.start_stories(STORIES)
            await asyncio.sleep(cluster.rng.uniform(0.1, 1.5))
        cluster.kill(worker)
        worker = cluster.start_worker()
        since = time.monotonic()
    cluster.note(f"{len(cluster.kills)} kills done")
    out = await _finish(cluster, seed, results, 150, frozenset(cluster.resumed))
    _check(out)
    assert len(cluster.kills) == KILLS, f"only {len(cluster.kills)} kill points were reached"


@pytest.mark.timeout(240)
async def test_same_step_killed_five_times_in_a_row(
    cluster: Cluster, seed: int, results: Path | None
) -> None:
    """One story's animate step killed five times running: each time a restarted worker has
    picked the job up again, it dies a moment later (0.05-0.3 s, seeded). With the default
    STORYLOOM_JOB_RETRIES the job's tries run out first: then the story must fail with a reason,
    it is retried, and the kills go on until there were five."""
    [sid] = await cluster.start_stories(1)
    worker = cluster.start_worker()
    deadline = time.monotonic() + 90
    while cluster.status.get(sid) != Status.animating:
        assert time.monotonic() < deadline, f"story never reached animating: {cluster.notes}"
        await asyncio.sleep(0.02)

    async def kill_when_taken(limit_s: float) -> bool:
        nonlocal worker
        if not await cluster.wait_taken(sid, "animate", worker, limit_s):
            return False
        await asyncio.sleep(cluster.rng.uniform(0.05, 0.3))
        if cluster.status.get(sid) != Status.animating:
            cluster.note("animate finished before the kill")
            return False
        cluster.kill(worker)
        worker = cluster.start_worker()
        return True

    while len(cluster.kills) < 5 and await kill_when_taken(20):
        pass
    may_fail: frozenset[str] = frozenset()
    if len(cluster.kills) < 5 and cluster.status.get(sid) in (Status.animating, Status.failed):
        cluster.note(f"the job was not run again after {len(cluster.kills)} kills")
        await cluster.settle(30)  # it must now fail, with a reason
        story = await cluster.rt.store.get(sid)  # type: ignore[union-attr]
        assert story.status == Status.failed and story.error, (
            f"after its tries ran out the story is {story.status.value}: {cluster.notes}")
        may_fail = frozenset({sid})
        # resumed through the API `storyloom retry` calls (the CLI would run a worker of its
        # own when none is alive, which no kill would reach)
        await cluster.resume_failed()
        while len(cluster.kills) < 5 and await kill_when_taken(30):
            pass
    cluster.note(f"{len(cluster.kills)} kills of the animate step")
    out = await _finish(cluster, seed, results, 120, may_fail)
    _check(out)
    assert len(cluster.kills) == 5, f"only {len(cluster.kills)} kills hit the animate step"


@pytest.mark.timeout(240)
async def test_valkey_restart_mid_story(cluster: Cluster, seed: int, results: Path | None) -> None:
    """Valkey stops (SIGTERM, AOF flushed) and comes back on its port in the middle of a story,
    at a seeded step."""
    await cluster.start_stories(1)
    cluster.start_worker()
    at = cluster.rng.choice([Status.storyboarding, Status.animating, Status.voicing])
    deadline = time.monotonic() + 90
    while at not in cluster.status.values():
        assert time.monotonic() < deadline, f"no story reached {at}"
        await asyncio.sleep(0.02)
    await asyncio.sleep(cluster.rng.uniform(0.0, 0.5))
    await cluster.restart_valkey(cluster.rng.uniform(1.0, 3.0))
    out = await _finish(cluster, seed, results, 150)
    _check(out)


@pytest.mark.timeout(240)
async def test_two_workers_on_the_same_stories(
    cluster: Cluster, seed: int, results: Path | None
) -> None:
    """Two workers take jobs of the same two stories, and one of them is killed mid-way; the
    clips are made on Replicate here (frames on fal), so both HTTP services are exercised."""
    cluster.video = f"replicate:{REPLICATE_VIDEO_MODEL}"
    await cluster.start_stories(2)
    first = cluster.start_worker()
    cluster.start_worker()
    await asyncio.sleep(cluster.rng.uniform(4.0, 10.0))
    if cluster.unfinished():
        cluster.kill(first)
    out = await _finish(cluster, seed, results, 150)
    _check(out)


@pytest.mark.timeout(240)
async def test_failing_scene_in_the_middle_of_a_fan_out(
    cluster: Cluster, seed: int, results: Path | None
) -> None:
    """fal refuses one scene's clip while the other clips run: the story fails with a reason,
    the worker is killed right then, nothing paid goes unrecorded, and ``storyloom retry``
    finishes the story once the scene can pass, without paying twice for the other clips."""
    assert cluster.rt is not None
    [sid] = await cluster.start_stories(1)
    worker = cluster.start_worker()
    deadline = time.monotonic() + 90
    while cluster.status.get(sid) not in (Status.storyboarding, Status.animating):
        assert time.monotonic() < deadline, "story never reached the storyboard"
        await asyncio.sleep(0.02)
    story = await cluster.rt.store.get(sid)
    victim = story.scenes[len(story.scenes) // 2].shot.strip()
    cluster.fal.reject = lambda kind, inputs: kind == "video" and victim in str(
        inputs.get("prompt", ""))
    cluster.fal.reject_latency = 0.3  # the app refuses at once; the other clips still run
    cluster.note(f"fal will refuse the clip of scene {len(story.scenes) // 2 + 1}")
    deadline = time.monotonic() + 90
    while cluster.status.get(sid) in (Status.storyboarding, Status.animating):
        assert time.monotonic() < deadline, "the story neither failed nor moved on"
        await asyncio.sleep(0.01)
    # the worker dies the moment the story has failed: whatever it left running dies with it
    cluster.kill(worker)
    cluster.start_worker()
    await cluster.settle(60)
    failed = await cluster.rt.store.get(sid)
    assert failed.status == Status.failed, f"story is {failed.status}, not failed"
    assert failed.error, "the story failed without a reason"
    cluster.note(f"story failed: {failed.error!r}")
    cluster.fal.reject = None  # the person edits the scene, or the service relents
    out = await _finish(cluster, seed, results, 30, may_fail=frozenset({sid}))
    _check(out)
