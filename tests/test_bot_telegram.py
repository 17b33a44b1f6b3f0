"""The Telegram bot end to end: the real python-telegram-bot Application against a fake Bot API.

Stories are built in the store at the state each test needs and their events published on the
Telegram stream, so the bot renders them exactly as it would a worker's; the two full stories
through the real offline pipeline are marked slow.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bots.core.conversation import Conversation
from bots.telegram.app import TelegramBot
from bots.telegram.flood import Limits
from pipeline.events import EventKind, StoryEvent
from pipeline.models import (
    ChatRef,
    FinalVideo,
    FrameCandidate,
    Platform,
    Scene,
    Status,
    Story,
    StoryOptions,
    UserRef,
)
from pipeline.runtime import Runtime
from tests.fakes.base import mp4, png
from tests.fakes.telegram_api import TOKEN, FakeTelegram, Flood, Msg, documented
from tests.pipeline_helpers import unacknowledged

ALICE, BOB, CAROL = 1001, 1002, 1003
GROUP = -100555
FAST = Limits(private_per_s=20, group_per_s=10, group_per_min=10_000, overall_per_s=200)


@pytest_asyncio.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


class Bots:
    def __init__(self, rt: Runtime, fake: FakeTelegram) -> None:
        self.rt, self.fake = rt, fake
        self.running: list[TelegramBot] = []

    async def start(self, **kw: Any) -> TelegramBot:
        conv = await Conversation.create(self.rt, Platform.telegram, size_cap_bytes=50_000_000)
        kw.setdefault("limits", FAST)
        kw.setdefault("status_interval_s", (0.2, 0.4))
        bot = TelegramBot(self.rt, conv, token=TOKEN, base_url=self.fake.url,
                          poll_timeout_s=1, **kw)
        await bot.start()
        self.running.append(bot)
        return bot

    async def stop(self, bot: TelegramBot) -> None:
        await bot.stop()
        self.running.remove(bot)


@pytest_asyncio.fixture
async def bots(rt: Runtime, tg: FakeTelegram) -> AsyncIterator[Bots]:
    b = Bots(rt, tg)
    yield b
    for bot in list(b.running):
        await b.stop(bot)


def tchat(chat_id: int, group: bool = False) -> ChatRef:
    return ChatRef(platform=Platform.telegram, chat_id=str(chat_id), is_group=group)


def tuser(uid: int, name: str = "Alice") -> UserRef:
    return UserRef(platform=Platform.telegram, user_id=str(uid), display_name=name)


COLORS = [(200, 80, 40), (40, 160, 90), (60, 90, 200), (220, 200, 60)]


async def board(rt: Runtime, chat: ChatRef, owner: UserRef, *, scenes: int = 3,
                candidates: int = 3, title: str = "The Keeper & the <Whale>",
                publish: bool = True) -> Story:
    """A story whose storyboard is ready (awaiting approval), its events on the stream."""
    story = Story(idea="A lighthouse keeper befriends a stranded whale", owner=owner, chat=chat,
                  options=StoryOptions(scenes=scenes, candidates=candidates),
                  title=title, logline="A keeper & a whale <learn> to *trust*.",
                  status=Status.awaiting_approval)
    for i in range(scenes):
        cands = []
        for j in range(candidates):
            ref = await rt.media.put(png(COLORS[(i + j) % 4], (16 + i, 16 + j)), "image/png")
            cands.append(FrameCandidate(id=f"{i + 1}a{j + 1}", media=ref, seed=j, provider="t"))
        story.scenes.append(Scene(index=i, shot=f"shot {i}", narration=f"Scene {i + 1} text & <b>",
                                  candidates=cands))
    await rt.store.create(story)
    if publish:
        for i in range(scenes):
            await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                                  scene=i, current=i + 1, total=scenes))
        await rt.outbox.publish(StoryEvent.of(story, EventKind.awaiting_approval,
                                              step="storyboard"))
    return story


async def finish(rt: Runtime, story_id: str) -> Story:
    """Pretend the worker made the video: store it and publish the video event."""
    video = await rt.media.put(mp4() + b"\x00" * 2048, "video/mp4")
    sheet = await rt.media.put(png((10, 10, 10), (32, 18)), "image/png")

    def done(s: Story) -> None:
        for sc in s.scenes:
            sc.picked = sc.picked or sc.candidates[0].id
        s.video = FinalVideo(media=video, contact_sheet=sheet, duration_s=12.0, width=720,
                             height=1280)
        s.status = Status.done

    story = await rt.store.update(story_id, done)
    await rt.outbox.publish(StoryEvent.of(story, EventKind.video, step="assemble", current=2,
                                          total=2))
    return story


async def wait_story(rt: Runtime, sid: str, pred: Any, within: float = 10) -> Story:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        story = await rt.store.get(sid)
        if pred(story):
            return story
        assert asyncio.get_running_loop().time() < deadline, f"story {sid}: {story.status}"
        await asyncio.sleep(0.05)


def scene_msg(fake: FakeTelegram, chat_id: int, k: int) -> Msg:
    """A scene's one message: its numbered frames as one photo, its text and buttons."""
    found = [m for m in fake.log(chat_id) if f"Scene {k} of" in m.text]
    assert len(found) == 1, fake.dump(chat_id)
    assert found[0].kind == "photo"
    return found[0]


def scene_msgs(fake: FakeTelegram, chat_id: int) -> list[Msg]:
    return [m for m in fake.log(chat_id) if m.kind == "photo" and "Scene " in m.text]


async def test_smoke_commands_registered_and_help(bots: Bots, tg: FakeTelegram) -> None:
    await bots.start()
    chat = tg.private(ALICE)
    tg.say(chat, tg.user(ALICE, "Alice"), "/help")
    msg = await tg.wait_for(lambda: tg.find(ALICE, "/story"), what="help reply")
    assert msg
    assert {c["command"] for c in tg.commands} >= {"story", "settings", "cancel", "status",
                                                    "mystories", "help"}
    assert "message_reaction" in (tg.allowed_updates or [])


def albums(fake: FakeTelegram, chat_id: int) -> dict[str, list[Msg]]:
    out: dict[str, list[Msg]] = {}
    for m in fake.log(chat_id):
        if m.media_group_id:
            out.setdefault(m.media_group_id, []).append(m)
    return out


