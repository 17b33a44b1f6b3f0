"""The Discord bot end to end: the real discord.py client against a fake Discord (REST and gateway).

Stories are built in the store at the state each test needs and their events published on the
Discord stream, so the bot renders them exactly as it would a worker's; one whole story through
the real offline pipeline is marked slow.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord.gateway import DiscordWebSocket
from PIL import Image

from bots.core.conversation import Conversation
from bots.discord.app import DiscordBot
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
from tests.fakes.discord_api import APP_ID, TOKEN, FakeDiscord, MiB, Msg, user
from tests.pipeline_helpers import unacknowledged

ALICE, BOB, CAROL, DAVE = 701, 702, 703, 704
COLORS = [(200, 80, 40), (40, 160, 90), (60, 90, 200), (220, 200, 60)]


@pytest_asyncio.fixture
async def dc() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(autouse=True)
def _discord_globals() -> Any:
    """The REST base and gateway are process-wide in discord.py: restore them after a test."""
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


class World:
    """A server with a channel, three members (Alice, Bob, and Carol who may manage messages),
    and Dave's DM with the bot."""

    def __init__(self, rt: Runtime, fake: FakeDiscord) -> None:
        self.rt, self.fake = rt, fake
        self.guild = fake.guild(moderator_role="Storytellers")
        self.channel = fake.text_channel(self.guild)
        self.alice, self.bob = user(ALICE, "Alice"), user(BOB, "Bob")
        self.carol, self.dave = user(CAROL, "Carol"), user(DAVE, "Dave")
        fake.join(self.guild, self.alice)
        fake.join(self.guild, self.bob)
        fake.join(self.guild, self.carol, manage_messages=True)
        self.dm = fake.dm(self.dave)
        self.running: list[DiscordBot] = []

    @property
    def cid(self) -> int:
        return int(self.channel["id"])

    def chat(self) -> ChatRef:
        return ChatRef(platform=Platform.discord, chat_id=str(self.cid), is_group=True)

    async def start(self, **kw: Any) -> DiscordBot:
        conv = await Conversation.create(self.rt, Platform.discord)
        bot = DiscordBot(self.rt, conv, token=TOKEN, api_base=self.fake.url,
                         moderator_role="Storytellers", status_interval_s=(0.2, 0.3),
                         guild_ready_timeout=0.05, **kw)
        await bot.start(ready_timeout_s=15)
        self.running.append(bot)
        return bot

    async def stop(self, bot: DiscordBot) -> None:
        await bot.stop()
        self.running.remove(bot)


@pytest_asyncio.fixture
async def world(rt: Runtime, dc: FakeDiscord) -> AsyncIterator[World]:
    w = World(rt, dc)
    yield w
    for bot in list(w.running):
        await w.stop(bot)


def duser(uid: int, name: str = "Alice") -> UserRef:
    return UserRef(platform=Platform.discord, user_id=str(uid), display_name=name)


async def board(rt: Runtime, chat: ChatRef, owner: UserRef, *, scenes: int = 3,
                candidates: int = 3, title: str = "The Keeper & the *Whale*",
                publish: bool = True, frame: Callable[[int, int], bytes] | None = None
                ) -> Story:
    """A story whose storyboard is ready (awaiting approval), its events on the stream."""
    story = Story(idea="A lighthouse keeper befriends a stranded whale", owner=owner, chat=chat,
                  options=StoryOptions(scenes=scenes, candidates=candidates),
                  title=title, logline="A keeper & a whale learn to *trust* @everyone.",
                  status=Status.awaiting_approval)
    for i in range(scenes):
        cands = []
        for j in range(candidates):
            data = frame(i, j) if frame else png(COLORS[(i + j) % 4], (16 + i, 16 + j))
            ref = await rt.media.put(data, "image/png")
            cands.append(FrameCandidate(id=f"{i + 1}a{j + 1}", media=ref, seed=j, provider="t"))
        story.scenes.append(Scene(index=i, shot=f"shot {i}", narration=f"Scene {i + 1} text",
                                  candidates=cands))
    await rt.store.create(story)
    if publish:
        await publish_board(rt, story)
    return story


async def publish_board(rt: Runtime, story: Story, scenes: range | None = None) -> None:
    for i in scenes if scenes is not None else range(len(story.scenes)):
        await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                              scene=i, current=i + 1, total=len(story.scenes)))
    if scenes is None:
        await rt.outbox.publish(StoryEvent.of(story, EventKind.awaiting_approval,
                                              step="storyboard"))


async def finish(rt: Runtime, story_id: str, size: int = 4096, sheet_png: bytes = b"",
                 video_mp4: bytes = b"") -> Story:
    """Pretend the worker made the video: store it and publish the video event."""
    video = await rt.media.put(video_mp4 or mp4() + b"\x00" * size, "video/mp4")
    sheet = await rt.media.put(sheet_png or png((10, 10, 10), (32, 18)), "image/png")

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


def thread_of(fake: FakeDiscord, w: World) -> int:
    threads = fake.threads_of(w.channel)
    assert len(threads) == 1, threads
    return int(threads[0]["id"])


async def the_board(fake: FakeDiscord, w: World) -> int:
    """Wait for the storyboard to be complete in the story's thread; return the thread id."""
    await fake.wait_for(lambda: fake.threads_of(w.channel), what="a thread")
    tid = thread_of(fake, w)
    await fake.wait_for(lambda: fake.find(tid, "scenes picked"), what="the approve message",
                        channel_id=tid)
    return tid


def scene_msg(fake: FakeDiscord, channel_id: int, k: int) -> Msg:
    found = [m for m in fake.log(channel_id) if f"Scene {k} of" in m.content]
    assert len(found) == 1, fake.dump(channel_id)
    return found[0]


# --------------------------------------------------------------------------- tests


