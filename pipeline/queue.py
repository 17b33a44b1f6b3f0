"""The arq queue: job ids, enqueueing, cancelling, the worker and its health.

A job id is ``<story>:<step>:r<revision>``; arq refuses a second job with an id it still knows, so
a double click enqueues one job. Each step is its own arq function with its own timeout; a
retryable failure is retried with exponential backoff and jitter.

arq only re-runs a job whose worker was SIGKILLed once the job's in-progress lock expires (the
step timeout). Workers here also keep a heartbeat and note which job they run; a starting worker
releases the locks of jobs whose worker has no heartbeat, so a killed worker's job resumes at once.

A heartbeat names its host and process. It expires after a few seconds, and on its own host a
heartbeat whose process is gone counts as dead at once, so a killed worker cannot look alive.

Each restart of a killed job counts as an arq try. A job is allowed one try more than the step's
retries; the wrapper that sees that extra try knows every earlier try was lost with its worker and
fails the story (a reason and an event) instead of letting arq drop the job in silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from arq import Retry
from arq.connections import ArqRedis, RedisSettings
from arq.constants import default_queue_name, health_check_key_suffix, in_progress_key_prefix
from arq.cron import cron
from arq.jobs import Job, JobStatus
from arq.worker import Function, Worker, func
from redis.exceptions import RedisError

from pipeline.connection import RETRY_ON, resolve_target, riding_out_restarts
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from providers.process import pid_alive

log = logging.getLogger(__name__)

QUEUE = default_queue_name
HEALTH_KEY = QUEUE + health_check_key_suffix
HEARTBEAT_S = 2
HEARTBEAT_TTL_S = 8  # other machines: a missed beat or two under load is not death

STEPS = ("script", "cast", "storyboard", "animate", "voice", "assemble")

# Timeouts as multiples of STORYLOOM_STEP_TIMEOUT_S (video models are the slow ones).
STEP_TIMEOUT_FACTOR = {
    "script": 0.25,
    "cast": 0.5,
    "storyboard": 1.0,
    "animate": 1.0,
    "voice": 0.5,
    "assemble": 1.0,
}

StepFn = Callable[[Runtime, str, dict[str, Any]], Awaitable[None]]
FailureFn = Callable[[Runtime, str, str, BaseException], Awaitable[None]]


def is_retryable(err: BaseException) -> bool:
    """Worth another try later: transient provider trouble, Redis hiccups, timeouts."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from pipeline.errors import ConflictError

    if isinstance(err, (RedisConnectionError, RedisTimeoutError, ConflictError, TimeoutError)):
        return True
    return bool(getattr(err, "retryable", False))


def job_id(story_id: str, step: str, revision: int) -> str:
    return f"{story_id}:{step}:r{revision}"


def backoff_s(attempt: int, base: float = 2.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter for retry ``attempt`` (1-based)."""
    return float(random.uniform(0, min(cap, base * 2 ** (attempt - 1))))


async def enqueue(
    redis: ArqRedis, step: str, story_id: str, revision: int, **kwargs: Any
) -> str | None:
    """Enqueue ``step`` for the story at ``revision``; ``None`` if that job already exists."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}")
    jid = job_id(story_id, step, revision)
    job = await redis.enqueue_job(step, story_id, kwargs, _job_id=jid)
    await redis.set(f"sl:job:{story_id}", jid, ex=7 * 24 * 3600)
    return None if job is None else jid


CLOSE_VOTE = "close_vote"


def vote_job_id(story_id: str, poll_id: str) -> str:
    """``<story>:vote:<kind>-s<scene>-g<generation>``: one close per vote, whoever enqueues."""
    return f"{story_id}:vote:{poll_id}"