async def test_private_storyboard_picks_approval_and_video(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    story = await board(rt, tchat(ALICE), tuser(ALICE))
    approve = await tg.wait_for(lambda: tg.find(ALICE, "scenes picked"), what="approve msg",
                                chat_id=ALICE)
    # the status message, one photo per scene (its frames numbered, its text, its buttons)
    status = tg.one(ALICE, "The storyboard is ready")
    assert status.text.startswith("The Keeper & the <Whale>")
    assert albums(tg, ALICE) == {}
    for k in (1, 2, 3):
        msg = scene_msg(tg, ALICE, k)
        assert f"Scene {k} text & <b>" in msg.text
        assert msg.button_labels() == ["1", "2", "3", "🔄 New frames", "✏️ Edit scene"]
    assert approve[0].button_labels() == []

    # pick frame 2 in every scene
    for k in (1, 2, 3):
        qid = tg.press(chat, alice, scene_msg(tg, ALICE, k).message_id,
                       scene_msg(tg, ALICE, k).button("2")["callback_data"])
        ans = await tg.wait_for(lambda q=qid: tg.answer_for(q), what="toast")
        assert ans["text"] == f"Scene {k}: frame 2 ✓"
    await tg.wait_for(lambda: "✓ 2" in scene_msg(tg, ALICE, 3).button_labels(), what="tick")
    stored = await rt.store.get(story.id)
    assert [sc.picked for sc in stored.scenes] == ["1a2", "2a2", "3a2"]
    ready = await tg.wait_for(lambda: [m for m in tg.find(ALICE, "Every scene has a frame")],
                              what="ready", chat_id=ALICE)
    assert ready[0].message_id == approve[0].message_id  # edited in place, not re-posted

    # make the video
    qid = tg.press(chat, alice, ready[0].message_id, ready[0].button("Make the video")
                   ["callback_data"])
    await tg.wait_for(lambda: tg.answer_for(qid), what="approve toast")
    assert (await rt.store.get(story.id)).status == Status.animating
    await tg.wait_for(lambda: tg.find(ALICE, "the video is on its way"), what="approved")

    await finish(rt, story.id)
    video = await tg.wait_for(lambda: [m for m in tg.log(ALICE) if m.kind == "video"],
                              what="video", chat_id=ALICE)
    assert video[0].text.startswith("🎬 The Keeper & the <Whale>")
    labels = video[0].button_labels()
    assert labels[:3] == ["🎬 1", "🎬 2", "🎬 3"] and "🎙 Change voice" in labels
    assert "🔀 Remix" in labels
    await tg.wait_for(lambda: tg.find(ALICE, "The video is ready"), what="status done")
    assert len(tg.find(ALICE, "The Keeper & the <Whale>")) >= 2
    assert tg.errors == [] and tg.floods == []
    sends = tg.calls("POST", "/bot" + TOKEN + "/sendMessage")
    assert all(TOKEN not in (r.form.get("text", "") + r.body.decode(errors="ignore"))
               for r in sends)


SENDS = ("sendMessage", "sendPhoto", "sendVideo", "sendMediaGroup", "sendDocument")


def sent(fake: FakeTelegram) -> int:
    return sum(len(fake.calls("POST", f"/bot{TOKEN}/{m}")) for m in SENDS)


async def test_a_story_is_n_plus_3_messages_scenes_in_order_redraws_in_place(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    """Scenes drawn in the order 3, 1, 2 are shown 1, 2, 3, each as one photo; a redraw
    replaces that photo in place; the whole story is the status, a message per scene, the
    approval and the video: N + 3 messages."""
    await bots.start(status_interval_s=(0.6, 0.6))
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    story = await board(rt, tchat(ALICE), tuser(ALICE), publish=False)
    drawn = {sc.index: sc.candidates for sc in story.scenes}

    def undrawn(s: Story) -> None:
        s.status = Status.storyboarding
        for sc in s.scenes:
            sc.candidates = []

    story = await rt.store.update(story.id, undrawn)
    await rt.outbox.publish(StoryEvent.of(story, EventKind.created))
    await tg.wait_for(lambda: tg.find(ALICE, "Keeper"), what="status", chat_id=ALICE)

    async def draw(i: int) -> None:
        def put(s: Story) -> None:
            s.scenes[i].candidates = drawn[i]

        s = await rt.store.update(story.id, put)
        for n in range(1, 5):  # progress as it goes, more often than the status may change
            await rt.outbox.publish(StoryEvent.of(s, EventKind.progress, step="storyboard",
                                                  current=n, total=9))
        await rt.outbox.publish(StoryEvent.of(s, EventKind.candidates, step="storyboard",
                                              scene=i, current=i + 1, total=3))

    await draw(2)
    await asyncio.sleep(0.5)
    assert scene_msgs(tg, ALICE) == []  # scene 3 waits for scenes 1 and 2
    await draw(0)
    await tg.wait_for(lambda: len(scene_msgs(tg, ALICE)) == 1, what="scene 1", chat_id=ALICE)
    await asyncio.sleep(0.3)
    assert [m.text.split("\n")[0] for m in scene_msgs(tg, ALICE)] == ["🖼 Scene 1 of 3"]
    await draw(1)
    await tg.wait_for(lambda: len(scene_msgs(tg, ALICE)) == 3, what="scenes", chat_id=ALICE)
    assert [m.text.split("\n")[0] for m in scene_msgs(tg, ALICE)] == \
        [f"🖼 Scene {k} of 3" for k in (1, 2, 3)]
    story = await rt.store.update(story.id, lambda s: setattr(s, "status",
                                                              Status.awaiting_approval))
    await rt.outbox.publish(StoryEvent.of(story, EventKind.awaiting_approval, step="storyboard"))
    await tg.wait_for(lambda: tg.find(ALICE, "scenes picked"), what="approval", chat_id=ALICE)
    assert albums(tg, ALICE) == {} and sent(tg) == 5

    # new frames for scene 2: the same message says they are being drawn, then shows them
    s2 = scene_msg(tg, ALICE, 2)
    tg.press(chat, alice, s2.message_id, s2.button("New frames")["callback_data"])
    await tg.wait_for(lambda: "Drawing new frames" in scene_msg(tg, ALICE, 2).text,
                      what="drawing", chat_id=ALICE)
    assert scene_msg(tg, ALICE, 2).buttons == []
    fresh = [FrameCandidate(id=f"2b{n}", media=await rt.media.put(
        png((n * 60, 10, 200), (20, 30)), "image/png"), seed=n, provider="t") for n in (1, 2, 3)]

    def redrawn(s: Story) -> None:
        s.scenes[1].candidates = fresh
        s.status = Status.awaiting_approval

    story = await rt.store.update(story.id, redrawn)
    await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                          scene=1, current=3, total=3))
    await tg.wait_for(lambda: scene_msg(tg, ALICE, 2).buttons != [], what="new frames",
                      chat_id=ALICE)
    again = scene_msg(tg, ALICE, 2)
    assert again.message_id == s2.message_id and again.media_edits == 1
    assert again.button_labels() == ["1", "2", "3", "🔄 New frames", "✏️ Edit scene"]
    # a pick changes the caption and buttons, not the picture
    tg.press(chat, alice, again.message_id, again.button("3")["callback_data"])
    await tg.wait_for(lambda: "✓ 3" in scene_msg(tg, ALICE, 2).button_labels(), what="tick")
    assert scene_msg(tg, ALICE, 2).media_edits == 1

    await finish(rt, story.id)
    await tg.wait_for(lambda: tg.find(ALICE, "The video is ready"), what="done", chat_id=ALICE)
    assert [m.kind for m in tg.log(ALICE)] == ["text", "photo", "photo", "photo", "text",
                                               "video"], tg.dump(ALICE)
    assert sent(tg) == 3 + 3
    status = tg.one(ALICE, "The video is ready")
    gaps = [b - a for a, b in itertools.pairwise(status.edited_at)]
    assert status.edits >= 2 and min(gaps) >= 0.6 - 0.05, gaps  # one edit per interval
    assert tg.errors == [] and tg.floods == []


