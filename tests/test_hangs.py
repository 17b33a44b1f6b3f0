"""A story never hangs: a job lost with its worker ends the story failed (and retryable), a dead
worker's heartbeat is not trusted, and a stuck story can be retried."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

import pytest

from pipeline.api import StoryAPI
from pipeline.events import EventKind
from pipeline.models import Platform, Status
from pipeline.queue import (
    build_worker,
    enqueue,
    job_id,
    release_orphans,
    worker_alive,
)
from pipeline.runtime import Runtime
from pipeline.steps import on_failure
from tests.factories import ALICE, ROOM


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def _failed_events(rt: Runtime, story_id: str) -> list[str]:
    entries = await rt.redis.xrange(f"sl:events:{Platform.console.value}")
    out = []
    for _, fields in entries:
        ev = json.loads(fields[b"event"])
        if ev["story_id"] == story_id and ev["kind"] == EventKind.failed.value:
            out.append(ev["message"])
    return out


async def test_a_killed_local_workers_heartbeat_is_not_trusted(rt: Runtime) -> None:
    beat = json.dumps({"host": socket.gethostname(), "pid": _dead_pid()})
    await rt.redis.set("sl:worker:killed", beat, ex=5)
    assert not await worker_alive(rt.redis)
    assert not await rt.redis.exists("sl:worker:killed")  # cleared for everyone else too

    # its job's lock is freed at once, not after the heartbeat expires
    await rt.redis.set("sl:worker:killed", beat, ex=5)
    await rt.redis.set("arq:in-progress:s9:script:r0", b"1", px=600_000)
    await rt.redis.set("sl:running:s9:script:r0", "killed")
    assert await release_orphans(rt.redis) == ["s9:script:r0"]

    # a live process here, or a worker on another machine, counts as alive
    await rt.redis.set("sl:worker:me", json.dumps({"host": socket.gethostname(),
                                                   "pid": __import__("os").getpid()}), ex=5)
    assert await worker_alive(rt.redis)
    await rt.redis.delete("sl:worker:me")
    await rt.redis.set("sl:worker:far", json.dumps({"host": "elsewhere", "pid": 1}), ex=5)
    assert await worker_alive(rt.redis)


@pytest.mark.parametrize("how", ["cancel", "stop"])
async def test_a_worker_stopped_mid_job_leaves_no_heartbeat(rt: Runtime, how: str) -> None:
    """Ctrl-C or a bot shutting down cancels the worker's task while a job runs."""
    import asyncio
    import contextlib

    from pipeline.worker import BackgroundWorker

    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto")
    await api.start_story("A heron teaches a frog to fish", ALICE, ROOM, options)
    worker = BackgroundWorker(rt.settings, rt)
    task = worker.start()
    for _ in range(400):  # cancel it in the middle of a job
        if [k async for k in rt.redis.scan_iter(match="arq:in-progress:*")]:
            break
        await asyncio.sleep(0.02)
    assert await worker_alive(rt.redis)
    if how == "cancel":
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    else:
        await worker.stop()
    assert [k async for k in rt.redis.scan_iter(match="sl:worker:*")] == []
    assert not await worker_alive(rt.redis)
    await worker.stop()


async def test_a_job_whose_tries_all_ended_with_their_worker_fails_the_story(rt: Runtime) -> None:
    api = StoryAPI(rt)
    story = await api.start_story("A whale sings to a lighthouse", ALICE, ROOM,
                                  api.default_options(scenes=3, candidates=1, pick="auto"))
    calls: list[str] = []

    async def script(r: Runtime, story_id: str, kw: dict[str, Any]) -> None:
        calls.append(story_id)

    # every try so far started and was lost with its worker (SIGKILL): arq counted each one
    jid = job_id(story.id, "script", story.revision)
    await rt.redis.set(f"arq:retry:{jid}", rt.settings.job_retries + 1)
    worker = build_worker(rt.settings, {"script": script}, on_failure, burst=True, runtime=rt,
                          handle_signals=False)
    await worker.async_run()
    await worker.close()

    failed = await rt.store.get(story.id)
    assert failed.status == Status.failed and failed.failed_step == "script"
    assert failed.error and "stopped" in failed.error and "retry" in failed.error
    assert await _failed_events(rt, story.id) == [failed.error]
    assert calls == []
    resumed = await api.retry(story.id)
    assert resumed.status == Status.drafting


