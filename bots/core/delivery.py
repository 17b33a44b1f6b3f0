"""Which platform message shows what, recorded in Redis so rendering is idempotent.

For each story, a hash maps a view's slot (``status``, ``script``, ``album:2:0``...) to the
message references that show it and the fingerprint of what they show. Showing a view again edits
those messages, or does nothing when the fingerprint is unchanged, so an event delivered twice (a
restart before the acknowledgement) never posts twice. A reverse link maps a message to its
story, slot and candidate number, for reactions and replies.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from bots.core.views import AlbumView, AnyView, SceneView
from pipeline.models import ChatRef, Platform

log = logging.getLogger(__name__)

TTL_S = 60 * 60 * 24 * 60  # a story's messages stay actionable for two months


class ChatGone(Exception):
    """The bot can no longer post in this chat (removed from the group, blocked)."""


class Renderer(Protocol):
    """What each platform adapter implements to show neutral views."""

    async def send(self, chat: ChatRef, view: AnyView, once: str = "") -> list[str]:
        """Post the view; return the references of the messages that show it.

        ``once`` names this posting (at most 24 characters). A platform that can deduplicate a
        repeated post (Discord's ``enforce_nonce``) answers a second post with the same key with
        the first message, so a post repeated after a crash, before it was recorded, shows once.
        """
        ...

    async def edit(self, chat: ChatRef, view: AnyView, refs: list[str]) -> bool:
        """Update the messages in ``refs``; ``False`` when they are gone (post anew)."""
        ...

    async def retire(self, chat: ChatRef, refs: list[str]) -> None:
        """Remove the buttons of messages that a newer view replaced."""
        ...


def posting_key(story_id: str, slot: str, fp: str, replaces: list[str]) -> str:
    """The same view posted into the same place again gets the same key; posting it anew in
    place of earlier messages (``replaces``) gets another."""
    seed = "\x1f".join([story_id, slot, fp, *replaces])
    return hashlib.blake2b(seed.encode(), digest_size=12).hexdigest()[:24]


class Shown(BaseModel):
    refs: list[str]
    fp: str


class Link(BaseModel):
    story_id: str
    slot: str
    index: int = 0


class Delivery:
    def __init__(self, redis: Redis, platform: Platform) -> None:
        # untyped on purpose: redis-py's stubs type every reply as ``T | Awaitable[T]``
        self.redis: Any = redis
        self.prefix = f"sl:bot:{platform.value}:"

    def _shown_key(self, story_id: str) -> str:
        return f"{self.prefix}shown:{story_id}"

    def _link_key(self, chat: ChatRef, ref: str) -> str:
        return f"{self.prefix}msg:{chat.chat_id}:{ref}"

    async def get(self, story_id: str, slot: str) -> Shown | None:
        raw = await self.redis.hget(self._shown_key(story_id), slot)
        if raw is None:
            return None
        try:
            return Shown.model_validate_json(raw)
        except ValidationError:
            return None

    async def all(self, story_id: str) -> dict[str, Shown]:
        raw = await self.redis.hgetall(self._shown_key(story_id))
        out: dict[str, Shown] = {}
        for k, v in raw.items():
            try:
                out[k.decode() if isinstance(k, bytes) else str(k)] = Shown.model_validate_json(v)
            except ValidationError:
                continue
        return out

    async def record(self, story_id: str, slot: str, shown: Shown) -> None:
        key = self._shown_key(story_id)
        await self.redis.hset(key, slot, shown.model_dump_json())
        await self.redis.expire(key, TTL_S)

    async def link(self, chat: ChatRef, ref: str, link: Link) -> None:
        await self.redis.set(self._link_key(chat, ref), link.model_dump_json(), ex=TTL_S)

    async def lookup(self, chat: ChatRef, ref: str) -> Link | None:
        raw = await self.redis.get(self._link_key(chat, ref))
        if raw is None:
            return None
        try:
            return Link.model_validate_json(raw)
        except ValidationError:
            return None

    # ------------------------------------------------------------------ chats the bot left

    async def mark_gone(self, chat: ChatRef) -> None:
        await self.redis.set(f"{self.prefix}gone:{chat.chat_id}", "1", ex=TTL_S)

    async def clear_gone(self, chat: ChatRef) -> None:
        await self.redis.delete(f"{self.prefix}gone:{chat.chat_id}")

    async def is_gone(self, chat: ChatRef) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}gone:{chat.chat_id}"))

    # ------------------------------------------------------------------ showing

    async def show(self, renderer: Renderer, chat: ChatRef, view: AnyView) -> list[str]:
        """Show a slotted view exactly once: post it, edit it when it changed, else nothing."""
        if not view.slot:
            return await renderer.send(chat, view)
        fp = view.fingerprint()
        prev = await self.get(view.story_id, view.slot)
        if prev is not None and prev.fp == fp:
            return prev.refs
        if prev is not None and prev.refs and await renderer.edit(chat, view, prev.refs):
            await self.record(view.story_id, view.slot, Shown(refs=prev.refs, fp=fp))
            return prev.refs
        once = posting_key(view.story_id, view.slot, fp, prev.refs if prev is not None else [])
        refs = await renderer.send(chat, view, once)
        await self.record(view.story_id, view.slot, Shown(refs=refs, fp=fp))
        for i, ref in enumerate(refs):
            # a view shown as one message per frame: each message is its frame's number
            many = isinstance(view, AlbumView | SceneView) and len(refs) > 1
            index = i + 1 if many or isinstance(view, AlbumView) else 0
            await self.link(chat, ref, Link(story_id=view.story_id, slot=view.slot, index=index))
        if prev is not None and prev.refs and prev.refs != refs:
            await self._disarm(renderer, chat, prev.refs)
        return refs

    @staticmethod
    async def _disarm(renderer: Renderer, chat: ChatRef, refs: list[str]) -> None:
        """The old copy of a view that had to be posted anew loses its buttons, best effort: a
        stale button is refused anyway, and the new copy is already recorded."""
        try:
            await renderer.retire(chat, refs)
        except Exception as err:
            log.info("could not take the buttons off an old message",
                     extra={"chat": chat.key, "err": type(err).__name__})

    async def retire(self, renderer: Renderer, chat: ChatRef, story_id: str, slot: str) -> None:
        prev = await self.get(story_id, slot)
        if prev is None or prev.fp == "retired":
            return
        await renderer.retire(chat, prev.refs)
        await self.record(story_id, slot, Shown(refs=prev.refs, fp="retired"))