async def test_connects_registers_commands_once_and_answers_help(
    world: World, dc: FakeDiscord
) -> None:
    bot = await world.start()
    names = {c["name"] for c in dc.commands}
    assert names == {"story", "settings", "cancel", "status", "mystories", "help"}
    story = next(c for c in dc.commands if c["name"] == "story")
    assert [o["name"] for o in story["options"]] == ["idea", "scenes", "aspect", "style"]
    assert story["options"][0]["required"] is True
    # no privileged intent asked for: message content is bit 15
    assert not dc.identifies[0]["intents"] & (1 << 15)
    it = await dc.slash(world.channel, world.alice, "help")
    answer = await dc.answered(it)
    assert "/story" in answer[0]
    assert it.responses[0]["type"] == 5 and it.responses[0]["data"]["flags"] == 64
    # a restart does not register the commands again (they did not change)
    await world.stop(bot)
    await world.start()
    assert dc.command_puts == 1
    assert all(TOKEN not in (r.body.decode(errors="ignore") + str(r.form))
               for r in dc.requests)


async def test_slash_story_opens_a_thread_and_the_storyboard_flow(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    it = await dc.slash(world.channel, world.alice, "story",
                        idea="A fox who collects *moonlight* in jars", scenes=4, aspect="16:9")
    answer = await dc.answered(it)
    tid = thread_of(dc, world)
    assert answer == [f"📖 Your story has started in <#{tid}>."]
    sid = (await rt.store.by_owner(duser(ALICE)))[0]
    story = await rt.store.get(sid)
    assert (story.options.scenes, story.options.aspect) == (4, "16:9")
    assert story.options.size_cap_bytes == int(10 * 2**20 * 0.97)  # the limit Discord reported
    assert dc.channels[tid]["name"].startswith("A fox who collects")
    status = await dc.wait_for(lambda: dc.find(tid, "Writing the script"), what="status",
                               channel_id=tid)
    assert "\\*moonlight\\*" in status[0].content
    assert status[0].button_labels() == ["🛑 Cancel"]
    assert dc.log(world.cid) == []  # the channel stays clean


async def test_storyboard_picks_by_button_and_reaction_then_video(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    assert dc.find(tid, "Scenes") == []  # no separate script: each scene's message has its text
    for k in (1, 2, 3):  # one message per scene: its frames, its text and its buttons
        m = scene_msg(dc, tid, k)
        assert [a["filename"] for a in m.attachments] == ["frame-1.png", "frame-2.png",
                                                          "frame-3.png"]
        assert m.button_labels() == ["1", "2", "3", "🔄 New frames", "✏️ Edit scene"]
        assert all(len(b["custom_id"]) <= 100 for b in m.buttons())
        assert f"Scene {k} text" in m.content
    approve = dc.one(tid, "scenes picked")
    assert approve.button_labels() == []
    thread = dc.channels[tid]

    m1 = scene_msg(dc, tid, 1)
    it = await dc.press(thread, world.alice, m1, m1.button("2")["custom_id"])
    assert await dc.answered(it) == ["Scene 1: frame 2 ✓"]
    assert it.responses[0]["type"] == 6  # deferred, then answered
    await dc.wait_for(lambda: "✓ 2" in scene_msg(dc, tid, 1).button_labels(), what="tick")
    assert scene_msg(dc, tid, 1).attachments  # the frames stay on the edited message
    # reactions on the storyboard message pick too
    await dc.react(thread, world.alice, scene_msg(dc, tid, 2).id, "3\ufe0f\u20e3")
    await dc.react(thread, world.alice, scene_msg(dc, tid, 3).id, "1\ufe0f\u20e3")
    await dc.wait_for(lambda: "✓ 1" in scene_msg(dc, tid, 3).button_labels(), what="tick 3")
    stored = await rt.store.get(story.id)
    assert [sc.picked for sc in stored.scenes] == ["1a2", "2a3", "3a1"]
    ready = await dc.wait_for(lambda: dc.find(tid, "Every scene has a frame"), what="ready")
    assert ready[0].id == approve.id  # edited in place
    it = await dc.press(thread, world.alice, ready[0], ready[0].button("Make the video")
                        ["custom_id"])
    assert await dc.answered(it) == ["🎬 Making the video…"]
    assert (await rt.store.get(story.id)).status == Status.animating

    await finish(rt, story.id)
    video = await dc.wait_for(lambda: [m for m in dc.log(tid) if any(
        a["filename"] == "story.mp4" for a in m.attachments)], what="video", channel_id=tid)
    assert [a["filename"] for a in video[0].attachments] == ["story.mp4", "storyboard.png"]
    assert video[0].content.startswith("🎬 **The Keeper & the \\*Whale\\***")
    assert video[0].button_labels()[:3] == ["🎬 1", "🎬 2", "🎬 3"]
    announce = await dc.wait_for(lambda: dc.find(world.cid, "is ready"), what="announcement")
    assert f"<#{tid}>" in announce[0].content
    await dc.wait_for(lambda: dc.find(tid, "The video is ready"), what="status done")
    assert dc.errors == [] and dc.floods == []


async def test_edit_scene_modal_and_new_candidates(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    thread = dc.channels[tid]
    m2 = scene_msg(dc, tid, 2)
    stale = m2.button("New frames")["custom_id"]
    it = await dc.press(thread, world.alice, m2, m2.button("Edit scene")["custom_id"])
    await dc.wait_for(lambda: it.responses, what="the modal")
    assert it.responses[0]["type"] == 9
    modal = dc.modals[-1]
    assert modal["title"] == "Edit scene 2" and len(modal["custom_id"]) <= 100
    assert "Scene 2 text" in json_text(modal)
    # empty and far too long: refused, nothing changes
    bad = await dc.submit(thread, world.alice, modal, "   ")
    assert "empty" in (await dc.answered(bad))[0]
    bad = await dc.submit(thread, world.alice, modal, "x" * 5000)
    assert "5000 characters" in (await dc.answered(bad))[0]
    assert (await rt.store.get(story.id)).scenes[1].narration == "Scene 2 text"
    good = await dc.submit(thread, world.alice, modal, "The whale sings softly.")
    assert await dc.answered(good) == ["✏️ Scene 2 rewritten; drawing it again…"]
    stored = await rt.store.get(story.id)
    assert stored.scenes[1].narration == "The whale sings softly."
    assert stored.scenes[1].generation == 1
    await dc.wait_for(lambda: scene_msg(dc, tid, 2).components == [], what="retired")
    # the same form sent again (a stale generation), and the old 🔄: refused
    again = await dc.submit(thread, world.alice, modal, "Another text")
    assert await dc.answered(again) == ["⚠️ That scene was already changed."]
    it = await dc.press(thread, world.alice, m2, stale)
    assert await dc.answered(it) == ["⚠️ Those frames were already replaced."]
    # 🔄 by reaction on scene 1 once the storyboard is open again
    await rt.store.update(story.id, lambda s: setattr(s, "status", Status.awaiting_approval))
    await dc.react(thread, world.alice, scene_msg(dc, tid, 1).id, "🔄")
    for _ in range(100):
        if (await rt.store.get(story.id)).scenes[0].generation == 1:
            break
        await asyncio.sleep(0.05)
    assert (await rt.store.get(story.id)).scenes[0].generation == 1


async def test_a_story_is_n_plus_3_messages_scenes_in_order_redraws_in_place(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    """Scenes drawn in the order 3, 1, 2 are shown 1, 2, 3; new frames replace the scene
    message's attachments in place; the story is the status, a message per scene, the
    approval and the video."""
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE), publish=False)
    drawn = {sc.index: sc.candidates for sc in story.scenes}

    def undrawn(s: Story) -> None:
        s.status = Status.storyboarding
        for sc in s.scenes:
            sc.candidates = []

    story = await rt.store.update(story.id, undrawn)
    await rt.outbox.publish(StoryEvent.of(story, EventKind.created))
    await dc.wait_for(lambda: dc.threads_of(world.channel), what="a thread")
    tid = thread_of(dc, world)

    def scenes() -> list[str]:
        return [m.content.split("\n")[0] for m in dc.log(tid) if "**Scene " in m.content]

    async def draw(i: int) -> None:
        def put(s: Story) -> None:
            s.scenes[i].candidates = drawn[i]

        s = await rt.store.update(story.id, put)
        await rt.outbox.publish(StoryEvent.of(s, EventKind.candidates, step="storyboard",
                                              scene=i, current=i + 1, total=3))

    await draw(2)
    await asyncio.sleep(0.5)
    assert scenes() == []  # scene 3 waits for scenes 1 and 2
    await draw(0)
    await dc.wait_for(lambda: len(scenes()) == 1, what="scene 1", channel_id=tid)
    await draw(1)
    await dc.wait_for(lambda: len(scenes()) == 3, what="scenes", channel_id=tid)
    assert scenes() == [f"🖼 **Scene {k} of 3**" for k in (1, 2, 3)]
    story = await rt.store.update(story.id, lambda s: setattr(s, "status",
                                                              Status.awaiting_approval))
    await rt.outbox.publish(StoryEvent.of(story, EventKind.awaiting_approval, step="storyboard"))
    await dc.wait_for(lambda: dc.find(tid, "scenes picked"), what="approval", channel_id=tid)

    m2 = scene_msg(dc, tid, 2)
    before = [a["id"] for a in m2.attachments]
    it = await dc.press(dc.channels[tid], world.alice, m2, m2.button("New frames")["custom_id"])
    await dc.answered(it)
    await dc.wait_for(lambda: "Drawing new frames" in scene_msg(dc, tid, 2).content,
                      what="drawing", channel_id=tid)
    fresh = [FrameCandidate(id=f"2b{n}", media=await rt.media.put(
        png((n * 60, 10, 200), (20, 30)), "image/png"), seed=n, provider="t") for n in (1, 2, 3)]

    def redrawn(s: Story) -> None:
        s.scenes[1].candidates = fresh
        s.status = Status.awaiting_approval

    story = await rt.store.update(story.id, redrawn)
    await rt.outbox.publish(StoryEvent.of(story, EventKind.candidates, step="storyboard",
                                          scene=1, current=3, total=3))
    await dc.wait_for(lambda: scene_msg(dc, tid, 2).components != [], what="new frames",
                      channel_id=tid)
    again = scene_msg(dc, tid, 2)
    assert again.id == m2.id
    assert [a["id"] for a in again.attachments] != before  # the new frames, in place
    assert [a["filename"] for a in again.attachments] == ["frame-1.png", "frame-2.png",
                                                          "frame-3.png"]
    await finish(rt, story.id)
    await dc.wait_for(lambda: dc.find(tid, "The video is ready"), what="done", channel_id=tid)
    # in the story's thread: the status, a message per scene, the approval, the video
    assert len(dc.log(tid)) == 3 + 3, dc.dump(tid)
    assert [a["filename"] for a in dc.log(tid)[-1].attachments] == ["story.mp4",
                                                                   "storyboard.png"]
    # and in the channel it came from, one line that says where the video is
    assert [m.content for m in dc.log(world.cid)] == [
        f"🎬 **The Keeper & the \\*Whale\\*** is ready — watch it in <#{tid}>."]
    assert dc.errors == []


def json_text(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def test_who_may_decide_and_forged_buttons(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    thread = dc.channels[tid]
    m1 = scene_msg(dc, tid, 1)
    cid = m1.button("1")["custom_id"]
    # Bob is neither the owner nor a moderator
    it = await dc.press(thread, world.bob, m1, cid)
    assert "Only Alice" in (await dc.answered(it))[0]
    await dc.react(thread, world.bob, m1.id, "2\ufe0f\u20e3")
    refusal = await dc.wait_for(lambda: dc.find(tid, "Only Alice"), what="reaction refusal")
    assert refusal[0].content.startswith(f"<@{BOB}>")
    # Carol may manage messages; Bob with the configured role may too
    it = await dc.press(thread, world.carol, m1, cid)
    assert await dc.answered(it) == ["Scene 1: frame 1 ✓"]
    dc.join(world.guild, world.bob, roles=("Storytellers",))
    m2 = scene_msg(dc, tid, 2)
    it = await dc.press(thread, world.bob, m2, m2.button("3")["custom_id"])
    assert await dc.answered(it) == ["Scene 2: frame 3 ✓"]
    # forged, tampered, for another story, or from another channel: refused, nothing changes
    other_channel = dc.text_channel(world.guild, "elsewhere")
    token = cid.removeprefix("sl:")
    forged = "sl:" + token.replace(story.id, "0" * len(story.id))
    tampered = cid[:-3] + ("AAA" if not cid.endswith("AAA") else "BBB")
    answers = []
    for channel, custom_id in ((thread, forged), (thread, tampered), (other_channel, cid),
                               (thread, "sl:garbage")):
        it = await dc.press(channel, world.alice, m1, custom_id)
        answers.append((await dc.answered(it))[0])
    assert answers == ["This button is not valid here."] * 4
    # a reaction on an unrelated message, or with another emoji: nothing at all
    before = len(dc.requests)
    await dc.react(thread, world.alice, 12345, "1\ufe0f\u20e3")
    await dc.react(thread, world.alice, scene_msg(dc, tid, 3).id, "🎉")
    await asyncio.sleep(0.3)
    assert [r.path for r in dc.requests[before:]] == []
    stored = await rt.store.get(story.id)
    assert [sc.picked for sc in stored.scenes] == ["1a1", "2a3", None]
    assert dc.errors == []


async def test_every_interaction_is_acknowledged_in_time(
    world: World, dc: FakeDiscord, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow work behind a button still gets its answer: the press is deferred at once."""
    bot = await world.start()
    await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    dc.deadline_s = 0.5
    real = bot.conv.press

    async def slow(*a: Any, **kw: Any) -> Any:
        await asyncio.sleep(1.0)
        return await real(*a, **kw)

    monkeypatch.setattr(bot.conv, "press", slow)
    m1 = scene_msg(dc, tid, 1)
    it = await dc.press(dc.channels[tid], world.alice, m1, m1.button("2")["custom_id"])
    assert await dc.answered(it) == ["Scene 1: frame 2 ✓"]
    assert it.refused == []
    # the fake does refuse a late callback
    late = await dc.slash(world.channel, world.alice, "help", age_s=5)
    with pytest.raises(AssertionError):
        await dc.answered(late, within=1.0)
    assert late.refused == ["late"]  # the bot tried once, and did not retry blindly


async def test_bad_slash_inputs_get_ephemeral_answers(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    cases = [("story", {"idea": "x" * 5000}, "5000 characters; keep it under 2000"),
             ("story", {"idea": "🐳🌊✨"}, "Write your idea in words"),
             ("story", {"idea": "   "}, "The idea is empty"),
             ("status", {"story": "nosuchstory"}, "There is no such story in this chat."),
             ("cancel", {}, "Nothing of yours to cancel"),
             ("mystories", {}, "You have no stories yet")]
    for name, options, expected in cases:
        it = await dc.slash(world.channel, world.alice, name, **options)
        answer = await dc.answered(it)
        assert expected in answer[0], (name, answer)
    assert await rt.store.by_owner(duser(ALICE)) == []
    assert dc.threads_of(world.channel) == []  # a refused idea opens no thread
    assert dc.log(world.cid) == []  # every answer was private
    assert all(m.ephemeral for m in dc.log(world.cid, ephemeral=True))


async def test_mentions_and_dms_start_stories(world: World, dc: FakeDiscord, rt: Runtime
                                              ) -> None:
    await world.start()
    await dc.mention(world.channel, world.bob, "a robot learns to paint")
    reply = await dc.wait_for(lambda: dc.find(world.cid, "Your story has started"),
                              what="mention reply", channel_id=world.cid)
    tid = thread_of(dc, world)
    assert f"<#{tid}>" in reply[0].content
    sid = (await rt.store.by_owner(duser(BOB)))[0]
    assert (await rt.store.get(sid)).idea == "a robot learns to paint"
    # a bare mention gets the help
    await dc.mention(world.channel, world.bob, "")
    await dc.wait_for(lambda: dc.find(world.cid, "/story"), what="help")
    # in a DM no thread: the story runs right there
    dm = int(world.dm["id"])
    await dc.mention(world.dm, world.dave, "a cloud that is afraid of heights")
    await dc.wait_for(lambda: dc.find(dm, "Writing the script"), what="dm status",
                      channel_id=dm)
    assert len(dc.threads_of(world.channel)) == 1
    it = await dc.slash(world.dm, world.dave, "mystories")
    assert "a cloud that is afraid of heights" in (await dc.answered(it))[0]


async def test_settings_buttons_change_new_stories(world: World, dc: FakeDiscord,
                                                   rt: Runtime) -> None:
    await world.start()
    it = await dc.slash(world.channel, world.carol, "settings")
    await dc.answered(it)
    menu = dc.messages[it.original]  # type: ignore[index]
    assert len(menu.components) <= 5 and all(len(r["components"]) <= 5 for r in menu.components)
    assert "✓ 9:16" in menu.button_labels() and "anime" in menu.button_labels()
    press = await dc.press(world.channel, world.carol, menu, menu.button("16:9")["custom_id"])
    await dc.wait_for(lambda: press.responses, what="ack")
    await dc.wait_for(lambda: "✓ 16:9" in dc.messages[menu.id].button_labels(), what="tick")
    # Bob is no moderator: refused
    press = await dc.press(world.channel, world.bob, menu, menu.button("1:1")["custom_id"])
    assert await dc.answered(press) == ["⚠️ Only the group's admins can change its settings."]
    it = await dc.slash(world.channel, world.alice, "story", idea="a tiny dragon bakes bread")
    await dc.answered(it)
    story = await rt.store.get((await rt.store.by_owner(duser(ALICE)))[0])
    assert story.options.aspect == "16:9"


async def test_no_thread_permission_deleted_thread_and_no_attach(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    dc.deny(world.channel, "create_public_threads", "attach_files")
    story = await board(rt, world.chat(), duser(ALICE))
    await dc.wait_for(lambda: dc.find(world.cid, "scenes picked"), what="board in channel",
                      channel_id=world.cid)
    assert dc.threads_of(world.channel) == []
    assert len(dc.find(world.cid, "can't open threads here")) == 1
    m1 = scene_msg(dc, world.cid, 1)
    assert m1.attachments == [] and "can't attach the frames" in m1.content
    assert m1.button_labels()[:3] == ["1", "2", "3"]
    it = await dc.press(world.channel, world.alice, m1, m1.button("1")["custom_id"])
    assert await dc.answered(it) == ["Scene 1: frame 1 ✓"]

    # another story gets a thread, which someone then deletes
    dc.denied.clear()
    other = await board(rt, world.chat(), duser(ALICE), title="Second tale")
    tid = await dc.wait_for(lambda: dc.threads_of(world.channel), what="thread")
    tid = int(tid[0]["id"])
    await dc.wait_for(lambda: dc.find(tid, "scenes picked"), what="board", channel_id=tid)
    await dc.delete_channel(dc.channels[tid])
    await rt.store.update(other.id, lambda s: setattr(s, "status", Status.animating))
    await rt.outbox.publish(StoryEvent.of(await rt.store.get(other.id), EventKind.progress,
                                          step="animate", current=1, total=3))
    await dc.wait_for(lambda: dc.find(world.cid, "thread was deleted"), what="fallback note",
                      channel_id=world.cid)
    await dc.wait_for(lambda: [m for m in dc.find(world.cid, "Second tale")
                               if "Animating" in m.content], what="status in the channel")
    assert len(dc.find(world.cid, "thread was deleted")) == 1  # said once
    assert (await rt.store.get(story.id)).scenes[0].picked == "1a1"  # nothing lost
    assert await unacknowledged(rt, "discord") == 0


async def test_video_over_the_limit_becomes_a_link(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    rt.settings = rt.settings.model_copy(update={"media_public_url": "https://media.example"})
    from pipeline.media import open_media_store

    rt.media = open_media_store("local", rt.settings.media_path, "https://media.example")
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    await finish(rt, story.id, size=11 * 2**20)  # over the 10 MiB of an unboosted server
    msg = await dc.wait_for(lambda: dc.find(tid, "upload limit"), what="link", channel_id=tid)
    assert "https://media.example/" in msg[0].content
    assert [a["filename"] for a in msg[0].attachments] == ["storyboard.png"]
    assert not [e for e in dc.errors if e[1] == 40005]  # it never tried an oversized upload
    # a boosted server reports 50 MiB: the same video is uploaded
    world.guild["premium_tier"] = 2
    other = await board(rt, world.chat(), duser(ALICE), title="Boosted")
    it = await dc.slash(world.channel, world.alice, "status", story=other.id)
    await dc.answered(it)  # the limit Discord reports is remembered for the channel
    await finish(rt, other.id, size=11 * 2**20)
    await dc.wait_for(lambda: [m for m in dc.messages.values() if any(
        a["filename"] == "story.mp4" and a["size"] > 11 * 2**20 for a in m.attachments)],
        what="boosted upload")


async def test_a_lower_limit_than_reported_still_delivers_a_link(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    from pipeline.media import open_media_store

    rt.media = open_media_store("local", rt.settings.media_path, "https://media.example")
    world.guild["premium_tier"] = 2
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE))
    it = await dc.slash(world.channel, world.alice, "status", story=story.id)
    await dc.answered(it)  # Discord reported 50 MiB for this channel
    tid = await the_board(dc, world)
    world.guild["premium_tier"] = 0  # the boost lapsed: uploads over 10 MiB are refused
    await finish(rt, story.id, size=11 * 2**20)
    msg = await dc.wait_for(lambda: dc.find(tid, "upload limit"), what="link", channel_id=tid)
    assert [e[1] for e in dc.errors] == [40005]  # it tried once, got 413, and fell back
    assert "https://media.example/" in msg[0].content
    assert [a["filename"] for a in msg[0].attachments] == ["storyboard.png"]
    await dc.wait_for(lambda: dc.find(tid, "The video is ready"), what="status done")


async def test_an_archived_thread_is_reopened_by_the_next_post(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    await dc.archive(dc.channels[tid])
    story = await rt.store.update(story.id, lambda s: setattr(s, "status", Status.animating))
    await rt.outbox.publish(StoryEvent.of(story, EventKind.status, step="animate"))
    await dc.wait_for(lambda: dc.find(tid, "Animating"), what="status after archive",
                      channel_id=tid)
    # the first edit is refused (an edit cannot reach an archived thread); that view is posted
    # anew, which reopens the same thread, and its old copy loses its buttons
    assert [e[1] for e in dc.errors] == [50083]
    refused = int(dc.errors[0][0].rsplit("/", 1)[1])
    assert dc.channels[tid]["thread_metadata"]["archived"] is False
    assert len(dc.threads_of(world.channel)) == 1
    await dc.wait_for(lambda: dc.messages[refused].components == [], what="old copy disarmed",
                      channel_id=tid)
    # later updates edit in place again
    await rt.outbox.publish(StoryEvent.of(story, EventKind.progress, step="animate", current=1,
                                          total=3))
    await dc.wait_for(lambda: dc.find(tid, "2 of 3"), what="progress edit", channel_id=tid,
                      within=10)
    assert len(dc.find(tid, "Animating")) == 1
    assert [e[1] for e in dc.errors] == [50083]
    assert await unacknowledged(rt, "discord") == 0


async def test_a_429_is_waited_out(world: World, dc: FakeDiscord, rt: Runtime) -> None:
    await world.start()
    body = {"message": "You are being rate limited.", "retry_after": 0.4, "global": False}
    dc.script("POST", f"/api/v10/channels/{world.cid}/threads", 429, json.dumps(body).encode(),
              headers={"Via": "1.1 google", "Content-Type": "application/json"})
    dc.channel_limit = (3, 1.0)
    await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    for k in (1, 2, 3):
        scene_msg(dc, tid, k)
    assert len(dc.calls("POST", f"/api/v10/channels/{world.cid}/threads")) == 2


async def test_a_post_repeated_before_it_was_recorded_shows_once(
    world: World, dc: FakeDiscord, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = await world.start()
    delivery = bot.conv.delivery
    real_record = delivery.record
    lost: list[str] = []

    async def record_after_a_crash(story_id: str, slot: str, shown: Any) -> None:
        if slot.startswith("scene:") and not lost:  # the process dies after posting, before
            lost.append(slot)                       # it wrote down what it posted
            raise ConnectionError("redis went away")
        await real_record(story_id, slot, shown)

    monkeypatch.setattr(delivery, "record", record_after_a_crash)
    await board(rt, world.chat(), duser(ALICE))
    tid = await the_board(dc, world)
    # the event was read again and the album posted again, with the same nonce: Discord
    # answered with the first message instead of creating a second one
    assert lost == ["scene:0"] and dc.nonce_repeats == 1
    frames = [m for m in dc.log(tid) if any(a["filename"] == "frame-1.png"
                                           for a in m.attachments)]
    assert len(frames) == 3  # one album per scene, none twice
    assert await unacknowledged(rt, "discord") == 0


async def test_restart_mid_story_buttons_keep_working(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    bot = await world.start()
    story = await board(rt, world.chat(), duser(ALICE), publish=False)
    await publish_board(rt, story, range(2))
    await dc.wait_for(lambda: dc.threads_of(world.channel), what="thread")
    tid = thread_of(dc, world)
    await dc.wait_for(lambda: len([m for m in dc.log(tid) if "Scene 2 of 3" in m.content
                                   and m.components]) == 1, what="two scenes", channel_id=tid)
    m1 = scene_msg(dc, tid, 1)
    await world.stop(bot)
    # while it is down: scene 3 is drawn and the storyboard completes
    await publish_board(rt, story, range(2, 3))
    await rt.outbox.publish(StoryEvent.of(story, EventKind.awaiting_approval, step="storyboard"))
    await publish_board(rt, story, range(0, 1))  # and an old event comes again
    await world.start()
    await dc.wait_for(lambda: dc.find(tid, "scenes picked"), what="approve after restart",
                      channel_id=tid)
    assert len(dc.threads_of(world.channel)) == 1  # the same thread, no second one
    for k in (1, 2, 3):
        scene_msg(dc, tid, k)
    # a button posted before the restart works after it
    it = await dc.press(dc.channels[tid], world.alice, m1, m1.button("3")["custom_id"])
    assert await dc.answered(it) == ["Scene 1: frame 3 ✓"]
    assert len(dc.identifies) == 2
    assert await unacknowledged(rt, "discord") == 0


async def test_sharded_and_owner_sync(world: World, dc: FakeDiscord) -> None:
    bot = await world.start(sharded=True)
    assert isinstance(bot.client, discord.AutoShardedClient)
    assert dc.identifies[0]["shard"] == [0, 1]
    assert dc.calls("GET", "/api/v10/gateway/bot")
    await dc.mention(world.channel, world.alice, "sync")  # not the owner: an idea, not a sync
    await dc.wait_for(lambda: dc.find(world.cid, "Your story has started"), what="story")
    owner = user(int(world.guild["owner_id"]), "Owner")
    dc.join(world.guild, owner)
    await dc.mention(world.channel, owner, "sync")
    await dc.wait_for(lambda: dc.find(world.cid, "Slash commands synced"), what="sync")
    assert dc.command_puts == 2
    assert str(APP_ID) in dc.calls("PUT")[-1].path


# --------------------------------------------------------------------------- a whole story


@pytest_asyncio.fixture
async def worker(rt: Runtime) -> AsyncIterator[None]:
    from pipeline.worker import BackgroundWorker

    rt.settings = rt.settings.model_copy(update={"default_scenes": 3, "candidates": 2})
    w = BackgroundWorker(rt.settings, rt)
    w.start()
    yield
    await w.stop()


@pytest.mark.slow
async def test_whole_story_from_slash_command_to_video(
    world: World, dc: FakeDiscord, rt: Runtime, worker: None
) -> None:
    await world.start()
    it = await dc.slash(world.channel, world.alice, "story",
                        idea="A lighthouse keeper befriends a stranded whale", scenes=3)
    await dc.answered(it)
    tid = thread_of(dc, world)
    thread = dc.channels[tid]
    await dc.wait_for(lambda: dc.find(tid, "scenes picked"), what="storyboard",
                      channel_id=tid, within=120)
    for k in (1, 2, 3):
        m = scene_msg(dc, tid, k)
        assert len(m.attachments) == 2
        press = await dc.press(thread, world.alice, m, m.button(str(1 + k % 2))["custom_id"])
        await dc.answered(press)
    ready = await dc.wait_for(lambda: dc.find(tid, "Every scene has a frame"), what="ready",
                              channel_id=tid)
    await dc.press(thread, world.alice, ready[0], ready[0].button("Make the video")["custom_id"])
    video = await dc.wait_for(lambda: [m for m in dc.log(tid) if any(
        a["filename"] == "story.mp4" for a in m.attachments)], what="video", channel_id=tid,
        within=240)
    size = next(a["size"] for a in video[0].attachments if a["filename"] == "story.mp4")
    assert 10_000 < size <= 10 * 2**20
    await dc.wait_for(lambda: dc.find(tid, "The video is ready"), what="done", within=10)
    status = dc.one(tid, "The video is ready")
    assert status.edits >= 3  # one progress message, edited in place
    assert dc.find(world.cid, "is ready")
    assert dc.errors == []


# --------------------------------------------------------------------------- issue 10


async def test_two_stories_started_in_one_second_link_their_own_threads(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    await world.start()
    ideas = ["A fox who collects moonlight in jars", "A robot who learns to paint clouds",
             "A snail who races the tide", "An owl who keeps the library at night"]
    its = await asyncio.gather(*(dc.slash(world.channel, world.alice, "story", idea=idea)
                                 for idea in ideas))
    answers = [await dc.answered(it) for it in its]
    threads = {dc.channels[int(t["id"])]["name"]: int(t["id"])
               for t in dc.threads_of(world.channel)}
    assert len(threads) == len(ideas)
    for idea, answer in zip(ideas, answers, strict=True):
        tid = next(t for name, t in threads.items() if idea.startswith(name.rstrip("…")))
        assert answer == [f"📖 Your story has started in <#{tid}>."], (idea, answer)


def noise_png(width: int, height: int, seed: int) -> bytes:
    """A photo-like frame as far as size goes: noise does not compress (about 3 bytes/pixel)."""
    rnd = random.Random(seed)
    img = Image.frombytes("RGB", (width, height), rnd.randbytes(width * height * 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def test_a_small_upload_limit_shrinks_frames_and_sends_the_video_without_storyboard(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    dc.upload_limits[int(world.guild["id"])] = 1 * MiB
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE), scenes=8, publish=False,
                        frame=lambda i, j: noise_png(360, 640, i * 10 + j))
    it = await dc.slash(world.channel, world.alice, "status", story=story.id)
    await dc.answered(it)  # Discord reported this server's 1 MiB
    await publish_board(rt, story)
    tid = await the_board(dc, world)
    for k in range(1, 9):  # every scene is shown, with its three frames, shrunk to fit
        m = scene_msg(dc, tid, k)
        assert [a["filename"] for a in m.attachments] == ["frame-1.jpg", "frame-2.jpg",
                                                          "frame-3.jpg"]
        assert m.button_labels()[:3] == ["1", "2", "3"]
    video_size = 900 * 1024  # under the story's cap (97% of the limit), not with the sheet
    await finish(rt, story.id, size=video_size, sheet_png=noise_png(800, 450, 99))
    video = await dc.wait_for(lambda: [m for m in dc.log(tid) if any(
        a["filename"] == "story.mp4" for a in m.attachments)], what="video", channel_id=tid)
    assert [a["filename"] for a in video[0].attachments] == ["story.mp4"]
    assert video[0].button_labels()[:3] == ["🎬 1", "🎬 2", "🎬 3"]
    await dc.wait_for(lambda: dc.find(tid, "The video is ready"), what="status done")
    assert dc.find(tid, "The storyboard of") == []  # each scene's message shows its frames
    assert dc.uploads and all(u.size <= u.limit for u in dc.uploads), dc.uploads
    assert dc.too_large == 0 and dc.errors == []
    assert await unacknowledged(rt, "discord") == 0


async def test_a_413_below_the_reported_limit_is_learned_and_named(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    from pipeline.media import open_media_store

    rt.media = open_media_store("local", rt.settings.media_path, "https://media.example")
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE))
    it = await dc.slash(world.channel, world.alice, "status", story=story.id)
    await dc.answered(it)  # Discord reported 10 MiB
    tid = await the_board(dc, world)
    dc.upload_limits[int(world.guild["id"])] = 1 * MiB  # and now it takes 1 MiB, unannounced
    await finish(rt, story.id, size=3 * MiB)
    msg = await dc.wait_for(lambda: dc.find(tid, "so here is a link"), what="link",
                            channel_id=tid)
    assert "The video is 3.0 MiB, over this server's upload limit (Discord refused an " \
           "upload of 3.0 MiB here), so here is a link: https://media.example/" in msg[0].content
    assert "10 MiB" not in msg[0].content
    assert [a["filename"] for a in msg[0].attachments] == ["storyboard.png"]
    assert dc.too_large == 1  # refused once; the next request fitted what it taught
    # the lower limit is remembered for the server: the next story's frames fit at once
    other = await board(rt, world.chat(), duser(ALICE), title="Second tale", scenes=3,
                        frame=lambda i, j: noise_png(360, 640, 50 + i * 10 + j))
    await dc.wait_for(lambda: [t for t in dc.threads_of(world.channel)
                               if t["name"] == "Second tale"], what="second thread")
    tid2 = int(next(t for t in dc.threads_of(world.channel) if t["name"] == "Second tale")["id"])
    await dc.wait_for(lambda: dc.find(tid2, "scenes picked"), what="second board",
                      channel_id=tid2)
    for k in (1, 2, 3):
        assert len(scene_msg(dc, tid2, k).attachments) == 3
    assert dc.too_large <= 2
    assert (await rt.store.get(other.id)).status == Status.awaiting_approval

    # a server that loses its boosts: Discord says so (GUILD_UPDATE); a 413 then names the
    # limit of its new tier
    dc.upload_limits.clear()
    await dc.set_tier(world.guild, 2)
    it = await dc.slash(world.channel, world.alice, "status", story=other.id)
    await dc.answered(it)  # 50 MiB reported
    await dc.set_tier(world.guild, 0)
    await finish(rt, other.id, size=11 * MiB)
    msg = await dc.wait_for(lambda: dc.find(tid2, "so here is a link"), what="link 2",
                            channel_id=tid2)
    assert "The video is 11.0 MiB, over this server's 10 MiB upload limit" in msg[0].content


async def test_a_channel_in_a_long_rate_limit_delays_no_other_channels_buttons(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    rooms = [dc.text_channel(world.guild, f"room-{n}") for n in range(6)]
    await world.start()
    stories = []
    for room in rooms:
        chat = ChatRef(platform=Platform.discord, chat_id=room["id"], is_group=True)
        stories.append(await board(rt, chat, duser(ALICE), title=f"Tale of {room['name']}"))
    threads: list[int] = []
    for room in rooms:
        found = await dc.wait_for(lambda r=room: dc.threads_of(r), what="a thread")
        tid = int(found[0]["id"])
        await dc.wait_for(lambda t=tid: dc.find(t, "scenes picked"), what="board", channel_id=tid)
        threads.append(tid)
    # the first story's thread is in a 60 s rate limit, and the pump is posting there
    slow = dc.channels[threads[0]]
    dc.flood(slow, 60.0)
    busy = await rt.store.update(stories[0].id, lambda s: setattr(s, "status", Status.animating))
    await rt.outbox.publish(StoryEvent.of(busy, EventKind.status, step="animate"))
    await dc.wait_for(lambda: str(threads[0]) in dc.floods, what="the 429")
    # meanwhile people in the five other channels press buttons
    started = asyncio.get_running_loop().time()
    presses = []
    for tid in threads[1:]:
        m = scene_msg(dc, tid, 1)
        presses.append(await dc.press(dc.channels[tid], world.alice, m, m.button("2")["custom_id"]))
    answers = await asyncio.gather(*(dc.answered(p, within=5) for p in presses))
    took = asyncio.get_running_loop().time() - started
    assert answers == [["Scene 1: frame 2 ✓"]] * 5
    assert took < 1.0, took
    assert all(p.refused == [] for p in presses)  # no callback came late
    for sid in [s.id for s in stories[1:]]:
        assert (await rt.store.get(sid)).scenes[0].picked == "1a2"
    # and each of those storyboards shows the pick at once: nothing waits behind the slow thread
    for tid in threads[1:]:
        await dc.wait_for(lambda t=tid: "✓ 2" in scene_msg(dc, t, 1).button_labels(),
                          within=2.0, what="the tick", channel_id=tid)


async def test_frames_that_cannot_share_a_message_go_one_per_message_or_are_named(
    world: World, dc: FakeDiscord, rt: Runtime
) -> None:
    gid = int(world.guild["id"])
    dc.upload_limits[gid] = 8000  # even shrunk, three frames do not fit one request
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE), scenes=3, publish=False,
                        frame=lambda i, j: noise_png(360, 640, 200 + i * 10 + j))
    it = await dc.slash(world.channel, world.alice, "status", story=story.id)
    await dc.answered(it)
    await publish_board(rt, story)
    tid = await the_board(dc, world)
    for k in (1, 2, 3):
        parts = [m for m in dc.log(tid) if m.content.startswith(f"🖼 **Scene {k} of 3**")
                 or f"Scene {k} of 3** · frame" in m.content]
        assert [[a["filename"] for a in m.attachments] for m in parts] == [
            ["frame-1.jpg"], ["frame-2.jpg"], ["frame-3.jpg"]], dc.dump(tid)
        assert f"Scene {k} text" in parts[0].content and parts[0].button_labels()[:3] == [
            "1", "2", "3"]
        assert "frame 2 of 3" in parts[1].content
    # 👍 on a frame's own message picks that frame
    second = next(m for m in dc.log(tid) if "Scene 1 of 3** · frame 2 of 3" in m.content)
    await dc.react(dc.channels[tid], world.alice, second.id, "👍")
    first = next(m for m in dc.log(tid) if m.content.startswith("🖼 **Scene 1 of 3**\n"))
    await dc.wait_for(lambda: "✓ 2" in dc.messages[first.id].button_labels(), what="tick")
    assert all(u.size <= u.limit for u in dc.uploads) and dc.too_large == 0

    # a limit no frame fits even shrunk: the scene is shown, and says why it has no frames
    dc.upload_limits[gid] = 4 * 1024
    other = await board(rt, world.chat(), duser(BOB), scenes=3, title="Tiny", publish=False,
                        frame=lambda i, j: noise_png(360, 640, 300 + i * 10 + j))
    it = await dc.slash(world.channel, world.bob, "status", story=other.id)
    await dc.answered(it)
    await publish_board(rt, other)
    await dc.wait_for(lambda: [t for t in dc.threads_of(world.channel) if t["name"] == "Tiny"],
                      what="thread")
    tiny = int(next(t for t in dc.threads_of(world.channel) if t["name"] == "Tiny")["id"])
    await dc.wait_for(lambda: dc.find(tiny, "scenes picked"), what="board", channel_id=tiny)
    for k in (1, 2, 3):
        m = scene_msg(dc, tiny, k)
        assert m.attachments == [] and m.button_labels()[:3] == ["1", "2", "3"]
        assert "the frames don't fit this server's 4 KiB upload limit" in m.content
    assert all(u.size <= u.limit for u in dc.uploads) and dc.too_large == 0


async def test_a_video_over_the_limit_is_re_encoded_to_fit(
    world: World, dc: FakeDiscord, rt: Runtime, tmp_path: Any
) -> None:
    from providers.offline.ffmpeg import run_ffmpeg

    out = tmp_path / "big.mp4"
    await run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=720x1280:rate=24:duration=6",
                      "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
                      "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-c:a", "aac",
                      "-shortest", "-y", str(out)])
    big = out.read_bytes()
    assert len(big) > 2 * MiB
    dc.upload_limits[int(world.guild["id"])] = 1 * MiB
    await world.start()
    story = await board(rt, world.chat(), duser(ALICE), publish=False)
    it = await dc.slash(world.channel, world.alice, "status", story=story.id)
    await dc.answered(it)  # 1 MiB reported
    await publish_board(rt, story)
    tid = await the_board(dc, world)
    await finish(rt, story.id, video_mp4=big)
    video = await dc.wait_for(lambda: [m for m in dc.log(tid) if any(
        a["filename"] == "story.mp4" for a in m.attachments)], what="video", channel_id=tid,
        within=60)
    sent = next(a["size"] for a in video[0].attachments if a["filename"] == "story.mp4")
    assert 100 * 1024 < sent <= MiB
    assert "over this server's 1 MiB upload limit, so here it is re-encoded to" in \
        video[0].content
    assert video[0].button_labels()[:3] == ["🎬 1", "🎬 2", "🎬 3"]
    assert all(u.size <= u.limit for u in dc.uploads) and dc.too_large == 0


async def test_a_report_that_a_413_disproved_does_not_raise_the_limit_again(rt: Runtime) -> None:
    from bots.discord.uploads import UploadLimits

    limits = UploadLimits(rt.redis, "t:", lambda chat: ("g1", 10 * MiB))
    chat = ChatRef(platform=Platform.discord, chat_id="5", is_group=True)
    await limits.reported(chat, 10 * MiB)
    learned = await limits.refused(chat, 3 * MiB)  # Discord refused 3 MiB
    assert learned.size < 3 * MiB and "refused an upload of 3.0 MiB" in learned.name()
    await limits.reported(chat, 10 * MiB)  # an interaction repeats the 10 MiB it was wrong about
    assert await limits.get(chat) == learned
    again = UploadLimits(rt.redis, "t:", lambda chat: ("g1", 10 * MiB))  # after a restart
    assert await again.get(chat) == learned
    await limits.reported(chat, 50 * MiB)  # a new report (the server was boosted) is believed
    assert (await limits.get(chat)).size == 50 * MiB
