"""``storyloom chat``: the conversation core in a terminal, so the whole flow works with no token.

Lines typed (or piped) on standard input become intents (``/story …``, ``pick 2 1``,
``approve``...); the views of the core are printed. A worker runs in this process when none is
running. ``wait`` (and the end of input) waits until the current story needs a person again.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
import sys
import time
import uuid
from typing import Any, TextIO

from bots.core import intents as it
from bots.core.community import time_left, waiting_for_people
from bots.core.conversation import Conversation, shorten, status_lines
from bots.core.pump import EventPump, stop_task
from bots.core.views import (
    AlbumView,
    AnyView,
    ApproveView,
    GalleryView,
    SceneView,
    ScriptView,
    StatusView,
    Text,
    VideoView,
    VoteView,
)
from pipeline.community import SETTING_FIELDS
from pipeline.events import stream_key
from pipeline.models import WORK_STATES, ChatRef, Platform, Story, UserRef
from pipeline.runtime import Runtime
from pipeline.settings import Settings

COMMANDS = """commands:
  /story <idea>       start a story (or just type the idea)
  pick <scene> <n>    pick frame n for a scene;  picks <n1> <n2> …  one per scene
  new <scene>         draw new frames for a scene
  edit <scene> [text] rewrite a scene (without text, your next line is the text)
  approve             make the video once every scene has a frame
  redo <scene>        redo one scene's clip of a finished video
  voice [name]        narrate a finished video again;  remix  a new take on the idea
  settings [key val]  aspect, scenes, style, voice, language for new stories
  status | mystories | cancel | retry | wait | help | quit
  wait votes          until the open votes close (their window ends), then as wait
community (the terminal plays a group; you are its admin):
  /as <name>          act as another member (/leave <name>: that member leaves)
  /setup              make this chat a community;  community  its settings
  settings <name> <v> decides, window, quorum, newframes, starters, quota, budget, cap, automake
  vote <scene> <n|new>  vote on a scene's frames (pick and new do the same in a voted story)
  propose <scene> <text>  new text for a scene, put to a vote;  textvote <scene> <n>
  close [scene] | override <scene> <n>   end a vote now (owner, admins, moderators)
  idea <text>         an idea for the next episode;  next  start the next episode
  /mod <name> | /unmod <name> | budget | gallery | spend (approve a held spend)"""
COMMUNITY_KEYS = frozenset(SETTING_FIELDS)


class ConsoleRenderer:
    """Prints views; implements :class:`bots.core.delivery.Renderer`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.n = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def format(self, view: AnyView) -> str:
        match view:
            case Text():
                head = f"{view.title}\n" if view.title else ""
                return ("! " if view.error else "") + head + view.text
            case StatusView():
                return f"» {shorten(view.title, 60)}: " + " · ".join(status_lines(view))
            case ScriptView():
                lines = [f"📜 {view.title}"]
                if view.logline:
                    lines.append(f"   {view.logline}")
                lines += [f"   cast: {c}" for c in view.characters]
                lines += [f"   {n}. {s}" for n, s in enumerate(view.scenes, 1)]
                return "\n".join(lines)
            case AlbumView():
                lines = [f"🖼 {view.caption}:"]
                lines += [f"   [{n}] {p}" for n, p in enumerate(view.images, 1)]
                return "\n".join(lines)
            case SceneView():
                k = view.scene + 1
                lines = [f"🖼 Scene {k} of {view.scenes}: {shorten(view.narration, 200)}"]
                if not view.count:
                    return "\n".join([*lines, "   🔄 drawing new frames…"])
                lines += [f"   [{n}] {p}" for n, p in enumerate(view.images, 1)]
                state = f"frame {view.picked} picked" if view.picked else "no frame picked"
                lines.append(f"   {state} — pick {k} <1-{view.count}> | new {k} | "
                             f"edit {k} <text>")
                return "\n".join(lines)
            case ApproveView():
                if view.state == "ready":
                    return "✅ every scene has a frame: type approve to make the video"
                if view.state == "approved":
                    return "✅ approved: the video is on its way"
                return f"   {view.picked} of {view.scenes} scenes picked"
            case VoteView():
                return vote_text(view, time.time())
            case GalleryView():
                return gallery_text(view)
            case VideoView():
                return (f"🎬 {view.title} ({view.duration_s:.1f} s)\n   video:      {view.video}\n"
                        f"   storyboard: {view.sheet}\n   redo <scene> | voice <name> | remix")
        return str(view)

    async def send(self, chat: ChatRef, view: AnyView, once: str = "") -> list[str]:
        self.say(self.format(view))
        self.n += 1
        return [str(self.n)]

    async def edit(self, chat: ChatRef, view: AnyView, refs: list[str]) -> bool:
        if isinstance(view, AlbumView):
            return True
        self.say(self.format(view))
        return True

    async def retire(self, chat: ChatRef, refs: list[str]) -> None:
        return None