async def test_a_stuck_story_is_failed_by_the_sweeper_and_retry_accepts_it(rt: Runtime) -> None:
    from pipeline.queue import fail_stuck_stories

    api = StoryAPI(rt)
    story = await api.start_story("An owl keeps a lighthouse", ALICE, ROOM,
                                  api.default_options(scenes=3, candidates=1, pick="auto"))
    assert await fail_stuck_stories(rt, on_failure) == []  # its job is queued: not stuck

    # the job is gone (arq dropped it) and nothing has touched the story since
    await rt.redis.delete("arq:queue", f"arq:job:{job_id(story.id, 'script', story.revision)}")
    assert await fail_stuck_stories(rt, on_failure) == []  # too recent to tell

    def age(s: Any) -> None:
        s.transition(Status.casting)

    await rt.store.update(story.id, age)
    raw = json.loads(await rt.redis.hget(f"sl:story:{story.id}", "doc"))  # type: ignore[misc]
    raw["updated_at"] -= 3600
    await rt.redis.hset(f"sl:story:{story.id}", "doc", json.dumps(raw))  # type: ignore[misc]

    # retry takes a stuck story as it is: the step it was in is queued again
    resumed = await api.retry(story.id)
    assert resumed.status == Status.casting
    assert await enqueue(rt.redis, "cast", story.id, resumed.revision) is None  # already queued

    await rt.redis.delete("arq:queue", f"arq:job:{job_id(story.id, 'cast', resumed.revision)}")
    raw = json.loads(await rt.redis.hget(f"sl:story:{story.id}", "doc"))  # type: ignore[misc]
    raw["updated_at"] -= 3600
    await rt.redis.hset(f"sl:story:{story.id}", "doc", json.dumps(raw))  # type: ignore[misc]
    assert await fail_stuck_stories(rt, on_failure) == [story.id]
    failed = await rt.store.get(story.id)
    assert failed.status == Status.failed and failed.failed_step == "cast"
    assert await _failed_events(rt, story.id) == [failed.error]


async def test_a_late_beat_of_a_running_local_worker_keeps_its_jobs(rt: Runtime) -> None:
    """On a loaded machine a beat can come late; while the worker's process runs, its job is
    not handed to another worker (that ran one job twice at once and paid twice)."""
    import os

    me = f"{socket.gethostname()}-{os.getpid()}-abc123"
    await rt.redis.set("arq:in-progress:s7:animate:r4", b"1", px=600_000)
    await rt.redis.set("sl:running:s7:animate:r4", me)
    assert await release_orphans(rt.redis) == []  # no beat on record, but the process runs
    gone = f"{socket.gethostname()}-{_dead_pid()}-abc123"
    await rt.redis.set("sl:running:s7:animate:r4", gone)
    assert await release_orphans(rt.redis) == ["s7:animate:r4"]


async def test_a_stale_last_try_does_not_fail_a_story_that_moved_on(rt: Runtime) -> None:
    """An old job whose tries ran out arrives after a newer job moved the story on: the story
    is not failed by a step it has already left."""
    api = StoryAPI(rt)
    story = await api.start_story("A crane builds a bridge", ALICE, ROOM,
                                  api.default_options(scenes=3, candidates=1, pick="auto"))
    old = job_id(story.id, "script", story.revision)

    def moved(s: Any) -> None:
        s.transition(Status.casting)

    story = await rt.store.update(story.id, moved)
    await enqueue(rt.redis, "cast", story.id, story.revision)  # the newer job is the story's

    async def script(r: Runtime, story_id: str, kw: dict[str, Any]) -> None:
        raise AssertionError("a stale job must not run")

    from pipeline.queue import _wrap

    last = _wrap("script", script, on_failure, rt.settings)
    ctx = {"rt": rt, "job_id": old, "job_try": rt.settings.job_retries + 2, "worker_id": "w"}
    assert "dropped" in await last.coroutine(ctx, story.id, {})
    after = await rt.store.get(story.id)
    assert after.status == Status.casting and after.error is None
    assert await _failed_events(rt, story.id) == []

    # and a late failure of a step the story has left changes nothing either
    await on_failure(rt, story.id, "script", RuntimeError("late"))
    assert (await rt.store.get(story.id)).status == Status.casting
