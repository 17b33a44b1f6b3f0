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
import uuid
from typing import Any, TextIO

from bots.core import intents as it
from bots.core.conversation import Conversation, shorten, status_lines
from bots.core.pump import EventPump, stop_task
from bots.core.views import (
    AlbumView,
    AnyView,
    ApproveView,
    SceneView,
    ScriptView,
    StatusView,
    Text,
    VideoView,
)
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
  settings [key val]  aspect, scenes, style, voice for new stories
  status | mystories | cancel | retry | wait | help | quit"""


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


def parse_line(line: str, current: Story | None) -> list[it.Intent] | str:
    """The intents a typed line stands for, or a word about why it cannot be done."""
    text = line.strip()
    if not text:
        return []
    word, _, rest = text.partition(" ")
    cmd = word.lower().lstrip("/")
    rest = rest.strip()
    sid = current.id if current is not None else None
    needs_story = {"pick", "picks", "new", "edit", "approve", "retry", "redo", "voice", "remix"}
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
            case "settings":
                if not rest:
                    return [it.ChangeSettings()]
                key, _, value = rest.partition(" ")
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
        parsed = parse_line(text, await self.current())
        if isinstance(parsed, str):
            self.renderer.say(f"! {parsed}")
            return True
        for intent in parsed:
            views = await self.conv.handle(intent, self.user, self.chat)
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

    async def wait_idle(self, within_s: float = 1800) -> None:
        """Until the current story waits for a person (or is finished) and all is printed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline:
            story = await self.current()
            if story is None or story.status not in WORK_STATES:
                await asyncio.sleep(0.3)  # its last events are on the stream by now
                await self.wait_rendered()
                story = await self.current()
                if story is None or story.status not in WORK_STATES:
                    return
            await asyncio.sleep(0.2)
        self.renderer.say("! gave up waiting")


async def run_console(settings: Settings, stdin: TextIO = sys.stdin,
                      out: TextIO = sys.stdout) -> int:
    rt = await Runtime.open(settings)
    name = getpass.getuser()
    user = UserRef(platform=Platform.console, user_id=name, display_name=name)
    chat = ChatRef(platform=Platform.console, chat_id=f"{socket.gethostname()}-{name}")
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