def _int(raw: str) -> int:
    return int(raw)


def member_ref(name: str) -> UserRef:
    """A member of the terminal's group, by the name typed."""
    return UserRef(platform=Platform.console, user_id=name.lower(), display_name=name)


def vote_text(view: VoteView, at: float) -> str:
    k = view.scene + 1
    what = "frames" if view.vote_kind == "frame" else "text"
    lines = [f"🗳 Scene {k} of {view.scenes}, vote on its {what}: {shorten(view.narration, 120)}"]
    for n, (option, count) in enumerate(zip(view.options, view.counts, strict=True), 1):
        lines.append(f"   [{n}] {shorten(option, 100)} — {count} vote{'s' if count != 1 else ''}")
    if view.vote_kind == "frame":
        lines.append(f"   🔄 new frames — {view.new_frames} of {view.new_frames_needed} needed")
    if view.state == "open":
        verb = "vote" if view.vote_kind == "frame" else "textvote"
        lines.append(f"   ⏳ {time_left(view.closes_at, at)} · {view.voters} voted · "
                     f"{verb} {k} <n>" + (f" | vote {k} new"
                                          if view.vote_kind == "frame" else ""))
    else:
        lines.append(f"   ✅ {view.result}")
    lines += [f"   {line}" for line in view.overrides]
    return "\n".join(lines)


def gallery_text(view: GalleryView) -> str:
    lines = [view.title]
    for g in view.items:
        credit = f"by {g.owner}"
        if g.voters:
            credit += f" · voters {', '.join(g.voters)}"
        if g.contributors:
            credit += f" · scenes by {', '.join(g.contributors)}"
        facts = f"{credit} · ${g.cost_usd:.2f} · {g.duration_s:.0f} s" + (
            f" · {g.url}" if g.url else "")
        lines.append(f"   {facts}" if view.slot else f"   • {g.title} — {facts}")
    return "\n".join(lines)


