"""``storyloom make`` and ``storyloom regen``: a story from the terminal, with live progress.

The story goes through the real queue. When no worker is running (no heartbeat in Redis), one
runs inside this process until the story is finished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from pipeline.api import StoryAPI, story_options
from pipeline.errors import BadRequest, StoryloomError, UsageError
from pipeline.events import EventKind, StoryEvent
from pipeline.models import ChatRef, Platform, Status, Story, StoryOptions, UserRef
from pipeline.prompts import slug
from pipeline.queue import HEARTBEAT_S
from pipeline.runtime import Runtime
from pipeline.settings import get_settings
from pipeline.worker import BackgroundWorker, WorkerGuard

STEP_LABELS = {
    "script": "writing the script",
    "cast": "drawing the characters",
    "storyboard": "drawing the storyboard",
    "animate": "animating",
    "voice": "recording the narration",
    "assemble": "assembling the video",
}


class Session:
    """Follows one story's events on the CLI stream, printing progress and timing each step."""

    def __init__(self, rt: Runtime, api: StoryAPI, out: TextIO = sys.stdout,
                 out_dir: Path = Path("storyloom-out")) -> None:
        self.rt = rt
        self.out_dir = out_dir
        self.api = api
        self.out = out
        self.group = f"cli-{uuid.uuid4().hex[:10]}"
        self.step_started: dict[str, float] = {}
        self.step_times: dict[str, float] = {}
        self.current = ""
        self._next_check = 0.0
        self.guard = WorkerGuard(rt)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @property
    def worker(self) -> BackgroundWorker | None:
        return self.guard.worker

    async def open(self) -> None:
        await self.rt.outbox.ensure_group(Platform.cli, self.group, start="$")
        if await self.guard.check():
            self.say("(no worker running: working in this process)")
        self._next_check = time.monotonic() + HEARTBEAT_S

    async def _recheck_worker(self) -> None:
        """The worker we relied on may have been killed since: then work in this process."""
        if self.guard.in_process or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + HEARTBEAT_S
        if await self.guard.check():
            self.say("(the worker stopped: working in this process)")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.rt.redis.xgroup_destroy(f"sl:events:{Platform.cli.value}", self.group)
        await self.guard.stop()

    def _mark_step(self, step: str, at: float | None = None) -> None:
        """Time steps by when their events were made, not when this loop got to read them."""
        if not step or step == self.current:
            return
        now = time.time() if at is None else at
        if self.current:
            self.step_times[self.current] = self.step_times.get(self.current, 0.0) + (
                now - self.step_started[self.current]
            )
        self.current = step
        self.step_started[step] = now
        if step in STEP_LABELS:
            self.say(f"» {STEP_LABELS[step]}")

    def render(self, ev: StoryEvent) -> None:
        # the wait for picks is the person's time, not the storyboard's
        self._mark_step("pick" if ev.kind == EventKind.awaiting_approval else ev.step, ev.at)
        if ev.kind in (EventKind.progress, EventKind.candidates) and ev.total:
            bar = "█" * round(10 * ev.current / ev.total)
            self.say(f"  [{bar:<10}] {ev.current}/{ev.total} {ev.message}")
        elif ev.kind == EventKind.notice:
            self.say(f"  {ev.message}")

    async def follow(self, story_id: str, pick: str) -> Story:
        """Render events until the story is done, failed or cancelled; return it."""
        while True:
            if self.worker is not None and not self.worker.running:
                raise StoryloomError(f"the in-process worker stopped: {self.worker.failed}")
            await self._recheck_worker()
            events = await self.rt.outbox.read(Platform.cli, self.group, "make", block_ms=500)
            for entry_id, ev in events:
                await self.rt.outbox.ack(Platform.cli, self.group, entry_id)
                if ev.story_id != story_id:
                    continue
                self.render(ev)
                if ev.kind == EventKind.awaiting_approval and pick == "ask":
                    story = await self.api.get(story_id)
                    if story.status == Status.awaiting_approval:
                        await self.ask(story)
                if ev.kind in (EventKind.video, EventKind.failed, EventKind.cancelled):
                    self._mark_step("end", ev.at)
                    return await self.api.get(story_id)

    async def ask(self, story: Story) -> None:
        """Show each scene's candidates (files and a numbered sheet) and ask for a pick."""
        from pipeline.render.assemble import contact_sheet

        self.say(f"\nStoryboard of “{story.title}”: pick a frame per scene.")
        sheets = self.out_dir / f"{story.id}-candidates"
        sheets.mkdir(parents=True, exist_ok=True)
        for scene in story.scenes:
            self.say(f"\nScene {scene.index + 1}: {scene.narration}")
            paths = [await self.rt.media.path(c.media) for c in scene.candidates]
            for n, path in enumerate(paths, 1):
                self.say(f"  [{n}] {path}")
            sheet = await asyncio.to_thread(
                contact_sheet, paths, [f"frame {n}" for n in range(1, len(paths) + 1)],
                f"Scene {scene.index + 1}", sheets / f"scene-{scene.index + 1}.png",
            )
            self.say(f"  side by side: {sheet}")
            answer = await _prompt(
                f"  pick 1-{len(scene.candidates)}, r = draw new ones [1]: "
            )
            if answer.lower().startswith("r"):
                await self.api.new_candidates(story.id, scene.index)
                self.say("  drawing new frames for this scene…")
                return
            try:
                choice = min(max(int(answer or "1"), 1), len(scene.candidates))
            except ValueError:
                choice = 1
            await self.api.pick(story.id, scene.index, scene.candidates[choice - 1].id)
        await self.api.approve(story.id)

    def timing_report(self) -> str:
        parts = [f"{k} {v:.1f}s" for k, v in self.step_times.items() if k not in ("end", "pick")]
        return "step times: " + ", ".join(parts)


