"""Neutral views as Discord messages: Markdown-escaped text, buttons, attachments, threads.

A story in a server channel lives in its own thread, opened by the first message the story posts;
the thread is remembered in Redis so a restarted bot keeps posting there. A deleted thread, or a
channel where the bot may not open threads or attach files, falls back to the channel or to plain
text, and says so. Each scene's storyboard is one message: its candidate frames as attachments,
the scene text, and its buttons (the album view posts the frames, the scene view adds the rest to
that same message). Message references are ``<channel id>/<message id>``.

Every post with files fits the server's upload limit as a whole request (:mod:`.uploads`): frames
shrink (JPEG, smaller) or go one per message, the video goes without its storyboard, re-encoded,
or as a link, and a 413 lowers the remembered limit and the message is composed again.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import discord

from bots.core.conversation import approve_text, shorten, status_lines
from bots.core.delivery import TTL_S, ChatGone, Delivery
from bots.core.views import (
    AlbumView,
    AnyView,
    ApproveView,
    Keyboard,
    SceneView,
    ScriptView,
    StatusView,
    Text,
    VideoView,
)
from bots.discord.uploads import (
    UploadLimit,
    UploadLimits,
    exact,
    fit_images,
    request_room,
    request_size,
    shrink_video,
)
from pipeline.models import ChatRef

log = logging.getLogger(__name__)

CONTENT_MAX = 2000
LABEL_MAX = 80
ROWS_MAX, ROW_MAX = 5, 5
BUTTON_PREFIX = "sl:"
MODAL_PREFIX = "slm:"
NO_MENTIONS = discord.AllowedMentions.none()
BUTTON_ID = re.compile(r"^sl:(?P<token>[A-Za-z0-9._-]{1,64})$")

# Discord's JSON error codes the renderer acts on
MISSING_PERMISSIONS, TOO_LARGE, THREAD_ARCHIVED = 50013, 40005, 50083
NO_FRAMES = "ℹ️ I can't attach the frames here (I need the Attach Files permission)."


def story_button(token: str, label: str, style: discord.ButtonStyle, row: int
                 ) -> discord.ui.Button[Any]:
    """A button whose custom_id (``sl:<token>``, at most 67 characters) carries a signed core
    token. Presses are routed by that template in :meth:`bots.discord.app.DiscordBot.on_interaction`
    and not through a stored view, so they work across restarts, and a press that matches nothing
    still gets an answer."""
    return discord.ui.Button(label=label[:LABEL_MAX], style=style, row=row,
                             custom_id=BUTTON_PREFIX + token)


# --------------------------------------------------------------------------- text of views


def esc(text: str) -> str:
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def cut(text: str, limit: int = CONTENT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def text_md(view: Text) -> str:
    out = "⚠️ " if view.error else ""
    if view.title:
        out += f"**{esc(view.title)}**\n"
    return cut(out + esc(view.text))


def status_md(view: StatusView) -> str:
    lines = [esc(x) for x in status_lines(view)]
    return cut(f"**{esc(shorten(view.title, 200))}**\n" + "\n".join(lines))


def script_md(view: ScriptView) -> str:
    head = f"📜 **{esc(shorten(view.title, 200))}**"
    if view.logline:
        head += f"\n*{esc(shorten(view.logline, 300))}*"
    budget = CONTENT_MAX - len(head) - 100
    parts: list[str] = []
    if view.characters:
        per = max(40, budget // 3 // max(1, len(view.characters)) - 6)
        parts.append("**Cast**\n" + "\n".join(f"• {esc(shorten(c, per))}"
                                              for c in view.characters))
    per = max(40, (budget * 2 // 3) // max(1, len(view.scenes)) - 8)
    parts.append("**Scenes**\n" + "\n".join(f"{n}. {esc(shorten(s, per))}"
                                            for n, s in enumerate(view.scenes, 1)))
    return cut(head + "\n\n" + "\n\n".join(parts))


def scene_md(view: SceneView) -> str:
    out = f"🖼 **Scene {view.scene + 1} of {view.scenes}**\n{esc(shorten(view.narration, 1500))}"
    if not view.count:
        out += "\n\n🔄 Drawing new frames…"
    elif view.picked:
        out += f"\n\n✓ Frame {view.picked} picked."
    else:
        keys = " ".join(f"{n}\ufe0f\u20e3" for n in range(1, min(view.count, 9) + 1))
        out += (f"\n\nPick a frame (1–{view.count}), draw new ones, or edit the scene. "
                f"Reactions work too: {keys} 🔄")
    return cut(out)


def approve_md(view: ApproveView) -> str:
    return approve_text(view, lambda t: f"**{t}**")


def view_md(view: AnyView) -> str:
    match view:
        case Text():
            return text_md(view)
        case StatusView():
            return status_md(view)
        case ScriptView():
            return script_md(view)
        case SceneView():
            return scene_md(view)
        case ApproveView():
            return approve_md(view)
        case AlbumView():
            return f"🖼 **Scene {view.scene + 1} of {view.scenes}**"
        case VideoView():
            return video_md(view)
    raise TypeError(f"no text form for {type(view).__name__}")


def video_md(view: VideoView, note: str = "") -> str:
    out = f"🎬 **{esc(shorten(view.title, 200))}**"
    if view.caption:
        out += f"\n{esc(shorten(view.caption, 600))}"
    if note:
        out += f"\n\n{note}"
    out += "\n\nRedo a scene's clip (🎬), change the voice or remix the story:"
    return cut(out)


def _style(label: str) -> discord.ButtonStyle:
    if label.startswith("✓ ") or label.startswith("✅"):
        return discord.ButtonStyle.success
    if label.startswith("🛑"):
        return discord.ButtonStyle.danger
    if label.startswith(("🔄", "✏️")):
        return discord.ButtonStyle.primary
    return discord.ButtonStyle.secondary


def fit_rows(rows: Keyboard) -> Keyboard:
    """At most 5 rows of at most 5 buttons: long rows are split, then the smallest neighbours
    merged until the rows fit; buttons past the 25th are dropped."""
    out: Keyboard = []
    for row in rows:
        out += [row[i : i + ROW_MAX] for i in range(0, len(row), ROW_MAX) if row[i : i + ROW_MAX]]
    while len(out) > ROWS_MAX:
        pairs = [(len(out[i]) + len(out[i + 1]), i) for i in range(len(out) - 1)
                 if len(out[i]) + len(out[i + 1]) <= ROW_MAX]
        if not pairs:
            flat = [b for row in out for b in row][: ROWS_MAX * ROW_MAX]
            return [flat[i : i + ROW_MAX] for i in range(0, len(flat), ROW_MAX)]
        _, i = min(pairs)
        out[i : i + 2] = [out[i] + out[i + 1]]
    return out


def make_view(rows: Keyboard) -> discord.ui.View | None:
    if not rows:
        return None
    view = discord.ui.View(timeout=None)
    for r, row in enumerate(fit_rows(rows)):
        for b in row:
            view.add_item(story_button(b.token, b.label, _style(b.label), row=r))
    view.stop()  # presses are routed by custom_id: nothing to keep in memory
    return view


def ref_of(msg: discord.Message | discord.PartialMessage) -> str:
    return f"{msg.channel.id}/{msg.id}"


def split_ref(ref: str) -> tuple[int, int]:
    channel, _, message = ref.partition("/")
    return int(channel), int(message)


async def read_bytes(path: Path) -> bytes:
    return await asyncio.to_thread(Path(path).read_bytes)


Composed = tuple[str, list[tuple[str, bytes]]]
# Makes a message's text and files for the bytes it may take (``None``: no files allowed here).
Compose = Callable[[int | None, UploadLimit], Awaitable[Composed]]


def _plain(content: str) -> Compose:
    async def compose(room: int | None, limit: UploadLimit) -> Composed:
        return content, []

    return compose


# --------------------------------------------------------------------------- the renderer


class DiscordRenderer:
    """Implements :class:`bots.core.delivery.Renderer` with a discord.py client."""

    def __init__(self, client: discord.Client, delivery: Delivery, limits: UploadLimits) -> None:
        self.client = client
        self.delivery = delivery
        self.redis: Any = delivery.redis
        self.limits = limits
        self.prefix = delivery.prefix
        # which frames each scene message shows, so a pick edits only its text and buttons
        # (after a restart the frames are attached again once: harmless)
        self._drawn: dict[str, str] = {}

    # ------------------------------------------------------------------ where a story lives

    def _thread_key(self, story_id: str) -> str:
        return f"{self.prefix}thread:{story_id}"

    async def thread_of(self, story_id: str) -> int | None:
        raw = await self.redis.get(self._thread_key(story_id))
        if raw is None:
            return None
        value = raw.decode() if isinstance(raw, bytes) else str(raw)
        return int(value) if value.isdigit() else None

    async def parent_of(self, thread_id: int) -> int | None:
        raw = await self.redis.get(f"{self.prefix}parent:{thread_id}")
        return int(raw) if raw is not None else None

    async def _where(self, chat: ChatRef, story_id: str, name: str) -> tuple[int, str]:
        """The channel to post a story's message in, and a note to add once (a fallback)."""
        channel = int(chat.chat_id)
        if chat.thread_id:
            thread = int(chat.thread_id)
            if await self.redis.exists(f"{self.prefix}lost:{thread}"):
                return channel, ""
            return thread, ""
        if not chat.is_group or not story_id:
            return channel, ""
        raw = await self.redis.get(self._thread_key(story_id))
        if raw is not None:
            value = raw.decode() if isinstance(raw, bytes) else str(raw)
            if not value.isdigit() or await self.redis.exists(f"{self.prefix}lost:{value}"):
                return channel, ""
            return int(value), ""
        return await self._open_thread(chat, story_id, name)

    async def _open_thread(self, chat: ChatRef, story_id: str, name: str) -> tuple[int, str]:
        channel = int(chat.chat_id)
        try:
            data = await self.client.http.start_thread_without_message(
                channel, name=cut(name or "A story", 100), auto_archive_duration=1440,
                type=discord.ChannelType.public_thread.value,
                reason="Storyloom: a thread for this story")
        except discord.Forbidden:
            await self.redis.set(self._thread_key(story_id), "none", ex=60 * 60 * 24 * 60)
            log.info("no permission to open threads", extra={"chat": chat.key})
            return channel, ("ℹ️ I can't open threads here (I need the Create Public Threads "
                             "permission), so this story runs in the channel.")
        except discord.NotFound as err:
            raise ChatGone("channel gone") from err
        except discord.HTTPException as err:
            if err.status in (400,):  # not a text channel (a forum, a voice chat): stay here
                await self.redis.set(self._thread_key(story_id), "none", ex=60 * 60 * 24 * 60)
                return channel, ""
            raise
        thread = int(data["id"])
        await self.redis.set(self._thread_key(story_id), str(thread), ex=60 * 60 * 24 * 60)
        await self.redis.set(f"{self.prefix}parent:{thread}", str(channel), ex=60 * 60 * 24 * 60)
        return thread, ""

    async def _lose(self, chat: ChatRef, channel: int) -> bool:
        """``channel`` is gone: if it was the story's thread, fall back to the parent."""
        if channel == int(chat.chat_id):
            return False
        await self.redis.set(f"{self.prefix}lost:{channel}", "1", ex=60 * 60 * 24 * 60)
        log.info("a story thread is gone; posting in its channel", extra={"chat": chat.key})
        return True

    # ------------------------------------------------------------------ posting

    async def _post(self, chat: ChatRef, story_id: str, name: str, content: str | Compose, *,
                    rows: Keyboard | None = None, files_note: str = "",
                    once: str = "") -> discord.Message:
        """Post in the story's place. ``content`` is the text, or a :data:`Compose` that makes
        the text and files fitting the upload limit: a 413 lowers the remembered limit and the
        message is composed again for it, so what is posted always fits."""
        compose = content if callable(content) else _plain(content)
        channel, note = await self._where(chat, story_id, name)
        attach = True
        for attempt in range(8):
            limit = await self.limits.get(chat)
            room = limit.size - len(note.encode()) - 2 if attach else None
            text, files = await compose(room, limit)
            body = f"{note}\n\n{text}" if note else text
            # A retry here changes the message (smaller files, another channel): another nonce.
            nonce = f"{once[:22]}-{attempt}" if once else None
            try:
                return await self._send(channel, cut(body), rows, files, nonce)
            except discord.Forbidden as err:
                if files and err.code == MISSING_PERMISSIONS:
                    attach = False
                    await self.redis.set(f"{self.prefix}noattach:{channel}", "1", ex=3600)
                    note = files_note or ("ℹ️ I can't attach files here (I need the Attach Files "
                                          "permission).")
                    continue
                if await self._lose(chat, channel):
                    channel, note = int(chat.chat_id), ""
                    continue
                raise ChatGone("forbidden") from err
            except discord.NotFound as err:
                if await self._lose(chat, channel):
                    channel = int(chat.chat_id)
                    note = "ℹ️ This story's thread was deleted, so it continues here."
                    continue
                raise ChatGone("not found") from err
            except discord.HTTPException as err:
                if not files or (err.status != 413 and err.code != TOO_LARGE):
                    raise
                sent = request_size(cut(body), files)
                lower = await self.limits.refused(chat, sent)
                log.info("an upload was refused as too large; trying smaller",
                         extra={"chat": chat.key, "sent": sent, "limit": lower.size})
        raise ChatGone("could not post")

    async def _send(self, channel: int, content: str, rows: Keyboard | None,
                    files: list[tuple[str, bytes]] | None, nonce: str | None = None
                    ) -> discord.Message:
        target = self.client.get_partial_messageable(channel)
        kw: dict[str, Any] = {"content": content, "allowed_mentions": NO_MENTIONS}
        if nonce:  # discord.py sends it with enforce_nonce: a repeat returns the first message
            kw["nonce"] = nonce
        view = make_view(rows or [])
        if view is not None:
            kw["view"] = view
        if files:
            kw["files"] = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
        return await target.send(**kw)

    async def send(self, chat: ChatRef, view: AnyView, once: str = "") -> list[str]:
        name = getattr(view, "title", "") or "A story"
        match view:
            case AlbumView():
                return await self._album(chat, view, name, once)
            case SceneView() if view.images:
                refs = await self._album(chat, view, name, once, view.buttons)
                self._drawn[refs[0]] = _frames_key(view)
                return refs
            case VideoView():
                return await self._video(chat, view, once)
        msg = await self._post(chat, view.story_id, name, view_md(view), rows=view.buttons,
                               once=once)
        return [ref_of(msg)]

    async def _album(self, chat: ChatRef, view: AlbumView | SceneView, name: str, once: str,
                     rows: Keyboard | None = None) -> list[str]:
        """A scene's frames in one message with its text and buttons, shrunk to fit; when even
        shrunk they do not fit together, one message per frame (each message's reference is
        its frame's number; the buttons go on the first)."""
        frames = [(f"frame-{n}.png", await read_bytes(p)) for n, p in enumerate(view.images, 1)]
        head = view_md(view)
        limit = await self.limits.get(chat)
        room = limit.size - request_room(head, len(frames)) - 1024
        alone = limit.size - 2 - request_room(f"{head} · frame 10 of 10", 1)
        if len(frames) == 1 or await fit_images(frames, room) is not None or \
                await fit_images(frames[:1], alone) is None:  # together, or none fits anyway
            parts = [(head, frames, once)]
        else:
            short = f"🖼 **Scene {view.scene + 1} of {view.scenes}**" \
                if isinstance(view, SceneView) else head
            parts = [(head if n == 1 and rows else f"{short} · frame {n} of {len(frames)}",
                      [frame], once and f"{once[:19]}f{n}") for n, frame in enumerate(frames, 1)]
        refs: list[str] = []
        for text, some, key in parts:
            notes: list[str] = []
            msg = await self._post(chat, view.story_id, name, self._frames(text, some, notes),
                                   rows=None if refs else rows, files_note=NO_FRAMES, once=key)
            refs.append(ref_of(msg))
            if notes and not msg.attachments:  # the scene's text replaces this one: keep it
                await self.redis.set(f"{self.prefix}bare:{refs[-1]}", notes[-1], ex=TTL_S)
        return refs

    def _frames(self, head: str, frames: list[tuple[str, bytes]],
                notes: list[str] | None = None) -> Compose:
        async def compose(room: int | None, limit: UploadLimit) -> Composed:
            if room is None:
                return head, []
            fitted = await fit_images(frames, room - request_room(head, len(frames)))
            if fitted is None:
                note = f"ℹ️ Even shrunk, the frames don't fit {limit.name()}, so they are " \
                       "not attached."
                if notes is not None:
                    notes.append(note)
                return f"{note}\n\n{head}", []
            return head, fitted

        return compose

    async def edit(self, chat: ChatRef, view: AnyView, refs: list[str]) -> bool:
        if isinstance(view, AlbumView):
            return True  # an album's slot names its generation: its frames never change
        channel, message = split_ref(refs[0])
        kw: dict[str, Any] = {"view": make_view(view.buttons)}
        redrawn = isinstance(view, SceneView) and view.images and \
            self._drawn.get(refs[0]) != _frames_key(view)
        if isinstance(view, SceneView) and redrawn:
            files = await self._refit(chat, view, refs)
            if files is None:
                return False  # post the new frames anew (one message per frame, or a note)
            if files:
                kw["attachments"] = [discord.File(io.BytesIO(data), filename=n)
                                     for n, data in files]
        if not isinstance(view, VideoView):
            kw["content"] = view_md(view)
        if isinstance(view, SceneView) and await self.redis.exists(
                f"{self.prefix}noattach:{channel}"):
            kw["content"] = cut(f"{NO_FRAMES}\n\n{kw['content']}")
        elif isinstance(view, SceneView):
            bare = await self.redis.get(f"{self.prefix}bare:{refs[0]}")
            if bare is not None:
                note = bare.decode() if isinstance(bare, bytes) else str(bare)
                kw["content"] = cut(f"{note}\n\n{kw['content']}")
        try:
            await self.client.get_partial_messageable(channel).get_partial_message(
                message).edit(**kw)
            if isinstance(view, SceneView) and view.images:
                self._drawn[refs[0]] = _frames_key(view)
            return True
        except (discord.NotFound, discord.Forbidden):
            return False  # posted anew (and a lost thread is noticed there)
        except discord.HTTPException as err:
            if err.code == THREAD_ARCHIVED:
                return False  # a new message reopens the thread; an edit cannot
            raise

    async def _refit(self, chat: ChatRef, view: SceneView, refs: list[str]
                     ) -> list[tuple[str, bytes]] | None:
        """New frames for a scene's one message, fitted to the upload limit; ``None`` when
        they need more than that one message."""
        channel, _ = split_ref(refs[0])
        if await self.redis.exists(f"{self.prefix}noattach:{channel}"):
            return []  # no frames here, only their note
        if len(refs) > 1:
            return None
        frames = [(f"frame-{n}.png", await read_bytes(p)) for n, p in enumerate(view.images, 1)]
        limit = await self.limits.get(chat)
        return await fit_images(frames, limit.size - request_room(view_md(view), len(frames))
                                - 1024)

    async def retire(self, chat: ChatRef, refs: list[str]) -> None:
        for ref in refs:
            channel, message = split_ref(ref)
            try:
                await self.client.get_partial_messageable(channel).get_partial_message(
                    message).edit(view=None)
            except (discord.NotFound, discord.Forbidden):
                continue  # deleted, or the thread is gone

    async def _video(self, chat: ChatRef, view: VideoView, once: str = "") -> list[str]:
        """The video with its storyboard when both fit one request; else the video alone and
        the storyboard after it; else the video re-encoded to fit; else a link. Whatever is not
        attached as it is says which limit refused it."""
        size = view.size or (await asyncio.to_thread(Path(view.video).stat)).st_size
        sheet = [("storyboard.png", await read_bytes(view.sheet))]
        head = video_md(view)
        video: list[tuple[str, bytes]] = []  # read once, when it is to be sent
        shrunk: dict[int, bytes | None] = {}  # re-encoded copies by the room they were made for

        async def compose(room: int | None, limit: UploadLimit) -> Composed:
            if room is None:
                return video_md(view, self._link_note(view, "I can't attach files here")), []
            if size + request_room(head, 2) <= room:
                if not video:
                    video.append(("story.mp4", await read_bytes(view.video)))
                if request_size(head, video + sheet) <= room:
                    return head, video + sheet
                return head, video  # the video alone: each scene's message shows its frames
            why = limit.over("The video", size)

            def smaller(n: int) -> str:
                more = f" The full video: {view.url}" if view.url else ""
                return video_md(view, f"ℹ️ {why}, so here it is re-encoded to {exact(n)}.{more}")

            target = room - request_room(smaller(size), 1)
            if target not in shrunk:
                shrunk[target] = await shrink_video(view.video, view.duration_s, target)
            small = shrunk[target]
            if small is not None:
                return smaller(len(small)), [("story.mp4", small)]
            text = video_md(view, self._link_note(view, why))
            fitted = await fit_images(sheet, room - request_room(text, 1))
            return text, fitted or []

        msg = await self._post(chat, view.story_id, view.title, compose, rows=view.buttons,
                               files_note=self._link_note(view, "I can't attach files here"),
                               once=once and f"{once[:19]}v")
        refs = [ref_of(msg)]
        if msg.channel.id != int(chat.chat_id) and not chat.thread_id:
            try:  # announce it in the channel the story came from
                parent = await self._send(int(chat.chat_id), cut(
                    f"🎬 **{esc(shorten(view.title, 200))}** is ready — watch it in "
                    f"<#{msg.channel.id}>."), None, None, once and f"{once[:19]}a")
                refs.append(ref_of(parent))
            except (discord.Forbidden, discord.NotFound):
                log.info("could not announce the video", extra={"chat": chat.key})
        return refs

    @staticmethod
    def _link_note(view: VideoView, why: str) -> str:
        if view.url:
            return f"ℹ️ {why}, so here is a link: {view.url}"
        return (f"ℹ️ {why}, and no public media URL is configured "
                "(STORYLOOM_MEDIA_PUBLIC_URL), so only the storyboard is here.")


def _frames_key(view: SceneView) -> str:
    return "|".join(str(p) for p in view.images)