def parse_line(line: str, current: Story | None) -> list[it.Intent] | str:
    """The intents a typed line stands for, or a word about why it cannot be done."""
    text = line.strip()
    if not text:
        return []
    word, _, rest = text.partition(" ")
    cmd = word.lower().lstrip("/")
    rest = rest.strip()
    sid = current.id if current is not None else None
    needs_story = {"pick", "picks", "new", "edit", "approve", "retry", "redo", "voice", "remix",
                   "vote", "propose", "textvote", "close", "override", "spend", "next"}
    if cmd in needs_story and sid is None:
        return "there is no story yet: type /story <idea>"
    try:
        match cmd:
            case "story":
                return [it.StartStory(idea=rest)]
            case "help" | "start":
                return [it.Help()]
            case "pick":
                scene, n = rest.split()
                return [it.PickFrame(story_id=sid or "", scene=_int(scene) - 1, choice=_int(n))]
            case "picks":
                return [it.PickFrame(story_id=sid or "", scene=i, choice=_int(n))
                        for i, n in enumerate(rest.split())]
            case "new":
                return [it.NewCandidates(story_id=sid or "", scene=_int(rest) - 1)]
            case "edit":
                scene, _, new_text = rest.partition(" ")
                return [it.EditScene(story_id=sid or "", scene=_int(scene) - 1,
                                     text=new_text.strip() or None)]
            case "approve":
                return [it.Approve(story_id=sid or "")]
            case "cancel":
                return [it.Cancel(story_id=rest or None)]
            case "retry":
                return [it.Retry(story_id=sid or "")]
            case "redo":
                return [it.Regenerate(story_id=sid or "", scene=_int(rest) - 1, what="clip")]
            case "voice":
                return [it.ChangeVoice(story_id=sid or "", voice=rest or None)]
            case "remix":
                return [it.Remix(story_id=sid or "")]
            case "next":
                return [it.NextEpisode(story_id=sid or "")]
            case "vote":
                scene, n = rest.split()
                choice = 0 if n.lower() in ("new", "0") else _int(n)
                return [it.CastVote(story_id=sid or "", scene=_int(scene) - 1, choice=choice)]
            case "textvote":
                scene, n = rest.split()
                return [it.CastVote(story_id=sid or "", scene=_int(scene) - 1, choice=_int(n),
                                    kind="text")]
            case "propose":
                scene, _, new_text = rest.partition(" ")
                return [it.Propose(story_id=sid or "", scene=_int(scene) - 1, text=new_text)]
            case "close":
                return [it.CloseVote(story_id=sid or "",
                                     scene=_int(rest) - 1 if rest else None)]
            case "override":
                scene, n = rest.split()
                return [it.Override(story_id=sid or "", scene=_int(scene) - 1,
                                    choice=0 if n.lower() == "new" else _int(n))]
            case "idea":
                return [it.NextEpisodeIdea(text=rest, story_id=sid)]
            case "setup":
                return [it.Setup()]
            case "community":
                return [it.CommunitySettings()]
            case "mod" | "unmod":
                name = rest.removeprefix("@").strip()
                if not name:
                    return f"name the member: /{cmd} <name>"
                user = member_ref(name)
                return [it.Mod(user=user) if cmd == "mod" else it.Unmod(user=user)]
            case "budget":
                return [it.Budget()]
            case "gallery":
                return [it.Gallery()]
            case "spend":
                return [it.ApproveSpend(story_id=sid or "")]
            case "settings":
                if not rest:
                    return [it.ChangeSettings()]
                key, _, value = rest.partition(" ")
                if key.lower() in COMMUNITY_KEYS:
                    return [it.CommunitySettings(key=key, value=value.strip())]
                return [it.ChangeSettings.model_validate({"key": key, "value": value.strip()})]
            case "status":
                return [it.ShowStatus(story_id=rest or None)]
            case "mystories":
                return [it.MyStories()]
    except ValueError:
        return f"could not read that; try: {COMMANDS.splitlines()[2].strip()}"
    if word.startswith("/"):
        return [it.UnknownCommand(command=word)]
    return [it.FreeText(text=text)]


