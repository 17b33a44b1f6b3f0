"""The job journal: the provider jobs a step's calls started, kept in Redis.

It is :class:`providers.base.JobLog` for one call of a step, scoped by the call's input key (the
key its outputs are cached under). A provider records its job here the moment the service names
it, so a step run again after its worker was killed resumes the job instead of paying for it a
second time. Once the outputs are cached the journal of that key is cleared.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from providers.base import JobRef

TTL_S = 7 * 24 * 3600  # longer than any job is followed; a journal never outlives its use long


def journal_key(scope: str) -> str:
    return f"sl:jobs:{scope}"


class JobJournal:
    """The jobs of one cached call. ``stop`` is shared by the calls of one fan-out: once set,
    providers cancel their jobs instead of waiting for them (see ``pipeline.steps``)."""

    def __init__(self, redis: Redis, scope: str, stop: asyncio.Event | None = None) -> None:
        self.redis = redis
        self.key = journal_key(scope)
        self.stop = stop

    async def recall(self, entry: str) -> JobRef | None:
        raw = await self.redis.hget(self.key, entry)  # type: ignore[misc]
        return None if raw is None else JobRef.model_validate_json(raw)

    async def record(self, entry: str, job: JobRef) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key, entry, job.model_dump_json())
        pipe.expire(self.key, TTL_S)
        await pipe.execute()

    async def forget(self, entry: str) -> None:
        await self.redis.hdel(self.key, entry)  # type: ignore[misc]

    async def jobs(self) -> dict[str, JobRef]:
        raw = await self.redis.hgetall(self.key)  # type: ignore[misc]
        return {k.decode(): JobRef.model_validate_json(v) for k, v in raw.items()}

    async def clear(self) -> None:
        """The call's outputs are stored: its jobs need no following any more."""
        await self.redis.delete(self.key)

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def until_stopping(self) -> None:
        await (self.stop or asyncio.Event()).wait()
