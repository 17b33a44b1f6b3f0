"""A pipeline worker that outlives Redis restarts.

arq's worker loop ends when Redis goes away (opening a connection is not retried). The
supervisor here waits for Redis to answer again and starts a fresh worker. Jobs that were running
are cancelled with the old worker; their locks are freed by the heartbeat mechanism in
``pipeline.queue`` and they run again, finding their stored outputs (steps are idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from pipeline.connection import resolve_target
from pipeline.queue import HEARTBEAT_S, build_worker, clear_heartbeat, worker_alive
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.steps import STEP_FUNCTIONS, on_failure

log = logging.getLogger(__name__)


class BackgroundWorker:
    """Runs the story steps in this process until stopped (or, in burst mode, until idle)."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime | None = None,
        *,
        burst: bool = False,
        handle_signals: bool = False,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.burst = burst
        self.handle_signals = handle_signals
        self.worker: Any = None
        self.restarts = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        delay = 0.5
        while not self._stopping:
            url = None
            if self.runtime is None or self.runtime.target.embedded:
                # the embedded server may have come back elsewhere after a crash
                url = (await asyncio.to_thread(resolve_target, self.settings)).url
            self.worker = build_worker(
                self.settings, STEP_FUNCTIONS, on_failure, burst=self.burst,
                runtime=self.runtime, handle_signals=self.handle_signals, url=url,
            )
            try:
                await self.worker.async_run()
                return
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # stop() or the caller cancelled us
                return  # arq's own shutdown on SIGINT/SIGTERM
            except (RedisError, OSError) as err:
                if self._stopping:
                    return
                self.restarts += 1
                log.warning("lost Redis; restarting the worker when it is back",
                            extra={"err": str(err), "restarts": self.restarts})
            finally:
                await self._discard(self.worker)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    @staticmethod
    async def _discard(worker: Any) -> None:
        """Stop an arq worker for good: its jobs cancelled (arq runs them again later), its
        heartbeat cleared so no one waits on a worker that is gone, its connections closed.

        arq's ``close`` gathers the job tasks, which raises the ``CancelledError`` of a
        cancelled job before it deletes anything; so the tasks are awaited and dropped here
        first, and the heartbeat is cleared whatever ``close`` does."""
        heartbeat = worker.ctx.get("heartbeat")
        if heartbeat is not None:
            heartbeat.cancel()
        tasks = list(worker.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        worker.tasks.clear()
        rt = worker.ctx.get("rt")
        if rt is not None and "worker_id" in worker.ctx:
            await clear_heartbeat(rt.redis, worker.ctx["worker_id"])
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await worker.close()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run())
        return self._task

    @property
    def failed(self) -> BaseException | None:
        """The error that ended the worker, if it ended other than by :meth:`stop`."""
        if self._task is None or not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the worker; when this returns its heartbeat is gone from Redis."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.worker is not None:
            await self._discard(self.worker)


class WorkerGuard:
    """Keeps a worker within reach: runs one in this process whenever no live worker's heartbeat
    is seen (at start, and again each time it is checked), so a story never waits on a worker
    that was killed."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.worker: BackgroundWorker | None = None

    @property
    def in_process(self) -> bool:
        return self.worker is not None

    async def check(self) -> bool:
        """Start a worker here if none is alive; True when it started one now."""
        if self.worker is not None:
            return False
        if await worker_alive(self.rt.redis):
            return False
        self.worker = BackgroundWorker(self.rt.settings, self.rt)
        self.worker.start()
        return True

    async def watch(self, started: Callable[[], None], every_s: float = HEARTBEAT_S) -> None:
        """Check now and then until cancelled; call ``started`` when a worker starts here."""
        while True:
            try:
                if await self.check():
                    started()
            except (RedisError, OSError) as err:
                log.warning("cannot check for a worker", extra={"err": str(err)})
            await asyncio.sleep(every_s)

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()


async def run_until_idle(rt: Runtime) -> None:
    """Run every queued step, and those they enqueue, then return (tests and benches)."""
    await BackgroundWorker(rt.settings, rt, burst=True).run()