async def enqueue_vote_close(redis: ArqRedis, story_id: str, poll_id: str, at: float
                             ) -> str | None:
    """Close the vote at ``at`` (epoch seconds), from a deferred job that outlives restarts."""
    from datetime import UTC, datetime

    jid = vote_job_id(story_id, poll_id)
    when = datetime.fromtimestamp(at, UTC)
    job = await redis.enqueue_job(CLOSE_VOTE, story_id, poll_id, _job_id=jid, _defer_until=when)
    return None if job is None else jid


async def _close_vote(ctx: dict[str, Any], story_id: str, poll_id: str) -> str:
    from pipeline.polls import close_job

    return await close_job(ctx["rt"], story_id, poll_id)


async def last_job_step(redis: ArqRedis, story_id: str) -> str | None:
    """The step of the story's most recently enqueued job."""
    raw = await redis.get(f"sl:job:{story_id}")
    if raw is None:
        return None
    parts = raw.decode().split(":")
    return parts[1] if len(parts) == 3 else None


async def abort_story_job(redis: ArqRedis, story_id: str) -> bool:
    """Abort the story's queued or running job, if any."""
    raw = await redis.get(f"sl:job:{story_id}")
    if raw is None:
        return False
    job = Job(raw.decode(), redis)
    if await job.status() in (JobStatus.complete, JobStatus.not_found):
        return False
    with contextlib.suppress(asyncio.TimeoutError):
        return await job.abort(timeout=0)
    return True


async def queue_depth(redis: ArqRedis) -> int:
    return int(await redis.zcard(QUEUE))


async def health(redis: ArqRedis) -> str | None:
    """The latest worker health line, or None when no worker reported recently."""
    raw = await redis.get(HEALTH_KEY)
    return raw.decode() if raw else None


def heartbeat_key(worker_id: str) -> str:
    return f"sl:worker:{worker_id}"


def _beat_value() -> str:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid()})


def _beat_is_dead(raw: bytes | None) -> bool:
    """A heartbeat that a dead process left behind: gone, or from a stopped process here."""
    if raw is None:
        return True
    try:
        beat = json.loads(raw)
        host, pid = beat["host"], int(beat["pid"])
    except (ValueError, KeyError, TypeError):
        return False  # an older worker's plain beat: trusted until it expires
    return host == socket.gethostname() and not pid_alive(pid)


async def beat(redis: ArqRedis, worker_id: str) -> None:
    """One heartbeat: this worker is alive for the next few seconds."""
    await redis.set(heartbeat_key(worker_id), _beat_value(), ex=HEARTBEAT_TTL_S)


async def _heartbeat(redis: ArqRedis, worker_id: str, on_beat: Callable[[], Awaitable[None]]
                     | None = None) -> None:
    """Say this worker is alive, free the jobs of workers that stopped saying so, and (now and
    then) fail the stories whose job is gone."""
    while True:
        try:
            await beat(redis, worker_id)
            await release_orphans(redis)
            if on_beat is not None:
                await on_beat()
        except (OSError, RedisError) as err:  # Redis restarting: try again next beat
            log.warning("heartbeat failed", extra={"worker": worker_id, "err": str(err)})
        except Exception:
            log.exception("heartbeat chores failed", extra={"worker": worker_id})
        await asyncio.sleep(HEARTBEAT_S)


async def worker_is_live(redis: ArqRedis, worker_id: str) -> bool:
    """True while the worker's heartbeat is fresh and (on this machine) its process runs."""
    key = heartbeat_key(worker_id)
    raw = await redis.get(key)
    if raw is not None and _beat_is_dead(raw):
        await redis.delete(key)
        return False
    return raw is not None or _local_process_runs(worker_id)


def _local_process_runs(worker_id: str) -> bool:
    """A worker of this machine whose process still runs is alive even when a beat came late
    (a loaded machine): its jobs are not handed to another worker while it works on them."""
    parts = worker_id.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    return parts[0] == socket.gethostname() and pid_alive(int(parts[1]))