async def _prompt(text: str) -> str:
    def read() -> str:
        print(text, end="", flush=True)
        line = sys.stdin.readline()
        return line.strip()

    return await asyncio.to_thread(read)


async def _deliver(rt: Runtime, story: Story, out: Path | None) -> tuple[Path, Path]:
    assert story.video is not None
    if out is None:
        out = Path("storyloom-out") / f"{slug(story.title)}-{story.id}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    video_src = await rt.media.path(story.video.media)
    sheet_src = await rt.media.path(story.video.contact_sheet)
    sheet = out.with_suffix(".png")
    await asyncio.to_thread(shutil.copyfile, video_src, out)
    await asyncio.to_thread(shutil.copyfile, sheet_src, sheet)
    return out, sheet


FLAGS = {"size_cap_bytes": "--size-cap-mb", "style": "--style", "scenes": "--scenes",
         "aspect": "--aspect", "resolution": "--resolution", "pick": "--pick"}


def _options_from(settings: Any, args: argparse.Namespace) -> StoryOptions:
    """The story's options from the command line, validated (:class:`UsageError` names the
    flag) before anything is created or paid for."""
    cap = getattr(args, "size_cap_mb", None)
    try:
        return story_options(
            settings,
            scenes=args.scenes,
            aspect=args.aspect,
            resolution=args.resolution,
            style=args.style,
            pick=args.pick,
            music=False if args.no_music else None,
            size_cap_bytes=round(cap * 1_000_000) if cap is not None else None,
        )
    except BadRequest as err:
        text = str(err).removeprefix("option ")
        name, _, why = text.partition(": ")
        if name == "size_cap_bytes":
            raise UsageError(f"--size-cap-mb {cap:g}: the size cap must be at least 1 MB") from None
        raise UsageError(f"{FLAGS.get(name, name)}: {why}") from None


