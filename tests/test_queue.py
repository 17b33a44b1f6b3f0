"""The arq queue and the event outbox on a real Valkey."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.events import EventKind, Outbox, StoryEvent
from pipeline.models import Platform, Status
from pipeline.queue import build_worker, enqueue, job_id, queue_depth, release_orphans
from pipeline.runtime import Runtime
from tests.factories import ROOM


async def test_same_job_id_enqueued_twice_runs_once(rt: Runtime) -> None:
    runs: list[str] = []

    async def script(r: Runtime, story_id: str, kw: dict[str, Any]) -> None:
        runs.append(story_id)

    async def failed(*_: Any) -> None:
        raise AssertionError("no failure expected")

    first = await enqueue(rt.redis, "script", "s1", 0)
    second = await enqueue(rt.redis, "script", "s1", 0)  # a double click
    third = await enqueue(rt.redis, "script", "s1", 1)  # a later revision is a new job
    assert first == job_id("s1", "script", 0) and second is None and third is not None
    assert await queue_depth(rt.redis) == 2

    worker = build_worker(rt.settings, {"script": script}, failed, burst=True, runtime=rt,
                          handle_signals=False)
    await worker.async_run()
    await worker.close()
    assert runs == ["s1", "s1"]
    # Enqueued again after it ran: arq still knows the job id, so it is refused.
    assert await enqueue(rt.redis, "script", "s1", 0) is None


async def test_retryable_failure_is_retried_then_reported(rt: Runtime) -> None:
    from providers.base import ProviderUnavailable

    attempts: list[int] = []
    failures: list[str] = []

    async def script(r: Runtime, story_id: str, kw: dict[str, Any]) -> None:
        attempts.append(1)
        raise ProviderUnavailable("fake", "503 from upstream")

    async def failed(r: Runtime, story_id: str, step: str, err: BaseException) -> None:
        failures.append(f"{step}: {err}")

    await enqueue(rt.redis, "script", "s2", 0)
    settings = rt.settings.model_copy(update={"job_retries": 2})
    import pipeline.queue as q

    original = q.backoff_s
    q.backoff_s = lambda attempt, base=2.0, cap=60.0: 0.01  # type: ignore[assignment]
    try:
        worker = build_worker(settings, {"script": script}, failed, burst=True, runtime=rt,
                              handle_signals=False)
        await worker.async_run()
        await worker.close()
    finally:
        q.backoff_s = original
    assert len(attempts) == 3  # first try + 2 retries
    assert failures == ["script: fake: 503 from upstream"]


async def test_orphaned_job_lock_is_released(rt: Runtime) -> None:
    await rt.redis.set("arq:in-progress:s3:script:r0", b"1", px=600_000)
    await rt.redis.set("sl:running:s3:script:r0", "dead-worker")
    await rt.redis.set("sl:worker:live-worker", "1", ex=10)
    await rt.redis.set("arq:in-progress:s4:script:r0", b"1", px=600_000)
    await rt.redis.set("sl:running:s4:script:r0", "live-worker")
    released = await release_orphans(rt.redis)
    assert released == ["s3:script:r0"]
    assert not await rt.redis.exists("arq:in-progress:s3:script:r0")
    assert await rt.redis.exists("arq:in-progress:s4:script:r0")


def _event(n: int) -> StoryEvent:
    return StoryEvent(story_id=f"s{n}", kind=EventKind.progress, chat=ROOM,
                      status=Status.storyboarding, current=n, total=3)


async def test_consumer_restart_receives_unacknowledged_events(rt: Runtime) -> None:
    out = Outbox(rt.redis)
    await out.ensure_group(Platform.console, "bots")
    for n in range(3):
        await out.publish(_event(n))

    got = await out.read(Platform.console, "bots", "bot-1", block_ms=100)
    assert [e.current for _, e in got] == [0, 1, 2]
    await out.ack(Platform.console, "bots", got[0][0])  # rendered the first, then crashed

    # The same consumer after a restart: the two it never acknowledged come back first.
    again = await out.read(Platform.console, "bots", "bot-1", block_ms=100)
    assert [e.current for _, e in again] == [1, 2]
    await out.ack(Platform.console, "bots", *(i for i, _ in again))
    await out.publish(_event(3))
    fresh = await out.read(Platform.console, "bots", "bot-1", block_ms=100)
    assert [e.current for _, e in fresh] == [3]


async def test_other_platforms_streams_are_separate(rt: Runtime) -> None:
    out = Outbox(rt.redis)
    await out.ensure_group(Platform.telegram, "bots")
    await out.publish(_event(1))  # a console chat's event
    assert await out.read(Platform.telegram, "bots", "tg", block_ms=50) == []


async def test_dead_consumers_events_can_be_claimed(rt: Runtime) -> None:
    out = Outbox(rt.redis)
    await out.ensure_group(Platform.console, "bots")
    await out.publish(_event(7))
    await out.read(Platform.console, "bots", "dead", block_ms=50)
    await asyncio.sleep(0.05)
    claimed = await out.claim_stale(Platform.console, "bots", "alive", min_idle_ms=10)
    assert [e.current for _, e in claimed] == [7]