class ConsoleChat:
    def __init__(self, rt: Runtime, conv: Conversation, out: TextIO, user: UserRef,
                 chat: ChatRef) -> None:
        self.rt = rt
        self.conv = conv
        self.out = out
        self.user = user
        self.chat = chat
        self.renderer = ConsoleRenderer(out)
        self.group = f"console-{uuid.uuid4().hex[:10]}"
        self.pump = EventPump(conv, self.renderer, consumer="console", group=self.group,
                              status_interval_s=(3.0, 3.0), block_ms=200,
                              chat_filter=lambda c: c.key == chat.key, start="$")
        self.worker: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.started: list[str] = []
        self.admin = user  # the person at the terminal is the group's admin
        self.members = {user.key: user}
        conv.community.member_check = self._is_member

    async def _is_member(self, chat: ChatRef, actor: UserRef) -> bool:
        return actor.key in self.members

    async def _admin_check(self) -> bool:
        return self.user.key == self.admin.key

    def act_as(self, name: str) -> None:
        """``/as NAME``: the next lines are typed by that member (who joins the group)."""
        user = self.admin if name.lower() == self.admin.user_id.lower() else member_ref(name)
        self.members[user.key] = user
        self.user = user
        self.renderer.say(f"(you are {user.display_name} now)")

    async def open(self) -> None:
        from pipeline.queue import worker_alive
        from pipeline.worker import BackgroundWorker

        await self.rt.outbox.ensure_group(Platform.console, self.group, start="$")
        self._tasks.append(asyncio.create_task(self.pump.run()))
        if not await worker_alive(self.rt.redis):
            self.worker = BackgroundWorker(self.rt.settings, self.rt)
            self.worker.start()
            self.renderer.say("(no worker running: working in this process)")

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        for task in self._tasks:
            await stop_task(task)
        with contextlib.suppress(Exception):
            await self.rt.redis.xgroup_destroy(stream_key(Platform.console), self.group)

    async def current(self) -> Story | None:
        ids = await self.rt.store.by_chat(self.chat, 1)
        if not ids:
            return None
        try:
            return await self.rt.store.get(ids[0])
        except Exception:
            return None

    async def line(self, text: str) -> bool:
        """Act on one typed line; ``False`` to stop."""
        if text.strip().lower() in ("quit", "exit", "/quit"):
            return False
        if text.strip().lower() in ("help", "/help", "?"):
            self.renderer.say(COMMANDS)
            return True
        if text.strip().lower() == "wait":
            await self.wait_idle()
            return True
        if text.strip().lower() == "wait votes":
            await self.wait_votes()
            return True
        word, _, rest = text.strip().partition(" ")
        if word.lower() in ("/as", "/leave"):
            if not rest.strip():
                self.renderer.say(f"! name the member: {word} <name>")
            elif word.lower() == "/as":
                self.act_as(rest.strip())
            else:
                self.members.pop(member_ref(rest.strip()).key, None)
                self.renderer.say(f"({rest.strip()} left the group)")
            return True
        parsed = parse_line(text, await self.current())
        if isinstance(parsed, str):
            self.renderer.say(f"! {parsed}")
            return True
        for intent in parsed:
            views = await self.conv.handle(intent, self.user, self.chat, self._admin_check)
            for view in views:
                await self.renderer.send(self.chat, view)
            if isinstance(intent, it.StartStory | it.FreeText | it.Remix) and not views:
                await self.wait_rendered()
        return True

    async def _drained(self) -> bool:
        key = stream_key(Platform.console)
        try:
            info = await self.rt.redis.xinfo_stream(key)
            groups = await self.rt.redis.xinfo_groups(key)
        except Exception:
            return True
        last = info.get("last-generated-id")
        for g in groups:
            name = g.get("name")
            name = name.decode() if isinstance(name, bytes) else name
            if name == self.group:
                return bool(g.get("last-delivered-id") == last and not g.get("pending"))
        return True

    async def wait_rendered(self) -> None:
        for _ in range(100):
            if await self._drained():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)

    async def wait_votes(self) -> None:
        """Until the current story's open votes have closed, then until it needs a person."""
        while True:
            story = await self.current()
            if story is None or not waiting_for_people(story) or story.spend_hold is not None:
                break
            await asyncio.sleep(0.2)
        await self.wait_idle()

    async def wait_idle(self, within_s: float = 1800) -> None:
        """Until the current story waits for a person (or is finished) and all is printed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline:
            story = await self.current()
            if story is None or _needs_person(story):
                await asyncio.sleep(0.3)  # its last events are on the stream by now
                await self.wait_rendered()
                story = await self.current()
                if story is None or _needs_person(story):
                    return
            await asyncio.sleep(0.2)
        self.renderer.say("! gave up waiting")


def _needs_person(story: Story) -> bool:
    """The story waits for a person: to vote, pick, approve, or approve a held spend."""
    return story.spend_hold is not None or story.status not in WORK_STATES


async def run_console(settings: Settings, stdin: TextIO = sys.stdin,
                      out: TextIO = sys.stdout) -> int:
    rt = await Runtime.open(settings)
    name = getpass.getuser()
    user = UserRef(platform=Platform.console, user_id=name, display_name=name)
    chat = ChatRef(platform=Platform.console, chat_id=f"{socket.gethostname()}-{name}",
                   is_group=True)  # a group that /as lets you play several members of
    conv = await Conversation.create(rt, Platform.console)
    session = ConsoleChat(rt, conv, out, user, chat)
    try:
        await session.open()
        if stdin.isatty():
            session.renderer.say("Storyloom chat. Type a story idea, or help.\n" + COMMANDS)
        while True:
            if stdin.isatty():
                print("> ", end="", file=out, flush=True)
            raw = await asyncio.to_thread(stdin.readline)
            if not raw:
                await session.wait_idle()
                break
            if not await session.line(raw):
                break
        return 0
    finally:
        await session.close()
        await rt.close()
