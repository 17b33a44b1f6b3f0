"""What a Storyloom process holds open: settings, one Redis client, the store, the media store,
the outbox and (lazily) the provider chains. Built once per process and passed around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arq.connections import ArqRedis

from pipeline.connection import RedisTarget, open_redis
from pipeline.events import Outbox
from pipeline.media import MediaStore, media_store_for
from pipeline.settings import Settings
from pipeline.store import StepCache, StoryStore

if TYPE_CHECKING:
    from providers.registry import Providers


@dataclass
class Runtime:
    settings: Settings
    target: RedisTarget
    redis: ArqRedis
    store: StoryStore
    cache: StepCache
    media: MediaStore
    outbox: Outbox
    _providers: Providers | None = field(default=None, repr=False)

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        target, redis = await open_redis(settings)
        return cls(
            settings=settings,
            target=target,
            redis=redis,
            store=StoryStore(redis),
            cache=StepCache(redis),
            media=media_store_for(settings),
            outbox=Outbox(redis),
        )

    @property
    def providers(self) -> Providers:
        if self._providers is None:
            from providers.registry import build_providers

            self._providers = build_providers(self.settings)
        return self._providers

    @providers.setter
    def providers(self, value: Providers) -> None:
        self._providers = value

    async def close(self) -> None:
        await self.redis.aclose()