async def worker_alive(redis: ArqRedis) -> bool:
    """True when some worker's heartbeat is fresh (any process, any machine), leaving out the
    heartbeats of processes on this machine that are gone (killed before they could clear it)."""
    async for key in redis.scan_iter(match="sl:worker:*", count=100):
        if await worker_is_live(redis, key.decode().removeprefix("sl:worker:")):
            return True
    return False


async def clear_heartbeat(redis: ArqRedis, worker_id: str) -> None:
    with contextlib.suppress(OSError, RedisError):
        await redis.delete(heartbeat_key(worker_id))


async def release_orphans(redis: ArqRedis) -> list[str]:
    """Free the in-progress locks of jobs whose worker stopped beating (it was killed)."""
    released = []
    async for key in redis.scan_iter(match="sl:running:*", count=200):
        jid = key.decode().removeprefix("sl:running:")
        owner = await redis.get(key)
        if owner is None:
            continue
        if not await worker_is_live(redis, owner.decode()):
            await redis.delete(in_progress_key_prefix + jid, key)
            released.append(jid)
    if released:
        log.warning("resuming jobs of a stopped worker", extra={"jobs": released})
    return released


ACTIVE = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)
STUCK_AFTER_S = 20.0
SWEEP_EVERY_S = 10.0


async def story_job_active(redis: ArqRedis, story_id: str) -> bool:
    """True while the story's latest job is waiting, deferred for a retry, or running."""
    raw = await redis.get(f"sl:job:{story_id}")
    if raw is None:
        return False
    return await Job(raw.decode(), redis).status() in ACTIVE


async def stuck_stories(rt: Runtime, older_than_s: float = STUCK_AFTER_S) -> list[str]:
    """Stories in a working status that no job will move on: their job is gone (dropped after
    its tries, expired, lost with a Redis that forgot it) and they have not changed for a while."""
    from pipeline.models import WORK_STATES, now

    found = []
    for status in WORK_STATES:
        for raw in await rt.redis.smembers(f"sl:status:{status.value}"):  # type: ignore[misc]
            story_id = raw.decode()
            if await story_job_active(rt.redis, story_id):
                continue
            try:
                story = await rt.store.get(story_id)
            except Exception:  # gone or damaged: not a stuck story
                continue
            if story.status == status and now() - story.updated_at >= older_than_s:
                found.append(story_id)
    return found


def status_step(status: str) -> str:
    """The step that works on a story in ``status``."""
    return {"drafting": "script", "casting": "cast", "storyboarding": "storyboard",
            "animating": "animate", "voicing": "voice", "assembling": "assemble"}[status]


async def fail_stuck_stories(rt: Runtime, on_failure: FailureFn) -> list[str]:
    """End every stuck story as failed, with a reason and an event, so it can be retried."""
    from pipeline.errors import WorkLost

    swept = await stuck_stories(rt)
    for story_id in swept:
        story = await rt.store.get(story_id)
        step = status_step(story.status.value)
        log.warning("failing a story whose job is gone", extra={"story_id": story_id,
                                                               "step": step})
        await on_failure(rt, story_id, step, WorkLost(step))
    return swept


