"""An in-memory job log for the provider tests (the pipeline keeps its own in Redis)."""

from __future__ import annotations

import asyncio

from providers.base import JobRef


class MemoryJobLog:
    def __init__(self) -> None:
        self.jobs: dict[str, JobRef] = {}
        self.stop = asyncio.Event()
        self.changed = asyncio.Event()

    async def recall(self, entry: str) -> JobRef | None:
        return self.jobs.get(entry)

    async def record(self, entry: str, job: JobRef) -> None:
        self.jobs[entry] = job
        self.changed.set()

    async def forget(self, entry: str) -> None:
        self.jobs.pop(entry, None)

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    async def until_stopping(self) -> None:
        await self.stop.wait()

    async def recorded(self, n: int = 1, within_s: float = 5.0) -> None:
        """Wait until ``n`` jobs are recorded."""
        async with asyncio.timeout(within_s):
            while len(self.jobs) < n:
                self.changed.clear()
                await self.changed.wait()