async def test_text_idea_status_edited_in_place_and_throttled(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    tg.say(chat, alice, "A <b>bold</b> idea & *stars* _under_ `code` [link](x)")
    status = await tg.wait_for(lambda: tg.find(ALICE, "Writing the script"), what="status",
                               chat_id=ALICE)
    assert status[0].text.startswith("A <b>bold</b> idea & *stars* _under_ `code` [link](x)")
    assert status[0].button_labels() == ["🛑 Cancel"]
    sid = (await rt.store.by_owner(tuser(ALICE)))[0]
    story = await rt.store.get(sid)
    assert story.options.size_cap_bytes == 50_000_000 and story.options.pick == "ask"

    def to(st: Status) -> Any:
        def f(s: Story) -> None:
            s.status = st
        return f

    story = await rt.store.update(sid, to(Status.storyboarding))
    for n in range(1, 13):
        await rt.outbox.publish(StoryEvent.of(story, EventKind.progress, step="storyboard",
                                              current=n, total=12, message=f"{n}"))
    await tg.wait_for(lambda: tg.find(ALICE, "12 of 12 done"), what="last progress",
                      chat_id=ALICE)
    msg = tg.one(ALICE, "12 of 12 done")
    assert msg.message_id == status[0].message_id
    assert "████████████"[:10] in msg.text
    assert 0 < msg.edits < 12  # throttled, and the latest state still shown
    assert len([m for m in tg.log(ALICE) if m.kind == "text"]) == 1
    assert tg.floods == []


async def test_group_story_mentions_replies_and_who_may_decide(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    group = tg.group(GROUP, admins={CAROL})
    alice, bob, carol = tg.user(ALICE, "Alice"), tg.user(BOB, "Bob"), tg.user(CAROL, "Carol")
    tg.say(group, bob, "just chatting, not for the bot")
    tg.say(group, alice, "@storyloom_bot a lighthouse keeper befriends a whale")
    await tg.wait_for(lambda: tg.find(GROUP, "Writing the script"), what="group status",
                      chat_id=GROUP)
    sid = (await rt.store.by_owner(tuser(ALICE)))[0]
    assert (await rt.store.get(sid)).idea == "a lighthouse keeper befriends a whale"
    assert len(tg.log(GROUP)) == 1  # the chatter got no answer

    story = await board(rt, tchat(GROUP, True), tuser(ALICE))
    await tg.wait_for(lambda: tg.find(GROUP, "scenes picked"), what="board", chat_id=GROUP)
    s1 = scene_msg(tg, GROUP, 1)
    # Bob is neither the owner nor an admin: refused, nothing changes
    qid = tg.press(group, bob, s1.message_id, s1.button("1")["callback_data"])
    ans = await tg.wait_for(lambda: tg.answer_for(qid), what="refusal")
    assert "Only Alice" in ans["text"]
    assert (await rt.store.get(story.id)).scenes[0].picked is None
    # Carol is an admin, Alice the owner
    qid = tg.press(group, carol, s1.message_id, s1.button("3")["callback_data"])
    assert (await tg.wait_for(lambda: tg.answer_for(qid)))["text"] == "Scene 1: frame 3 ✓"
    s2 = scene_msg(tg, GROUP, 2)
    qid = tg.press(group, alice, s2.message_id, s2.button("1")["callback_data"])
    assert (await tg.wait_for(lambda: tg.answer_for(qid)))["text"] == "Scene 2: frame 1 ✓"
    assert [sc.picked for sc in (await rt.store.get(story.id)).scenes] == ["1a3", "2a1", None]
    # a mention in a reply is addressed to the bot: a new idea from Bob
    tg.say(group, bob, "@storyloom_bot a fox who collects moonlight", reply_to=s1.message_id)
    await tg.wait_for(lambda: tg.find(GROUP, "a fox who collects moonlight"), what="reply idea")
    # a command for another bot is ignored, one for us answered
    tg.say(group, bob, "/frobnicate@other_bot")
    tg.say(group, bob, "/frobnicate@storyloom_bot")
    await tg.wait_for(lambda: tg.find(GROUP, "I don't know /frobnicate"), what="unknown cmd")
    assert len(tg.find(GROUP, "I don't know")) == 1
    assert tg.errors == [] and tg.floods == []


async def test_group_replies_to_the_bot_are_chatter_unless_it_asked(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    """A plain reply to a bot message in a group ("nice, thanks!") starts nothing; the answer to
    the bot's own question (the scene-edit prompt) is taken, from the person it asked only."""
    await bots.start()
    group = tg.group(GROUP)
    alice, bob = tg.user(ALICE, "Alice"), tg.user(BOB, "Bob")
    story = await board(rt, tchat(GROUP, True), tuser(ALICE))
    await tg.wait_for(lambda: tg.find(GROUP, "scenes picked"), what="board", chat_id=GROUP)
    status = tg.one(GROUP, "storyboard is ready")
    s2 = scene_msg(tg, GROUP, 2)
    before = len(tg.log(GROUP))
    tg.say(group, bob, "nice, thanks!", reply_to=status.message_id)
    tg.say(group, alice, "love scene 2", reply_to=s2.message_id)
    await asyncio.sleep(0.8)
    assert len(tg.log(GROUP)) == before, tg.dump(GROUP)  # no answer, nothing started
    assert await rt.store.by_chat(tchat(GROUP, True), 10) == [story.id]

    tg.press(group, alice, s2.message_id, s2.button("Edit scene")["callback_data"])
    prompt = (await tg.wait_for(lambda: tg.find(GROUP, "send the new text for scene 2"),
                                what="edit prompt", chat_id=GROUP))[0]
    assert prompt.force_reply
    tg.say(group, bob, "ha, good one", reply_to=prompt.message_id)  # not asked: chatter
    await asyncio.sleep(0.5)
    tg.say(group, alice, "The whale sings at dawn.", reply_to=prompt.message_id)
    await tg.wait_for(lambda: tg.find(GROUP, "Scene 2 rewritten"), what="edit ack",
                      chat_id=GROUP)
    assert (await rt.store.get(story.id)).scenes[1].narration == "The whale sings at dawn."
    # the question is answered: a second reply to it is chatter again
    before = len(tg.log(GROUP))
    tg.say(group, alice, "thanks!", reply_to=prompt.message_id)
    await asyncio.sleep(0.8)
    assert len(tg.log(GROUP)) == before, tg.dump(GROUP)
    assert await rt.store.by_chat(tchat(GROUP, True), 10) == [story.id]
    assert not tg.find(GROUP, "ha, good one") and tg.errors == []


async def test_bad_inputs_get_clear_replies(bots: Bots, tg: FakeTelegram, rt: Runtime) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    tg.say(chat, alice, "/frobnicate")
    tg.say_long(chat, alice, "x" * 5000)
    tg.say(chat, alice, "🐳🌊✨")
    tg.send_photo(chat, alice)
    tg.send_sticker(chat, alice)
    tg.say(chat, alice, "/status nosuchstory")
    tg.say(chat, alice, "/cancel")
    tg.say(chat, alice, "/story")
    await tg.wait_for(lambda: len(tg.log(ALICE)) >= 8, what="eight replies", chat_id=ALICE)
    texts = [m.text for m in tg.log(ALICE)]
    assert any("I don't know /frobnicate. Try /help." in t for t in texts)
    assert any("5000 characters; keep it under 2000" in t for t in texts)
    assert any("Write your idea in words" in t for t in texts)
    assert sum("send your idea as a sentence" in t for t in texts) == 2
    assert any("There is no such story in this chat." in t for t in texts)
    assert any("Nothing of yours to cancel" in t for t in texts)
    assert any("The idea is empty" in t for t in texts)
    assert await rt.store.by_owner(tuser(ALICE)) == []
    assert tg.errors == []


async def test_a_photo_captioned_with_story_starts_that_story(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    tg.send_photo(chat, alice, caption="/story a lighthouse keeper befriends a stranded whale")
    await tg.wait_for(lambda: tg.find(ALICE, "Writing the script"), what="status", chat_id=ALICE)
    await tg.wait_for(lambda: tg.find(ALICE, "noted your photo"), what="note", chat_id=ALICE)
    note = tg.one(ALICE, "noted your photo")
    assert "not used in stories yet" in note.text
    story = await rt.store.get((await rt.store.by_owner(tuser(ALICE)))[0])
    assert story.idea == "a lighthouse keeper befriends a stranded whale"
    # in a group: ours when it names us or no bot, never another bot's
    group, bob = tg.group(GROUP), tg.user(BOB, "Bob")
    tg.send_photo(group, bob, caption="/story@other_bot a heist at the aquarium")
    tg.send_photo(group, bob, caption="/story@storyloom_bot a fox who collects moonlight")
    await tg.wait_for(lambda: tg.find(GROUP, "Writing the script"), what="group story",
                      chat_id=GROUP)
    await asyncio.sleep(0.3)
    ideas = [(await rt.store.get(i)).idea for i in await rt.store.by_owner(tuser(BOB))]
    assert ideas == ["a fox who collects moonlight"]
    assert tg.errors == []


IDEA_5000 = ("A lighthouse keeper befriends a stranded whale and they sail north together. "
             * 70)[:5000]


async def test_a_5000_character_idea_split_by_the_client_is_one_idea(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    """The client sends it as two messages; the bot answers the whole once: too long, nothing
    started (not a refusal of the first part and a story from the tail)."""
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    ids = tg.say_long(chat, alice, IDEA_5000)
    assert len(ids) == 2
    refusal = await tg.wait_for(lambda: tg.find(ALICE, "characters; keep it under"),
                                what="refusal", chat_id=ALICE)
    group, bob = tg.group(GROUP), tg.user(BOB, "Bob")
    tg.say_long(group, bob, "/story@storyloom_bot " + IDEA_5000)
    await tg.wait_for(lambda: tg.find(GROUP, "characters; keep it under"), what="group",
                      chat_id=GROUP)
    await asyncio.sleep(2.0)  # the joiner's wait has passed: nothing else comes
    assert [m.text for m in tg.log(ALICE)] == [refusal[0].text]
    assert "The idea is 5000 characters; keep it under 2000." in refusal[0].text
    assert len(tg.log(GROUP)) == 1 and "is 5000 characters" in tg.log(GROUP)[0].text
    assert await rt.store.by_owner(tuser(ALICE)) == []
    assert await rt.store.by_owner(tuser(BOB)) == []
    # a message just under the limit that nothing follows is answered on its own
    tg.say(chat, alice, IDEA_5000[:1990])
    await tg.wait_for(lambda: tg.find(ALICE, "Writing the script"), what="story", within=5)
    story = await rt.store.get((await rt.store.by_owner(tuser(ALICE)))[0])
    assert story.idea == IDEA_5000[:1990].strip()


async def test_forged_replayed_and_double_clicked_buttons(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    bob_chat, bob = tg.private(BOB, "Bob"), tg.user(BOB, "Bob")
    story = await board(rt, tchat(ALICE), tuser(ALICE))
    other = await board(rt, tchat(BOB), tuser(BOB), title="Bob's tale")
    await tg.wait_for(lambda: tg.find(ALICE, "scenes picked") and tg.find(BOB, "scenes picked"),
                      what="boards", chat_id=BOB)
    s1 = scene_msg(tg, ALICE, 1)
    token = s1.button("1")["callback_data"]
    # forged: Alice's token edited to name Bob's story, or to another frame
    forged = token.replace(story.id, other.id)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    # replayed: Alice's genuine token pressed on a message in Bob's chat
    b1 = scene_msg(tg, BOB, 1)
    q1 = tg.press(chat, alice, s1.message_id, forged)
    q2 = tg.press(chat, alice, s1.message_id, tampered)
    q3 = tg.press(bob_chat, bob, b1.message_id, token)
    q4 = tg.press(chat, alice, s1.message_id, "garbage")
    for q in (q1, q2, q3, q4):
        ans = await tg.wait_for(lambda q=q: tg.answer_for(q), what="refusal")
        assert ans["text"] == "This button is not valid here."
    assert all(sc.picked is None for sc in (await rt.store.get(story.id)).scenes)
    assert all(sc.picked is None for sc in (await rt.store.get(other.id)).scenes)
    # double click: the second press is a no-op with a clear answer
    qa = tg.press(chat, alice, s1.message_id, token)
    await tg.wait_for(lambda: tg.answer_for(qa))
    qb = tg.press(chat, alice, s1.message_id, token)
    ans = await tg.wait_for(lambda: tg.answer_for(qb))
    assert ans["text"] == "Frame 1 is already picked for scene 1."
    for k in (2, 3):
        m = scene_msg(tg, ALICE, k)
        tg.press(chat, alice, m.message_id, m.button("1")["callback_data"])
    ready = await tg.wait_for(lambda: tg.find(ALICE, "Every scene has a frame"), what="ready")
    data = ready[0].button("Make the video")["callback_data"]
    qa = tg.press(chat, alice, ready[0].message_id, data)
    qb = tg.press(chat, alice, ready[0].message_id, data)
    answers = [await tg.wait_for(lambda q=q: tg.answer_for(q)) for q in (qa, qb)]
    assert sorted(a["text"] for a in answers) == ["🎬 Making the video…",
                                                   "🎬 The video is already being made."]
    assert await rt.redis.zcard("arq:queue") == 1  # one animate job
    assert tg.errors == []


async def test_edit_scene_by_reply_and_new_candidates(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    story = await board(rt, tchat(ALICE), tuser(ALICE))
    await tg.wait_for(lambda: tg.find(ALICE, "scenes picked"), what="board", chat_id=ALICE)
    s2 = scene_msg(tg, ALICE, 2)
    stale = s2.button("New frames")["callback_data"]
    tg.press(chat, alice, s2.message_id, s2.button("Edit scene")["callback_data"])
    prompt = await tg.wait_for(lambda: tg.find(ALICE, "send the new text for scene 2"),
                               what="edit prompt", chat_id=ALICE)
    assert prompt[0].force_reply
    tg.say(chat, alice, "The whale sings <softly> & the keeper listens.",
           reply_to=prompt[0].message_id)
    await tg.wait_for(lambda: tg.find(ALICE, "Scene 2 rewritten"), what="edit ack")
    stored = await rt.store.get(story.id)
    assert stored.scenes[1].narration == "The whale sings <softly> & the keeper listens."
    assert stored.status == Status.storyboarding and stored.scenes[1].generation == 1
    # the old scene-2 buttons are retired; scene 1's stay
    await tg.wait_for(lambda: scene_msg(tg, ALICE, 2).buttons == [], what="retired")
    assert scene_msg(tg, ALICE, 1).buttons
    # the old 🔄 of scene 2 (a stale generation), pressed from an old client: refused
    qid = tg.press(chat, alice, s2.message_id, stale)
    ans = await tg.wait_for(lambda: tg.answer_for(qid))
    assert ans["text"] == "Those frames were already replaced."
    # new candidates for scene 1 once the storyboard is open again
    await rt.store.update(story.id, lambda s: setattr(s, "status", Status.awaiting_approval))
    s1 = scene_msg(tg, ALICE, 1)
    qid = tg.press(chat, alice, s1.message_id, s1.button("New frames")["callback_data"])
    ans = await tg.wait_for(lambda: tg.answer_for(qid))
    assert ans["text"] == "🔄 Drawing new frames for scene 1…"
    assert (await rt.store.get(story.id)).scenes[0].candidates == []


async def test_reactions_pick_and_redraw(bots: Bots, tg: FakeTelegram, rt: Runtime) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    story = await board(rt, tchat(ALICE), tuser(ALICE))
    await tg.wait_for(lambda: tg.find(ALICE, "scenes picked"), what="board", chat_id=ALICE)
    # one picture shows all of a scene's frames: 👍 on it names no frame, so it picks none
    tg.react(chat, alice, scene_msg(tg, ALICE, 1).message_id, "👍")
    tg.react(chat, alice, scene_msg(tg, ALICE, 3).message_id, "👎")
    await wait_story(rt, story.id, lambda s: s.scenes[2].generation == 1)
    assert (await rt.store.get(story.id)).scenes[0].picked is None
    # a reaction by nobody-in-particular on an unrelated message does nothing
    tg.react(chat, alice, 9999, "👍")


async def test_settings_keyboard_changes_new_stories(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    tg.say(chat, alice, "/settings")
    menu = await tg.wait_for(lambda: tg.find(ALICE, "Settings for new stories"), what="menu",
                             chat_id=ALICE)
    assert "✓ 9:16" in menu[0].button_labels() and "anime" in menu[0].button_labels()
    tg.press(chat, alice, menu[0].message_id, menu[0].button("16:9")["callback_data"])
    await tg.wait_for(lambda: "✓ 16:9" in tg.one(ALICE, "Settings").button_labels(),
                      what="tick")
    m = tg.one(ALICE, "Settings")
    tg.press(chat, alice, m.message_id, m.button("anime")["callback_data"])
    await tg.wait_for(lambda: "✓ anime" in tg.one(ALICE, "Settings").button_labels())
    tg.say(chat, alice, "/story a robot learns to paint")
    await tg.wait_for(lambda: tg.find(ALICE, "Writing the script"), what="status")
    story = await rt.store.get((await rt.store.by_owner(tuser(ALICE)))[0])
    assert (story.options.aspect, story.options.style) == ("16:9", "anime")
    # in a group only admins change settings
    group = tg.group(GROUP, admins={CAROL})
    tg.say(group, tg.user(BOB, "Bob"), "/settings")
    gm = await tg.wait_for(lambda: tg.find(GROUP, "Settings"), what="group menu")
    qid = tg.press(group, tg.user(BOB, "Bob"), gm[0].message_id, gm[0].button("1:1")
                   ["callback_data"])
    ans = await tg.wait_for(lambda: tg.answer_for(qid))
    assert ans["text"] == "Only the group's admins can change its settings."


async def test_restart_mid_story_resumes_without_duplicates(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    tg.private(ALICE)
    bot = await bots.start()
    story = await board(rt, tchat(ALICE), tuser(ALICE), publish=False)
    for i in range(2):  # two scenes are drawn while the bot runs
        await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                              scene=i, current=i + 1, total=3))
    await tg.wait_for(lambda: len(scene_msgs(tg, ALICE)) == 2, what="two scenes",
                      chat_id=ALICE)
    # both shown and recorded (a stop between Telegram's answer and the record would post the
    # scene again: the Bot API has no idempotency key)
    await tg.wait_for(lambda: bot.pump.rendered >= 2, what="recorded")
    await bots.stop(bot)
    before = len(tg.log(ALICE))

    # while it is down: scene 3 is drawn and the storyboard completes; and the bot's consumer
    # had read (but never acknowledged) the first of them when it died
    await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                          scene=2, current=3, total=3))
    await rt.outbox.publish(StoryEvent.of(story, EventKind.awaiting_approval, step="storyboard"))
    unacked = await rt.outbox.read(Platform.telegram, "bot-telegram", "main", count=1,
                                   block_ms=None, pending_first=False)
    assert len(unacked) == 1
    # and an event it already rendered is delivered again
    await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                          scene=0, current=1, total=3))
    assert len(tg.log(ALICE)) == before

    await bots.start()
    await tg.wait_for(lambda: tg.find(ALICE, "scenes picked"), what="approve after restart",
                      chat_id=ALICE)
    assert len(scene_msgs(tg, ALICE)) == 3, tg.dump(ALICE)
    for k in (1, 2, 3):
        scene_msg(tg, ALICE, k)  # exactly one each
    status = [m for m in tg.log(ALICE) if m.kind == "text" and "Keeper" in m.text]
    assert len(status) == 1 and "storyboard is ready" in status[0].text
    assert await unacknowledged(rt, "telegram") == 0
    assert tg.errors == []


async def test_bot_removed_from_group_mid_story(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    group = tg.group(GROUP, admins={CAROL})
    story = await board(rt, tchat(GROUP, True), tuser(ALICE))
    await tg.wait_for(lambda: tg.find(GROUP, "scenes picked"), what="board", chat_id=GROUP)
    tg.kick(group, tg.user(CAROL, "Carol"))
    await asyncio.sleep(0.3)
    sends = len(tg.requests)
    await rt.store.update(story.id, lambda s: setattr(s, "status", Status.animating))
    s = await rt.store.get(story.id)
    for n in range(3):
        await rt.outbox.publish(StoryEvent.of(s, EventKind.progress, step="animate",
                                              current=n + 1, total=3))
    await asyncio.sleep(0.8)
    assert not [r for r in tg.requests[sends:] if "/send" in r.path or "/edit" in r.path]
    assert await unacknowledged(rt, "telegram") == 0  # acknowledged, not stuck
    assert (await rt.store.get(story.id)).status == Status.animating  # the story is intact


async def test_bot_discovers_a_kick_by_a_403(bots: Bots, tg: FakeTelegram, rt: Runtime) -> None:
    await bots.start()
    tg.group(GROUP)
    tg.kicked.add(GROUP)  # removed while the bot was not looking: no my_chat_member update
    await board(rt, tchat(GROUP, True), tuser(ALICE))
    await tg.wait_for(lambda: any(e[1].startswith("Forbidden") for e in tg.errors), what="403")
    await asyncio.sleep(0.5)
    forbidden = [e for e in tg.errors if e[1].startswith("Forbidden")]
    assert len(forbidden) <= 2  # it stops trying instead of hammering the chat
    assert await unacknowledged(rt, "telegram") == 0


async def test_a_429_is_waited_out_never_dropped(bots: Bots, tg: FakeTelegram, rt: Runtime
                                                 ) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    tg.script("POST", f"/bot{TOKEN}/sendMessage", 429,
              {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
               "parameters": {"retry_after": 1}})
    tg.say(chat, alice, "/help")
    await tg.wait_for(lambda: tg.find(ALICE, "/story"), what="help after 429", within=10)
    assert len(tg.calls("POST", f"/bot{TOKEN}/sendMessage")) == 2


async def test_flood_limits_are_respected_by_pacing(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    """With Telegram's limits tighter than the bot thinks, 429s come back and are waited out:
    every message still arrives, in order, once."""
    tg.limits["private"] = Flood(per_s=2, burst=2)
    await bots.start()
    tg.private(ALICE)
    await board(rt, tchat(ALICE), tuser(ALICE))
    await tg.wait_for(lambda: tg.find(ALICE, "scenes picked"), what="board", chat_id=ALICE,
                      within=30)
    assert tg.floods  # the fake did push back
    assert len(scene_msgs(tg, ALICE)) == 3
    for k in (1, 2, 3):
        scene_msg(tg, ALICE, k)


async def test_one_groups_flood_wait_holds_up_no_other_chat(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    """A group is in a 60 s flood wait while its storyboard is being posted; people in five
    other chats press buttons meanwhile: every press is answered within a second, none too
    late for Telegram, and nothing is sent into the group before its wait ends."""
    bot = await bots.start()
    people = [2001 + i for i in range(5)]
    chats = {uid: tg.private(uid, f"P{uid}") for uid in people}
    for uid in people:
        await board(rt, tchat(uid), tuser(uid, f"P{uid}"), candidates=2)
    for uid in people:
        await tg.wait_for(lambda u=uid: tg.find(u, "scenes picked"), what="board", chat_id=uid,
                          within=30)
    tg.group(GROUP)
    tg.flood_wait(GROUP, 60)
    await board(rt, tchat(GROUP, True), tuser(ALICE))
    await tg.wait_for(lambda: (GROUP, "sendMessage") in tg.floods, what="the group's 429")
    qids = {}
    for uid in people:
        m = scene_msg(tg, uid, 1)
        qids[uid] = tg.press(chats[uid], tg.user(uid, f"P{uid}"), m.message_id,
                             m.button("2")["callback_data"])
    for uid, qid in qids.items():
        ans = await tg.wait_for(lambda q=qid: tg.answer_for(q), what=f"answer in {uid}",
                                within=3)
        assert ans["text"] == "Scene 1: frame 2 ✓"
        assert tg.answered_after[qid] < 1.0, tg.answered_after
    assert tg.late_answers == 0 and not [e for e in tg.errors if "too old" in e[1]]
    # and what the pump shows in those chats (the ticks) is not held up by the group either
    for uid in people:
        await tg.wait_for(lambda u=uid: "✓ 2" in scene_msg(tg, u, 1).button_labels(),
                          what=f"tick in {uid}", chat_id=uid, within=5)
    # the group's wait is respected: one refused try, then silence until it ends
    assert [c for c, _ in tg.floods] == [GROUP]
    assert [(c, round(w)) for c, w in bot.limiter.waits] == [(GROUP, 60)]


def test_a_groups_lane_keeps_one_a_second_and_20_a_minute() -> None:
    """The pacing itself, on a clock that only moves forward: a group gets at most one request
    in any 1.25 s and at most 18 messages in any minute, albums counted photo by photo; a flood
    wait moves everything after it."""
    from bots.telegram.flood import Lane

    lim = Limits()
    lane = Lane(1 / lim.group_per_s, lim.group_per_min, lim.minute_s)
    booked: list[tuple[float, int]] = []
    for n in range(40):
        weight = 3 if n % 4 == 0 else 1
        booked.append((lane.reserve(0.0, weight), weight))
    times = [t for t, _ in booked]
    assert all(b - a >= 1.25 - 1e-9 for a, b in itertools.pairwise(times))
    for start, _ in booked:
        in_minute = sum(w for t, w in booked if start <= t < start + 60)
        assert in_minute <= 18, (start, in_minute)
    assert times[-1] < 200  # and no slower than it must be
    lane.flood_wait(times[-1] + 60)
    assert lane.reserve(0.0) >= times[-1] + 60
    private = Lane(1 / lim.private_per_s)
    t1, t2 = private.reserve(5.0), private.reserve(5.0)
    assert t1 == 5.0 and t2 - t1 >= 1 / 0.85 - 1e-9


async def test_the_limiter_waits_per_chat_and_overall_only_when_many_chats_are_refused() -> None:
    """The limiter itself, with calls that stand for the Bot API: a 429 in one chat makes that
    chat wait and no other; a button answer never waits; 429s from three chats in a second are
    the overall limit, and then every chat waits."""
    from telegram.error import RetryAfter

    from bots.telegram.flood import ChatRateLimiter

    limiter = ChatRateLimiter(FAST)
    loop = asyncio.get_running_loop()
    refuse = {-1, -2, -3}  # chats that answer one 429 each
    done: dict[str, float] = {}

    def call(name: str, chat: int | None) -> Any:
        async def api() -> bool:
            if chat in refuse:
                refuse.discard(chat)
                raise RetryAfter(1)
            done[name] = loop.time() - t0
            return True
        endpoint = "sendMessage" if chat is not None else "answerCallbackQuery"
        data = {"chat_id": chat} if chat is not None else {"callback_query_id": "q"}
        return limiter.process_request(api, (), {}, endpoint, data, None)

    t0 = loop.time()
    await asyncio.gather(call("group", -1), call("other", 5), call("answer", None))
    assert done["other"] < 0.3 and done["answer"] < 0.3 and done["group"] >= 1.0
    refuse.update({-2, -3, -4})  # three chats refused at once: the bot's overall limit

    async def after(name: str, chat: int | None) -> None:
        await asyncio.sleep(0.2)
        await call(name, chat)

    t0 = loop.time()
    await asyncio.gather(call("g2", -2), call("g3", -3), call("g4", -4), after("late", 6),
                         after("answer2", None))
    assert done["late"] >= 1.0 and done["answer2"] < 0.5  # the overall gate, answers exempt


async def test_group_pacing_under_telegrams_limits_gets_no_429(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    """Telegram's documented limits (time running twice as fast) and the bot's own pacing:
    a group storyboard and a private one posted at once, and not one 429."""
    tg.limits = documented(0.5)
    await bots.start(limits=Limits().scaled(0.5))
    tg.group(GROUP)
    tg.private(ALICE)
    await board(rt, tchat(GROUP, True), tuser(ALICE), candidates=2)
    await board(rt, tchat(ALICE), tuser(ALICE), candidates=2)
    for cid in (GROUP, ALICE):
        await tg.wait_for(lambda c=cid: tg.find(c, "scenes picked"), what="board", chat_id=cid,
                          within=40)
        assert len(scene_msgs(tg, cid)) == 3
    assert tg.floods == [] and tg.errors == []


async def test_video_buttons_regenerate_revoice_remix(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    story = await board(rt, tchat(ALICE), tuser(ALICE))
    await finish(rt, story.id)
    video = await tg.wait_for(lambda: [m for m in tg.log(ALICE) if m.kind == "video"],
                              what="video", chat_id=ALICE)
    assert len(video) == 1 and video[0].file_size > 2000
    sheet = video[0]  # the video carries its buttons
    qid = tg.press(chat, alice, sheet.message_id, sheet.button("🎬 2")["callback_data"])
    assert (await tg.wait_for(lambda: tg.answer_for(qid)))["text"] == \
        "🎬 Redoing the clip of scene 2…"
    s = await rt.store.get(story.id)
    assert s.status == Status.animating and s.scenes[1].clip is None
    # voice: back to done first (as the worker would), then change it
    await rt.store.update(story.id, lambda s: setattr(s, "status", Status.done))
    tg.press(chat, alice, sheet.message_id, sheet.button("Change voice")["callback_data"])
    voices = await tg.wait_for(lambda: tg.find(ALICE, "Which voice"), what="voices")
    tg.press(chat, alice, voices[0].message_id, voices[0].button("joe")["callback_data"])
    await wait_story(rt, story.id, lambda s: s.status == Status.voicing)
    tg.press(chat, alice, sheet.message_id, sheet.button("Remix")["callback_data"])
    await wait_story(rt, story.id, lambda s: True)
    for _ in range(100):
        if len(await rt.store.by_owner(tuser(ALICE))) == 2:
            break
        await asyncio.sleep(0.05)
    ids = await rt.store.by_owner(tuser(ALICE))
    assert len(ids) == 2
    remix = await rt.store.get(next(i for i in ids if i != story.id))
    assert remix.idea == story.idea


async def test_status_mystories_and_cancel(bots: Bots, tg: FakeTelegram, rt: Runtime) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    story = await board(rt, tchat(ALICE), tuser(ALICE))
    await tg.wait_for(lambda: tg.find(ALICE, "scenes picked"), what="board", chat_id=ALICE)
    tg.say(chat, alice, f"/status {story.id}")
    await tg.wait_for(lambda: len(tg.find(ALICE, "storyboard is ready")) == 2, what="status")
    tg.say(chat, alice, "/mystories")
    mine = await tg.wait_for(lambda: tg.find(ALICE, "Your stories"), what="mystories")
    assert story.id in mine[0].text and "awaiting approval" in mine[0].text
    s1 = scene_msg(tg, ALICE, 1)
    old_pick = s1.button("1")["callback_data"]
    tg.say(chat, alice, "/cancel")
    await tg.wait_for(lambda: tg.find(ALICE, "🛑 Cancelled “The Keeper"), what="cancel")
    assert (await rt.store.get(story.id)).status == Status.cancelled
    await tg.wait_for(lambda: tg.find(ALICE, "🛑 Cancelled.\n") or
                      any(m.text.endswith("🛑 Cancelled.") for m in tg.log(ALICE)),
                      what="status shows cancelled")
    # its buttons are taken off; one pressed from a client that still shows it: a clear answer
    await tg.wait_for(lambda: scene_msg(tg, ALICE, 1).buttons == [], what="disarmed")
    qid = tg.press(chat, alice, s1.message_id, old_pick)
    ans = await tg.wait_for(lambda: tg.answer_for(qid))
    assert "not when cancelled" in ans["text"]


async def test_a_cancel_while_the_pump_is_behind_posts_no_storyboard(
    bots: Bots, tg: FakeTelegram, rt: Runtime
) -> None:
    """The pump lags behind the worker; the person cancels: the scenes still queued are never
    posted after "Cancelled", and the scene already shown loses its buttons."""
    from bots.core.pump import stop_task

    bot = await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    story = await board(rt, tchat(ALICE), tuser(ALICE), publish=False)
    drawn = {sc.index: sc.candidates for sc in story.scenes}

    def only_first(s: Story) -> None:  # as the worker stores them: scene 1 drawn first
        s.status = Status.storyboarding
        for sc in s.scenes[1:]:
            sc.candidates = []

    await rt.store.update(story.id, only_first)
    await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                          scene=0, current=1, total=3))
    await tg.wait_for(lambda: [m for m in tg.log(ALICE) if "Scene 1 of 3" in m.text
                               and m.buttons], what="scene 1", chat_id=ALICE)
    await stop_task(bot._pump_task)  # the pump falls behind: scenes 2 and 3 wait in the stream

    def all_drawn(s: Story) -> None:
        s.status = Status.awaiting_approval
        for sc in s.scenes:
            sc.candidates = drawn[sc.index]

    await rt.store.update(story.id, all_drawn)
    for i in (1, 2):
        await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                              scene=i, current=i + 1, total=3))
    await rt.outbox.publish(StoryEvent.of(story, EventKind.awaiting_approval, step="storyboard"))
    tg.say(chat, alice, "/cancel")
    cancelled = (await tg.wait_for(lambda: tg.find(ALICE, "🛑 Cancelled “"), what="cancel",
                                   chat_id=ALICE))[0]
    bot._pump_task = asyncio.create_task(bot.pump.run())
    await tg.wait_for(lambda: any(m.text.endswith("🛑 Cancelled.") for m in tg.log(ALICE)),
                      what="status cancelled", chat_id=ALICE)
    await tg.wait_for(lambda: scene_msg(tg, ALICE, 1).buttons == [], what="disarmed",
                      chat_id=ALICE)
    await asyncio.sleep(0.3)
    assert await unacknowledged(rt, "telegram") == 0
    after = [m for m in tg.log(ALICE) if m.message_id > cancelled.message_id]
    assert after == [], tg.dump(ALICE)  # nothing posted after "Cancelled"
    assert not [m for m in tg.log(ALICE) if "Scene 2 of 3" in m.text or "scenes picked" in
                m.text]
    assert all(not m.buttons for m in tg.log(ALICE))


async def test_webhook_mode_checks_the_secret(bots: Bots, tg: FakeTelegram, rt: Runtime) -> None:
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conv = await Conversation.create(rt, Platform.telegram)
    bot = TelegramBot(rt, conv, token=TOKEN, base_url=tg.url, limits=FAST)
    url = f"http://127.0.0.1:{port}/tg-hook"
    await bot.start(webhook_url=url, webhook_secret="s3cret-token",
                    webhook_listen=f"127.0.0.1:{port}")
    bots.running.append(bot)
    hooks = tg.calls("POST", f"/bot{TOKEN}/setWebhook")
    assert hooks and hooks[-1].form.get("secret_token", "") == "" and b"s3cret-token" in \
        hooks[-1].body
    chat = tg.private(ALICE)
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": chat,
                                          "from": tg.user(ALICE, "Alice"), "text": "/help",
                                          "entities": [{"type": "bot_command", "offset": 0,
                                                        "length": 5}]}}
    async with httpx.AsyncClient() as client:
        bad = await client.post(url, json=update,
                                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
        assert bad.status_code == 403
        ok = await client.post(url, json=update,
                               headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
        assert ok.status_code == 200
    await tg.wait_for(lambda: tg.find(ALICE, "/story"), what="help via webhook")
    assert len(tg.find(ALICE, "/story")) == 1
    assert not tg.calls("POST", f"/bot{TOKEN}/getUpdates")


# --------------------------------------------------------------------------- whole stories


@pytest_asyncio.fixture
async def worker(rt: Runtime) -> AsyncIterator[None]:
    from pipeline.worker import BackgroundWorker

    rt.settings = rt.settings.model_copy(update={"default_scenes": 3, "candidates": 2})
    w = BackgroundWorker(rt.settings, rt)
    w.start()
    yield
    await w.stop()


async def _pick_all_and_approve(tg: FakeTelegram, chat: dict[str, Any], user: dict[str, Any],
                                chat_id: int, n: int) -> None:
    await tg.wait_for(lambda: tg.find(chat_id, "scenes picked"), what="storyboard",
                      chat_id=chat_id, within=120)
    for k in range(1, n + 1):
        m = scene_msg(tg, chat_id, k)
        qid = tg.press(chat, user, m.message_id, m.button(str(1 + k % 2))["callback_data"])
        await tg.wait_for(lambda q=qid: tg.answer_for(q), what="pick answer")
    ready = await tg.wait_for(lambda: tg.find(chat_id, "Every scene has a frame"), what="ready",
                              chat_id=chat_id)
    tg.press(chat, user, ready[0].message_id, ready[0].button("Make the video")["callback_data"])


def _assert_whole_story(tg: FakeTelegram, chat_id: int) -> None:
    video = [m for m in tg.log(chat_id) if m.kind == "video"]
    assert len(video) == 1 and video[0].file_size > 10_000
    assert video[0].text.startswith("🎬 ")
    status = tg.find(chat_id, "The video is ready")
    assert len(status) == 1 and status[0].edits >= 3  # one message, edited along the way
    assert len(scene_msgs(tg, chat_id)) == 3
    assert len(tg.log(chat_id)) <= 3 + 3, tg.dump(chat_id)  # status, scenes, approval, video
    sent = tg.calls("POST", f"/bot{TOKEN}/sendVideo")
    assert sent and sent[0].form.get("supports_streaming") == "true"
    assert tg.errors == [] and tg.floods == []


@pytest.mark.slow
async def test_whole_story_in_a_private_chat(bots: Bots, tg: FakeTelegram, rt: Runtime,
                                             worker: None) -> None:
    await bots.start()
    chat, alice = tg.private(ALICE), tg.user(ALICE, "Alice")
    tg.say(chat, alice, "A lighthouse keeper befriends a stranded whale")
    await _pick_all_and_approve(tg, chat, alice, ALICE, 3)
    await tg.wait_for(lambda: [m for m in tg.log(ALICE) if m.kind == "video"], what="video",
                      chat_id=ALICE, within=240)
    await tg.wait_for(lambda: tg.find(ALICE, "The video is ready"), what="done", within=10)
    _assert_whole_story(tg, ALICE)


@pytest.mark.slow
async def test_whole_story_in_a_group(bots: Bots, tg: FakeTelegram, rt: Runtime,
                                      worker: None) -> None:
    await bots.start()
    group = tg.group(GROUP, admins={CAROL})
    alice, bob, carol = tg.user(ALICE, "Alice"), tg.user(BOB, "Bob"), tg.user(CAROL, "Carol")
    tg.say(group, alice, "/story@storyloom_bot A fox who collects moonlight in jars")
    await tg.wait_for(lambda: tg.find(GROUP, "scenes picked"), what="storyboard",
                      chat_id=GROUP, within=120)
    m = scene_msg(tg, GROUP, 1)
    qid = tg.press(group, bob, m.message_id, m.button("1")["callback_data"])
    assert "Only Alice" in (await tg.wait_for(lambda: tg.answer_for(qid)))["text"]
    await _pick_all_and_approve(tg, group, carol, GROUP, 3)  # an admin decides
    await tg.wait_for(lambda: [m for m in tg.log(GROUP) if m.kind == "video"], what="video",
                      chat_id=GROUP, within=240)
    await tg.wait_for(lambda: tg.find(GROUP, "The video is ready"), what="done", within=10)
    _assert_whole_story(tg, GROUP)


async def test_a_slow_request_leaves_a_whole_interval_after_it_was_answered() -> None:
    """Telegram spaces a chat's messages by when they arrive: a request still uploading when
    the next one's turn comes must not have the next one sent right behind it."""
    from bots.telegram.flood import ChatRateLimiter

    limiter = ChatRateLimiter(Limits().scaled(0.05))  # 1 / 0.85 s × 0.05 ≈ 0.06 s apart
    loop = asyncio.get_running_loop()
    started: list[float] = []
    answered: list[float] = []

    async def upload() -> bool:
        started.append(loop.time())
        await asyncio.sleep(0.3)  # a photo upload on a busy line
        answered.append(loop.time())
        return True

    await asyncio.gather(*(limiter.process_request(upload, (), {}, "sendPhoto",
                                                   {"chat_id": 42}, None) for _ in range(3)))
    interval = 0.05 / Limits().private_per_s
    for n in (1, 2):
        assert started[n] >= answered[n - 1] + interval - 0.005, (started, answered)