def check_text(what: str, value: str | None) -> None:
    """A command-line argument the terminal sent in another encoding than UTF-8 (Python keeps
    its bytes as surrogates, which no JSON document or chat can hold)."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8 text; check the terminal's encoding "
                         "(e.g. LANG=C.UTF-8)") from None


def check_out(out: Path | None) -> None:
    """Fail now, not after the story is paid for, when the video cannot be written to ``out``."""
    if out is None:
        return
    check_text("--out", str(out))
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder; name the MP4 file to write")
    folder = out.parent
    while not folder.exists():
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"--out {out}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {folder} is not writable")


Begin = Callable[[StoryAPI, Session], Awaitable[tuple[Story, str, str]]]


async def _in_session(out: Path | None, begin: Begin) -> int:
    """Open the runtime and a session, start (or resume) a story with ``begin``, follow it to
    the end and deliver the files. ``begin`` returns the story, a line to show, and the pick
    mode to follow it with."""
    rt = await Runtime.open(get_settings())
    api = StoryAPI(rt)
    session = Session(rt, api, out_dir=out.parent if out else Path("storyloom-out"))
    started = time.monotonic()
    story: Story | None = None
    try:
        await session.open()
        story, line, pick = await begin(api, session)
        session.say(line)
        story = await session.follow(story.id, pick)
        return await _finish(rt, session, story, out, started)
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task
        if story is not None:
            await _interrupted(rt, session, story.id)
        raise
    finally:
        await session.close()
        await rt.close()


async def _interrupted(rt: Runtime, session: Session, story_id: str) -> None:
    """Ctrl-C while following a story. Worked on in this process, it stops here and ends
    failed, so ``storyloom retry`` resumes it where it stopped (nothing made is made again);
    worked on by a worker elsewhere, it goes on there."""
    from pipeline.errors import Interrupted
    from pipeline.queue import abort_story_job, status_step
    from pipeline.steps import on_failure

    if not session.guard.in_process:
        session.say(f"\nstory {story_id} goes on in the worker: storyloom status {story_id}")
        return
    await session.guard.stop()
    story = await rt.store.get(story_id)
    if story.finished or story.status == Status.awaiting_approval:
        return
    await abort_story_job(rt.redis, story_id)
    await on_failure(rt, story_id, status_step(story.status.value), Interrupted())
    session.say(f"\nstory {story_id} stopped; resume it with: storyloom retry {story_id}")


async def make_story(args: argparse.Namespace) -> int:
    check_text("the idea", args.idea)
    check_text("--style", args.style)
    check_out(args.out)
    options = _options_from(get_settings(), args)
    from pipeline.language import warm

    # The language detector loads while the store and the worker start: not after them.
    warming = asyncio.create_task(asyncio.to_thread(warm))

    async def begin(api: StoryAPI, session: Session) -> tuple[Story, str, str]:
        await warming
        owner = UserRef(platform=Platform.cli, user_id=getpass.getuser())
        chat = ChatRef(platform=Platform.cli, chat_id=socket.gethostname())
        story = await api.start_story(args.idea, owner, chat, options)
        line = (f"story {story.id}: {options.scenes} scenes, {options.aspect}, "
                f"{options.resolution} (redis {api.rt.target.shown})")
        return story, line, str(args.pick)

    return await _in_session(args.out, begin)


async def retry_story(args: argparse.Namespace) -> int:
    check_text("the story id", args.story_id)
    check_out(args.out)

    async def begin(api: StoryAPI, session: Session) -> tuple[Story, str, str]:
        story = await api.retry(args.story_id)
        return story, f"story {story.id}: resuming at {story.status.value}", story.options.pick

    return await _in_session(args.out, begin)


async def regen_story(args: argparse.Namespace) -> int:
    check_text("the story id", args.story_id)
    check_out(args.out)

    async def begin(api: StoryAPI, session: Session) -> tuple[Story, str, str]:
        story = await api.regenerate(args.story_id, args.scene - 1, args.what)
        return story, f"story {story.id}: redoing the {args.what} of scene {args.scene}", "auto"

    return await _in_session(args.out, begin)


async def _finish(rt: Runtime, session: Session, story: Story, out: Path | None,
                  started: float) -> int:
    if story.status != Status.done:
        session.say(f"✗ story {story.id} {story.status.value}: {story.error or ''}".rstrip(": "))
        if story.status == Status.failed:
            session.say(f"  resume it with: storyloom retry {story.id}")
            session.say(f"  details: {rt.settings.log_file}")
        return 1
    video, sheet = await _deliver(rt, story, out)
    session.say(f"\n✓ “{story.title}” ({story.video.duration_s:.1f} s) in "
                f"{time.monotonic() - started:.1f} s" if story.video else "")
    session.say(session.timing_report())
    session.say(f"video:       {video}")
    session.say(f"storyboard:  {sheet}")
    session.say(f"story id:    {story.id} (storyloom regen {story.id} --scene 2 --clip)")
    return 0
