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

from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.worker import WorkerGuard

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
    guard = WorkerGuard(rt)
    watch: asyncio.Task[None] | None = None
    bot = await make_bot(rt)
    try:
        want = settings.bot_worker if with_worker is None else with_worker
        if want:
            # checked at start and then every heartbeat: a worker killed a moment ago still
            # has a heartbeat for a few seconds, and a shared worker may die later
            await guard.check()
        me = await bot.start()
        log.info(f"{platform} bot running", extra={"bot": me, "worker": guard.in_process})
        print(f"storyloom {platform}: {me} is listening"
              + (" (with a worker in this process)" if guard.in_process else ""), flush=True)
        if want:
            def started() -> None:
                log.warning("no live worker: running one in this bot process")
                print(f"storyloom {platform}: no live worker; running one in this process",
                      flush=True)

            watch = asyncio.create_task(guard.watch(started))
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await bot.stop()
        await guard.stop()
        await rt.close()
