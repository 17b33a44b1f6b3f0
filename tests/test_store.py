"""The story store on a real Valkey: compare-and-set, indexes, damaged documents."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.errors import CorruptStory, StoryNotFound
from pipeline.models import Status, Story
from pipeline.runtime import Runtime
from pipeline.store import story_key
from tests.factories import ALICE, BOB, ROOM, story


async def test_create_and_read_back(rt: Runtime) -> None:
    s = await rt.store.create(story())
    got = await rt.store.get(s.id)
    assert got.idea == s.idea and got.revision == 0
    assert await rt.store.by_chat(ROOM) == [s.id]
    assert await rt.store.by_owner(ALICE) == [s.id]
    assert await rt.store.by_owner(BOB) == []


async def test_hundred_concurrent_updates_lose_none(rt: Runtime) -> None:
    s = await rt.store.create(story())

    # Several independent clients, as several workers would be.
    others = [await Runtime.open(rt.settings) for _ in range(3)]
    try:
        stores = [rt.store] + [o.store for o in others]

        async def add_via(n: int) -> None:
            def change(doc: Story) -> None:
                doc.logline += f"[{n}]"

            await stores[n % len(stores)].update(s.id, change)

        await asyncio.gather(*(add_via(n) for n in range(100)))
    finally:
        for o in others:
            await o.close()
    final = await rt.store.get(s.id)
    assert final.revision == 100
    assert sorted(int(x) for x in final.logline.strip("[]").split("][")) == list(range(100))


async def test_status_index_follows_transitions(rt: Runtime) -> None:
    s = await rt.store.create(story())
    await rt.store.update(s.id, lambda d: d.transition(Status.casting))
    counts = await rt.store.count_by_status()
    assert counts["casting"] == 1 and counts["drafting"] == 0


async def test_a_raising_change_writes_nothing(rt: Runtime) -> None:
    s = await rt.store.create(story())

    def bad(doc: Story) -> None:
        doc.title = "half-done"
        raise ValueError("nope")

    with pytest.raises(ValueError):
        await rt.store.update(s.id, bad)
    got = await rt.store.get(s.id)
    assert got.title == "" and got.revision == 0


async def test_missing_story(rt: Runtime) -> None:
    with pytest.raises(StoryNotFound):
        await rt.store.get("nope")


async def test_damaged_document_is_typed_and_marked_failed(rt: Runtime) -> None:
    s = await rt.store.create(story())
    await rt.redis.hset(story_key(s.id), "doc", b'{"id": "x", "status": "flying"}')
    with pytest.raises(CorruptStory) as info:
        await rt.store.get(s.id)
    await rt.store.mark_corrupt(s.id, info.value.reason)
    counts = await rt.store.count_by_status()
    assert counts["failed"] == 1 and counts["drafting"] == 0
    with pytest.raises(CorruptStory, match="damaged"):
        await rt.store.get(s.id)
