"""The arq queue: job ids, enqueueing, cancelling, the worker and its health.

A job id is ``<story>:<step>:r<revision>``; arq refuses a second job with an id it still knows, so
a double click enqueues one job. Each step is its own arq function with its own timeout; a
retryable failure is retried with exponential backoff and jitter.

arq only re-runs a job whose worker was SIGKILLed once the job's in-progress lock expires (the
step timeout). Workers here also keep a heartbeat and note which job they run; a starting worker
releases the locks of jobs whose worker has no heartbeat, so a killed worker's job resumes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from arq.jobs import Job, JobStatus
from arq.worker import Function, Worker, func
from redis.exceptions import RedisError

from pipeline.connection import RETRY_ON, resolve_target, riding_out_restarts
from pipeline.runtime import Runtime
from pipeline.settings import Settings

log = logging.getLogger(__name__)

QUEUE = default_queue_name
HEALTH_KEY = QUEUE + health_check_key_suffix
HEARTBEAT_S = 2
HEARTBEAT_TTL_S = 6

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


async def _heartbeat(redis: ArqRedis, worker_id: str) -> None:
    """Say this worker is alive, and free the jobs of workers that stopped saying so."""
    while True:
        try:
            await redis.set(f"sl:worker:{worker_id}", "1", ex=HEARTBEAT_TTL_S)
            await release_orphans(redis)
        except (OSError, RedisError) as err:  # Redis restarting: try again next beat
            log.warning("heartbeat failed", extra={"worker": worker_id, "err": str(err)})
        await asyncio.sleep(HEARTBEAT_S)


async def worker_alive(redis: ArqRedis) -> bool:
    """True when some worker's heartbeat is fresh (any process, any machine)."""
    async for _ in redis.scan_iter(match="sl:worker:*", count=100):
        return True
    return False


async def release_orphans(redis: ArqRedis) -> list[str]:
    """Free the in-progress locks of jobs whose worker stopped beating (it was killed)."""
    released = []
    async for key in redis.scan_iter(match="sl:running:*", count=200):
        jid = key.decode().removeprefix("sl:running:")
        owner = await redis.get(key)
        if owner is None:
            continue
        if not await redis.exists(f"sl:worker:{owner.decode()}"):
            await redis.delete(in_progress_key_prefix + jid, key)
            released.append(jid)
    if released:
        log.warning("resuming jobs of a stopped worker", extra={"jobs": released})
    return released


def _wrap(step: str, fn: StepFn, on_failure: FailureFn, settings: Settings) -> Function:
    async def run(ctx: dict[str, Any], story_id: str, kwargs: dict[str, Any]) -> str:
        rt: Runtime = ctx["rt"]
        jid = ctx["job_id"]
        await rt.redis.set(f"sl:running:{jid}", ctx["worker_id"], ex=settings.step_timeout_s * 4)
        try:
            await fn(rt, story_id, kwargs)
        except (Retry, asyncio.CancelledError):
            raise
        except Exception as err:
            attempt = int(ctx.get("job_try", 1))
            if is_retryable(err) and attempt <= settings.job_retries:
                delay = backoff_s(attempt)
                log.warning(
                    "step failed, retrying",
                    extra={"story_id": story_id, "step": step, "attempt": attempt, "err": str(err)},
                )
                raise Retry(defer=delay) from err
            await on_failure(rt, story_id, step, err)
            return f"{step} failed: {err}"
        finally:
            await rt.redis.delete(f"sl:running:{jid}")
        return f"{step} done"

    run.__qualname__ = run.__name__ = f"step_{step}"
    return func(
        run,
        name=step,
        timeout=max(10, int(settings.step_timeout_s * STEP_TIMEOUT_FACTOR[step])),
        max_tries=settings.job_retries + 1,
    )


def build_worker(
    settings: Settings,
    steps: Mapping[str, StepFn],
    on_failure: FailureFn,
    *,
    burst: bool = False,
    runtime: Runtime | None = None,
    handle_signals: bool = True,
) -> Worker:
    """An arq worker running the given step functions against one Runtime."""

    async def startup(ctx: dict[str, Any]) -> None:
        rt = runtime or await Runtime.open(settings)
        ctx["rt"] = rt
        ctx["worker_id"] = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        ctx["heartbeat"] = asyncio.create_task(_heartbeat(rt.redis, ctx["worker_id"]))
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
            await rt.redis.delete(f"sl:worker:{ctx['worker_id']}")
            if runtime is None:
                await rt.close()

    url = (runtime.target.url if runtime else None) or _target_url(settings)
    redis_settings = RedisSettings.from_dsn(url)
    redis_settings.retry = riding_out_restarts()
    redis_settings.retry_on_error = RETRY_ON
    redis_settings.conn_retries = 30
    return Worker(
        functions=[_wrap(name, fn, on_failure, settings) for name, fn in steps.items()]
        + [func(_close_vote, name=CLOSE_VOTE, timeout=60, max_tries=settings.job_retries + 3)],
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
