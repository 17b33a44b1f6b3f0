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
from typing import Any

from redis.exceptions import RedisError

from pipeline.queue import build_worker
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
            self.worker = build_worker(
                self.settings, STEP_FUNCTIONS, on_failure, burst=self.burst,
                runtime=self.runtime, handle_signals=self.handle_signals,
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
        heartbeat = worker.ctx.get("heartbeat")
        if heartbeat is not None:
            heartbeat.cancel()
        for task in list(worker.tasks.values()):
            task.cancel()
        with contextlib.suppress(Exception):
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
        self._stopping = True
        if self.worker is not None:
            with contextlib.suppress(Exception):
                await self.worker.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def run_until_idle(rt: Runtime) -> None:
    """Run every queued step, and those they enqueue, then return (tests and benches)."""
    await BackgroundWorker(rt.settings, rt, burst=True).run()
