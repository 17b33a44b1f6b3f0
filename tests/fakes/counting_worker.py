"""A real worker process whose provider calls are counted in Redis (for the kill test).

    python -m tests.fakes.counting_worker REDIS_URL DATA_DIR DELAY_S
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from typing import Any

from redis.asyncio import Redis

from pipeline.runtime import Runtime
from pipeline.settings import load_settings
from pipeline.worker import BackgroundWorker
from providers.registry import Chain, Providers, build_providers
from tests.fakes.recording import METHODS


class Counting:
    def __init__(self, inner: Any, cap: str, redis: Redis, delay: float) -> None:
        self.inner, self.cap, self.redis, self.delay = inner, cap, redis, delay
        self.name = inner.name
        setattr(self, METHODS[cap], self._call)

    async def _call(self, request: Any) -> Any:
        fp = hashlib.sha256(
            request.model_dump_json(exclude={"image", "characters"}).encode()
        ).hexdigest()[:16]
        await self.redis.incr("test:inflight")
        try:
            await self.redis.incr("test:calls")
            await self.redis.sadd("test:distinct", f"{self.cap}:{fp}")
            await asyncio.sleep(self.delay)
            return await getattr(self.inner, METHODS[self.cap])(request)
        finally:
            await self.redis.decr("test:inflight")


async def main(url: str, data_dir: str, delay: float) -> None:
    settings = load_settings(env_file=None, redis_url=url, data_dir=data_dir, job_retries=2,
                             step_timeout_s=120)
    rt = await Runtime.open(settings)
    base = build_providers(settings)
    counter = Redis.from_url(url)

    def wrap(cap: str) -> Chain[Any]:
        return Chain(cap, [Counting(p, cap, counter, delay) for p in base.chain(cap).providers])  # type: ignore[arg-type]

    rt.providers = Providers(script=wrap("script"), image=wrap("image"), video=wrap("video"),
                             speech=wrap("speech"), music=wrap("music"))
    await BackgroundWorker(settings, rt, handle_signals=True).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
