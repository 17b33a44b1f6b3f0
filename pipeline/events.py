"""The event outbox: ``StoryEvent``s on one Redis stream per platform, read with consumer groups.

The worker never talks to a chat platform; it appends events here. Each front-end (a bot, the
CLI) reads its platform's stream in a consumer group, renders, and acknowledges. A consumer that
restarts under the same name first receives what it read but never acknowledged.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from pipeline.models import ChatRef, Platform, Status, Story, now

log = logging.getLogger(__name__)

STREAM_MAXLEN = 20_000


class EventKind(StrEnum):
    created = "created"
    status = "status"  # the story moved to another status
    progress = "progress"  # step, scene k of n
    candidates = "candidates"  # one scene's storyboard candidates are ready
    awaiting_approval = "awaiting_approval"  # every scene has candidates; people pick
    video = "video"  # the finished video is ready
    failed = "failed"
    cancelled = "cancelled"
    notice = "notice"  # something a person should read (a refused scene, a fallback)
    vote = "vote"  # a community vote opened, changed or closed (``scene``)
    spend = "spend"  # a paid step waits for a moderator, or was approved
    gallery = "gallery"  # a finished community story joined the gallery


class StoryEvent(BaseModel):
    story_id: str
    kind: EventKind
    chat: ChatRef
    status: Status
    revision: int = 0
    step: str = ""
    scene: int | None = Field(None, description="0-based scene index, when about one scene")
    current: int = 0
    total: int = 0
    message: str = ""
    at: float = Field(default_factory=now)

    @classmethod
    def of(cls, story: Story, kind: EventKind, **fields: object) -> StoryEvent:
        return cls(
            story_id=story.id,
            kind=kind,
            chat=story.chat,
            status=story.status,
            revision=story.revision,
            **fields,
        )


def stream_key(platform: Platform | str) -> str:
    return f"sl:events:{Platform(platform).value}"


class Outbox:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def publish(self, event: StoryEvent) -> str:
        entry_id = await self.redis.xadd(
            stream_key(event.chat.platform),
            {"event": event.model_dump_json()},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def ensure_group(self, platform: Platform | str, group: str, start: str = "0") -> None:
        """Create the consumer group if missing; ``start="$"`` skips the stream's history."""
        try:
            await self.redis.xgroup_create(stream_key(platform), group, id=start, mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def read(
        self,
        platform: Platform | str,
        group: str,
        consumer: str,
        *,
        count: int = 50,
        block_ms: int | None = 1000,
        pending_first: bool = True,
    ) -> list[tuple[str, StoryEvent]]:
        """Events for this consumer: its unacknowledged ones first, then new ones."""
        key = stream_key(platform)
        out: list[tuple[str, StoryEvent]] = []
        if pending_first:
            out = await self._read(key, group, consumer, "0", count, None)
        if not out:
            out = await self._read(key, group, consumer, ">", count, block_ms)
        return out

    async def _read(
        self, key: str, group: str, consumer: str, start: str, count: int, block: int | None
    ) -> list[tuple[str, StoryEvent]]:
        reply = await self.redis.xreadgroup(group, consumer, {key: start}, count=count, block=block)
        out: list[tuple[str, StoryEvent]] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                raw = fields.get(b"event") if fields else None
                if raw is None:
                    continue  # already deleted (trimmed) entry: nothing to render
                try:
                    out.append((eid, StoryEvent.model_validate_json(raw)))
                except ValidationError:
                    log.error("dropping malformed event", extra={"entry": eid})
                    await self.redis.xack(key, group, eid)
        return out

    async def ack(self, platform: Platform | str, group: str, *entry_ids: str) -> None:
        if entry_ids:
            await self.redis.xack(stream_key(platform), group, *entry_ids)

    async def claim_stale(
        self, platform: Platform | str, group: str, consumer: str, min_idle_ms: int = 60_000
    ) -> list[tuple[str, StoryEvent]]:
        """Take over events another consumer read but never acknowledged (it died)."""
        key = stream_key(platform)
        reply = await self.redis.xautoclaim(key, group, consumer, min_idle_ms, "0-0", count=100)
        out: list[tuple[str, StoryEvent]] = []
        for entry_id, fields in reply[1]:
            if fields and b"event" in fields:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                out.append((eid, StoryEvent.model_validate_json(fields[b"event"])))
        return out
