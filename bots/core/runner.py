"""Running a chat bot as a process: the runtime, an optional in-process worker, signals.

Each platform supplies a factory for its bot; everything around it is the same for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from pipeline.queue import worker_alive
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.worker import BackgroundWorker

log = logging.getLogger(__name__)


class RunnableBot(Protocol):
    async def start(self) -> str:
        """Connect and start listening; return the name the bot goes by there."""
        ...

    async def stop(self) -> None: ...


async def serve(
    platform: str,
    settings: Settings,
    make_bot: Callable[[Runtime], Awaitable[RunnableBot]],
    *,
    with_worker: bool | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the bot until ``stop`` is set or SIGINT/SIGTERM; optionally with a worker."""
    rt = await Runtime.open(settings)
    worker: BackgroundWorker | None = None
    bot = await make_bot(rt)
    try:
        want = settings.bot_worker if with_worker is None else with_worker
        if want and not await worker_alive(rt.redis):
            worker = BackgroundWorker(settings, rt)
            worker.start()
        me = await bot.start()
        log.info(f"{platform} bot running", extra={"bot": me, "worker": worker is not None})
        print(f"storyloom {platform}: {me} is listening"
              + (" (with a worker in this process)" if worker is not None else ""), flush=True)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await bot.stop()
        if worker is not None:
            await worker.stop()
        await rt.close()