def _wrap(step: str, fn: StepFn, on_failure: FailureFn, settings: Settings) -> Function:
    last_try = settings.job_retries + 1

    async def run(ctx: dict[str, Any], story_id: str, kwargs: dict[str, Any]) -> str:
        rt: Runtime = ctx["rt"]
        jid = ctx["job_id"]
        attempt = int(ctx.get("job_try", 1))
        if attempt > last_try:
            # arq allows one try more than the step's: every earlier try ended with its worker
            # (killed), so this story ends failed and can be retried, rather than hang; unless
            # a newer job of the story took over (then this one is stale and changes nothing).
            from pipeline.errors import WorkLost

            latest = await rt.redis.get(f"sl:job:{story_id}")
            if latest is not None and latest.decode() != jid:
                return f"{step} dropped: a newer job of the story took over"

            await on_failure(rt, story_id, step, WorkLost(step, attempt - 1))
            return f"{step} failed: its worker stopped {attempt - 1} times"
        await rt.redis.set(f"sl:running:{jid}", ctx["worker_id"], ex=settings.step_timeout_s * 4)
        try:
            await fn(rt, story_id, kwargs)
        except (Retry, asyncio.CancelledError):
            raise
        except Exception as err:
            if is_retryable(err) and attempt < last_try:
                delay = backoff_s(attempt)
                log.warning(
                    "step failed, retrying",
                    extra={"story_id": story_id, "step": step, "attempt": attempt, "err": str(err)},
                )
                raise Retry(defer=delay) from err
            await on_failure(rt, story_id, step, err)
            return f"{step} failed: {err}"
        finally:
            with contextlib.suppress(OSError, RedisError):
                await rt.redis.delete(f"sl:running:{jid}")
        return f"{step} done"

    run.__qualname__ = run.__name__ = f"step_{step}"
    return func(
        run,
        name=step,
        timeout=max(10, int(settings.step_timeout_s * STEP_TIMEOUT_FACTOR[step])),
        max_tries=last_try + 1,
    )


def build_worker(
    settings: Settings,
    steps: Mapping[str, StepFn],
    on_failure: FailureFn,
    *,
    burst: bool = False,
    runtime: Runtime | None = None,
    handle_signals: bool = True,
    url: str | None = None,
) -> Worker:
    """An arq worker running the given step functions against one Runtime."""

    async def startup(ctx: dict[str, Any]) -> None:
        rt = runtime or await Runtime.open(settings)
        ctx["rt"] = rt
        from pipeline.scratch import sweep_scratch

        await asyncio.to_thread(sweep_scratch, settings.data_dir)
        ctx["worker_id"] = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        await beat(rt.redis, ctx["worker_id"])
        sweep_at = [0.0]

        async def chores() -> None:
            loop = asyncio.get_running_loop()
            if loop.time() >= sweep_at[0]:
                sweep_at[0] = loop.time() + SWEEP_EVERY_S
                await fail_stuck_stories(rt, on_failure)

        ctx["heartbeat"] = asyncio.create_task(_heartbeat(rt.redis, ctx["worker_id"], chores))
        try:
            from providers import http as provider_http

            configure = getattr(provider_http, "configure_redis", None)
            if configure is not None:
                configure(rt.redis)
        except ImportError:
            pass

    async def shutdown(ctx: dict[str, Any]) -> None:
        task = ctx.get("heartbeat")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        rt: Runtime | None = ctx.get("rt")
        if rt is not None:
            await clear_heartbeat(rt.redis, ctx["worker_id"])
            if runtime is None:
                await rt.close()

    async def retention(ctx: dict[str, Any]) -> str:
        from pipeline.gc import collect

        return (await collect(ctx["rt"], dry_run=False)).summary()

    crons = []
    if settings.retention_media_days or settings.retention_story_days:
        crons.append(cron(retention, name="retention", minute={17}, run_at_startup=True,
                          timeout=3600))

    url = url or (runtime.target.url if runtime else None) or _target_url(settings)
    redis_settings = RedisSettings.from_dsn(url)
    redis_settings.retry = riding_out_restarts()
    redis_settings.retry_on_error = RETRY_ON
    redis_settings.conn_retries = 30
    return Worker(
        functions=[_wrap(name, fn, on_failure, settings) for name, fn in steps.items()]
        + [func(_close_vote, name=CLOSE_VOTE, timeout=60, max_tries=settings.job_retries + 3)],
        cron_jobs=crons,
        redis_settings=redis_settings,
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=settings.worker_concurrency,
        allow_abort_jobs=True,
        burst=burst,
        poll_delay=0.2,
        health_check_interval=10,
        keep_result=3600,
        handle_signals=handle_signals,
        job_timeout=settings.step_timeout_s,
    )


def _target_url(settings: Settings) -> str:
    return resolve_target(settings).url
