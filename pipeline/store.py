"""Stories as JSON documents in Redis, updated by compare-and-set on a revision number.

Each story is a hash ``sl:story:<id>`` with ``rev`` and ``doc``. A Lua script writes a new
document only when the stored revision is the one the writer read, and keeps the indexes (by chat,
by owner, by status) in the same atomic step. :meth:`StoryStore.update` reloads and re-applies the
change on conflict, so a hundred concurrent updates all land.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from pipeline.errors import ConflictError, CorruptStory, StoryNotFound
from pipeline.models import ChatRef, Status, Story, UserRef, now

log = logging.getLogger(__name__)

P = "sl:"

_CAS = """
local cur = redis.call('HGET', KEYS[1], 'rev')
if (cur or '-1') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'doc', ARGV[3], 'status', ARGV[4])
redis.call('HDEL', KEYS[1], 'corrupt')
if ARGV[5] ~= '' then redis.call('SREM', KEYS[2] .. ARGV[5], ARGV[6]) end
redis.call('SADD', KEYS[2] .. ARGV[4], ARGV[6])
if ARGV[1] == '-1' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6])
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[6])
end
return 1
"""

Mutator = Callable[[Story], Story | Awaitable[Story | None] | None]


def story_key(story_id: str) -> str:
    return f"{P}story:{story_id}"


class StoryStore:
    def __init__(self, redis: Redis, max_attempts: int = 200) -> None:
        self.redis = redis
        self.max_attempts = max_attempts
        self._cas = redis.register_script(_CAS)

    # ------------------------------------------------------------------ reads

    async def _raw(self, story_id: str) -> tuple[int, bytes, bytes | None]:
        rev, doc, corrupt = await self.redis.hmget(  # type: ignore[misc]
            story_key(story_id), ["rev", "doc", "corrupt"]
        )
        if rev is None or doc is None:
            raise StoryNotFound(story_id)
        return int(rev), doc, corrupt

    def _parse(self, story_id: str, rev: int, doc: bytes) -> Story:
        try:
            story = Story.model_validate_json(doc)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            raise CorruptStory(story_id, f"{where}: {first['msg']}") from None
        story.revision = rev
        return story

    async def get(self, story_id: str) -> Story:
        rev, doc, corrupt = await self._raw(story_id)
        if corrupt is not None:
            raise CorruptStory(story_id, corrupt.decode())
        return self._parse(story_id, rev, doc)

    async def exists(self, story_id: str) -> bool:
        return bool(await self.redis.exists(story_key(story_id)))

    async def by_chat(self, chat: ChatRef, limit: int = 20) -> list[str]:
        ids = await self.redis.zrevrange(f"{P}chat:{chat.key}", 0, limit - 1)
        return [i.decode() for i in ids]

    async def by_owner(self, owner: UserRef, limit: int = 20) -> list[str]:
        ids = await self.redis.zrevrange(f"{P}owner:{owner.key}", 0, limit - 1)
        return [i.decode() for i in ids]

    async def count_by_status(self) -> dict[str, int]:
        pipe = self.redis.pipeline()
        for s in Status:
            pipe.scard(f"{P}status:{s.value}")
        counts = await pipe.execute()
        return {s.value: int(n) for s, n in zip(Status, counts, strict=True)}

    # ------------------------------------------------------------------ writes

    async def _write(self, story: Story, expected_rev: int, old_status: str) -> bool:
        story.updated_at = now()
        new_rev = expected_rev + 1
        doc = story.model_copy(update={"revision": new_rev}).model_dump_json()
        ok = await self._cas(
            keys=[
                story_key(story.id),
                f"{P}status:",
                f"{P}chat:{story.chat.key}",
                f"{P}owner:{story.owner.key}",
                f"{P}stories",
            ],
            args=[
                str(expected_rev),
                str(new_rev),
                doc,
                story.status.value,
                old_status,
                story.id,
                str(story.created_at),
            ],
        )
        if ok:
            story.revision = new_rev
        return bool(ok)

    async def create(self, story: Story) -> Story:
        if not await self._write(story, -1, ""):
            raise ConflictError(f"story {story.id} already exists")
        return story

    async def update(self, story_id: str, change: Mutator) -> Story:
        """Apply ``change`` to the freshest document until the compare-and-set wins.

        ``change`` edits the story in place (or returns a replacement); it may run several times,
        so it must depend only on the story it is given. Raising inside it aborts the update.
        """
        for _ in range(self.max_attempts):
            rev, doc, corrupt = await self._raw(story_id)
            if corrupt is not None:
                raise CorruptStory(story_id, corrupt.decode())
            story = self._parse(story_id, rev, doc)
            old_status = story.status.value
            result = change(story)
            if isinstance(result, Awaitable):
                result = await result
            story = result or story
            if await self._write(story, rev, old_status):
                return story
        raise ConflictError(f"story {story_id} is too busy; try again")

    async def mark_corrupt(self, story_id: str, reason: str) -> None:
        """Flag a document that does not validate as failed, keeping its bytes for inspection."""
        key = story_key(story_id)
        status = await self.redis.hget(key, "status")  # type: ignore[misc]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"corrupt": reason, "status": Status.failed.value})
        if status:
            pipe.srem(f"{P}status:{status.decode()}", story_id)
        pipe.sadd(f"{P}status:{Status.failed.value}", story_id)
        await pipe.execute()
        log.error("story document is damaged", extra={"story_id": story_id, "reason": reason})


class StepCache:
    """Outputs of a step, stored under a key derived from its inputs before the story advances.

    A rerun after a crash finds them and makes no second provider call.
    """

    def __init__(self, redis: Redis, ttl_s: int = 60 * 60 * 24 * 30) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def get(self, key: str) -> Any | None:
        raw = await self.redis.get(f"{P}cache:{key}")
        return None if raw is None else json.loads(raw)

    async def put(self, key: str, value: Any) -> None:
        await self.redis.set(f"{P}cache:{key}", json.dumps(value), ex=self.ttl_s)


_DOC_CAS = """
local cur = redis.call('HGET', KEYS[1], 'rev')
if (cur or '-1') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'doc', ARGV[3])
return 1
"""


D = TypeVar("D", bound=BaseModel)


class Documents(Generic[D]):
    """Other revisioned documents (a community...) with the stories' compare-and-set: a hash
    ``<prefix><id>`` with ``rev`` and ``doc``; :meth:`update` re-applies a change on conflict."""

    def __init__(self, redis: Redis, prefix: str, model: type[D], max_attempts: int = 200
                 ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.model = model
        self.max_attempts = max_attempts
        self._cas = redis.register_script(_DOC_CAS)

    async def _raw(self, doc_id: str) -> tuple[int, D] | None:
        rev, doc = await self.redis.hmget(self.prefix + doc_id, ["rev", "doc"])  # type: ignore[misc]
        if rev is None or doc is None:
            return None
        return int(rev), self.model.model_validate_json(doc)

    async def get(self, doc_id: str) -> D | None:
        found = await self._raw(doc_id)
        return None if found is None else found[1]

    async def update(self, doc_id: str, change: Callable[[D | None], D]) -> D:
        """Apply ``change`` to the freshest document (``None`` when there is none yet) until the
        compare-and-set wins; ``change`` may run several times and may raise to abort."""
        for _ in range(self.max_attempts):
            found = await self._raw(doc_id)
            rev, current = found if found is not None else (-1, None)
            doc = change(current)
            if await self._cas(keys=[self.prefix + doc_id],
                               args=[str(rev), str(rev + 1), doc.model_dump_json()]):
                return doc
        raise ConflictError(f"{doc_id} is too busy; try again")
