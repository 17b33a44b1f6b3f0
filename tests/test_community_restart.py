"""A vote window outlives a worker restart: the deferred close job waits in Redis, the next
worker closes the window on time, once. Real Valkey, real arq workers."""

from __future__ import annotations

import asyncio
import time

from bots.core import intents as it
from bots.core.conversation import Conversation
from pipeline.community import Communities
from pipeline.models import ChatRef, Platform, Status, Story, UserRef
from pipeline.polls import close_job
from pipeline.queue import QUEUE, enqueue_vote_close, vote_job_id
from pipeline.runtime import Runtime
from pipeline.worker import BackgroundWorker

GINA = UserRef(platform=Platform.console, user_id="gina", display_name="Gina")
ROOM = ChatRef(platform=Platform.console, chat_id="night-shift", is_group=True)


def member(name: str) -> UserRef:
    return UserRef(platform=Platform.console, user_id=name.lower(), display_name=name)


async def until(rt: Runtime, sid: str, check: object, within: float) -> Story:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        story = await rt.store.get(sid)
        if check(story):  # type: ignore[operator]
            return story
        assert loop.time() < deadline, f"story stuck at {story.status}"
        await asyncio.sleep(0.1)


async def test_the_window_closes_on_time_once_across_a_worker_restart(rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(update={"default_scenes": 3, "candidates": 2})
    conv = await Conversation.create(rt, Platform.console)
    communities = Communities(rt.redis)
    await communities.setup(ROOM.key, GINA)
    await communities.set_setting(ROOM.key, "window", "30s")
    await communities.set_setting(ROOM.key, "automake", "off")

    first = BackgroundWorker(rt.settings, rt)
    first.start()
    second: BackgroundWorker | None = None
    try:
        await conv.handle(it.StartStory(idea="A night guard befriends a museum ghost"), GINA,
                          ROOM)
        sid = (await rt.store.by_chat(ROOM, 1))[0]
        story = await until(rt, sid, lambda s: len([p for p in s.polls if p.is_open]) == 3, 120)
        for name, choice in (("Ann", 2), ("Bob", 2), ("Cy", 1), ("Dee", 2)):
            views = await conv.handle(it.CastVote(story_id=sid, scene=0, choice=choice),
                                      member(name), ROOM)
            assert "is counted" in views[0].text  # type: ignore[union-attr]
        closes_at = story.polls[0].closes_at

        await first.stop()  # the worker goes away in the middle of the window
        jid = vote_job_id(sid, story.polls[0].id)
        assert jid == f"{sid}:vote:frame-s0-g0"
        score = await rt.redis.zscore(QUEUE, jid)
        assert score is not None and abs(score / 1000 - closes_at) < 0.01  # still queued
        await asyncio.sleep(2)
        second = BackgroundWorker(rt.settings, rt)
        second.start()

        story = await until(rt, sid, lambda s: not any(p.is_open for p in s.polls),
                            max(5.0, closes_at - time.time()) + 20)
        for p in story.polls:
            assert p.closed_at is not None and 0 <= p.closed_at - closes_at < 10, \
                p.closed_at - closes_at
        first_poll = story.polls[0]
        assert first_poll.result is not None and first_poll.result.rule == "majority"
        assert first_poll.result.explanation == "Frame 2 won with 3 of 4 votes."
        assert story.scenes[0].picked == story.scenes[0].candidates[1].id
        assert [p.result.rule for p in story.polls[1:] if p.result] == ["empty", "empty"]
        assert story.status == Status.awaiting_approval  # automake is off: the owner approves

        # a second close of the same window does nothing, and cannot even be queued again
        revision = story.revision
        assert await close_job(rt, sid, first_poll.id) == "already closed"
        assert await enqueue_vote_close(rt.redis, sid, first_poll.id, time.time()) is None
        assert (await rt.store.get(sid)).revision == revision
        late = await conv.handle(it.CastVote(story_id=sid, scene=0, choice=1), member("Eve"),
                                 ROOM)
        assert late[0].text == ("The vote on scene 1 has closed: frame 2 won with 3 of 4 "  # type: ignore[union-attr]
                                "votes.")
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
