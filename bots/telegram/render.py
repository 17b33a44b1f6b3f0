"""Neutral views as Bot API calls: HTML-escaped text, albums, inline keyboards, the video.

Every text goes out with ``parse_mode=HTML`` and every piece of user or model text is escaped, so
an idea full of ``<``, ``&`` or Markdown characters never causes a parse error. Lengths are cut
to Telegram's limits (4096 for a message, 1024 for a caption, albums of 2 to 10).
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bots.core.conversation import approve_text, shorten, status_lines
from bots.core.delivery import ChatGone
from bots.core.frames import numbered_sheet
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
from bots.telegram.flood import retry_after_s
from pipeline.models import ChatRef

log = logging.getLogger(__name__)

TEXT_MAX = 4096
CAPTION_MAX = 1024
ALBUM_MIN, ALBUM_MAX = 2, 10
T = TypeVar("T")


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def markup(rows: Keyboard) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.token) for b in row] for row in rows if row]
    )


def _gone(err: TelegramError) -> bool:
    text = str(err).lower()
    return isinstance(err, Forbidden) or "chat not found" in text or "not enough rights" in text \
        or "have no rights" in text


async def call(fn: Callable[[], Awaitable[T]], attempts: int = 8) -> T:
    """Run one Bot API call, waiting out 429s (never dropping the message)."""
    for attempt in range(attempts):
        try:
            return await fn()
        except RetryAfter as err:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(retry_after_s(err) + 0.1)
        except TelegramError as err:
            if _gone(err):
                raise ChatGone(type(err).__name__) from None
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- text of views


def text_html(view: Text, mention: tuple[str, str] | None = None) -> str:
    body = shorten_keep_lines(view.text, TEXT_MAX - len(view.title) - 60)
    out = ""
    if mention is not None:
        uid, name = mention
        out += f'<a href="tg://user?id={int(uid)}">{esc(shorten(name or "you", 40))}</a> '
    if view.error:
        out += "⚠️ "
    if view.title:
        out += f"<b>{esc(view.title)}</b>\n"
    return out + esc(body)


def shorten_keep_lines(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def status_html(view: StatusView) -> str:
    lines = [esc(x) for x in status_lines(view)]
    return f"<b>{esc(shorten(view.title, 200))}</b>\n" + "\n".join(lines)


def script_html(view: ScriptView) -> str:
    head = f"📜 <b>{esc(shorten(view.title, 200))}</b>"
    if view.logline:
        head += f"\n<i>{esc(shorten(view.logline, 400))}</i>"
    budget = TEXT_MAX - 700
    parts: list[str] = []
    if view.characters:
        per = max(60, budget // 3 // max(1, len(view.characters)))
        parts.append("<b>Cast</b>\n" + "\n".join(f"• {esc(shorten(c, per))}"
                                                 for c in view.characters))
    per = max(60, (budget * 2 // 3) // max(1, len(view.scenes)))
    parts.append("<b>Scenes</b>\n" + "\n".join(f"{n}. {esc(shorten(s, per))}"
                                               for n, s in enumerate(view.scenes, 1)))
    return head + "\n\n" + "\n\n".join(parts)


def scene_html(view: SceneView) -> str:
    """The scene's text; short enough for a photo's caption (1024 characters)."""
    out = f"🖼 <b>Scene {view.scene + 1} of {view.scenes}</b>\n{esc(shorten(view.narration, 600))}"
    if not view.count:
        out += "\n\n🔄 Drawing new frames…"
    elif view.picked:
        out += f"\n\n✓ Frame {view.picked} picked."
    else:
        out += (f"\n\nPick a frame (1–{view.count}), draw new ones, or edit the scene. "
                "Reactions work too: 👍 on a frame picks it, 👎 draws new ones.")
    return out


def approve_html(view: ApproveView) -> str:
    return approve_text(view, lambda t: f"<b>{esc(t)}</b>")


def view_html(view: AnyView) -> str:
    match view:
        case Text():
            return text_html(view)
        case StatusView():
            return status_html(view)
        case ScriptView():
            return script_html(view)
        case SceneView():
            return scene_html(view)
        case ApproveView():
            return approve_html(view)
    raise TypeError(f"no text form for {type(view).__name__}")


VIDEO_HINT = "Redo a scene's clip (🎬), change the voice or remix the story:"


def video_caption(view: VideoView) -> str:
    """Title, logline and what the buttons under the video do, within a caption's limit."""
    title = f"🎬 <b>{esc(shorten(view.title, 200))}</b>"
    room = CAPTION_MAX - len(shorten(view.title, 200)) - len(VIDEO_HINT) - 20
    body = f"\n{esc(shorten(view.caption, room))}" if view.caption else ""
    return title + body + (f"\n\n{esc(VIDEO_HINT)}" if view.buttons else "")


# --------------------------------------------------------------------------- the renderer


class TelegramRenderer:
    """Implements :class:`bots.core.delivery.Renderer` with a python-telegram-bot ``Bot``."""

    def __init__(self, bot: Bot, upload_limit_bytes: int = 50_000_000) -> None:
        self.bot = bot
        self.upload_limit = upload_limit_bytes
        # which frames each scene message shows, so a pick edits only its caption (after a
        # restart the picture is sent again once: harmless)
        self._frames: dict[tuple[str, int], str] = {}

    @staticmethod
    def _where(chat: ChatRef) -> dict[str, Any]:
        out: dict[str, Any] = {"chat_id": int(chat.chat_id)}
        if chat.thread_id:
            out["message_thread_id"] = int(chat.thread_id)
        return out

    async def _text(self, chat: ChatRef, text: str, rows: Keyboard, *,
                    reply_to: int | None = None, force_reply: bool = False,
                    selective: bool = False) -> Message:
        rm: Any = markup(rows)
        if force_reply:
            rm = ForceReply(selective=selective, input_field_placeholder="New scene text")
        kw = self._where(chat)
        if reply_to is not None:
            kw["reply_to_message_id"] = reply_to
            kw["allow_sending_without_reply"] = True
        return await call(lambda: self.bot.send_message(
            text=text, parse_mode=ParseMode.HTML, reply_markup=rm,
            disable_web_page_preview=True, **kw))

    async def reply(self, chat: ChatRef, view: AnyView, *, reply_to: int | None = None,
                    mention: tuple[str, str] | None = None) -> list[str]:
        """A plain reply to a person (not a recorded story message)."""
        if isinstance(view, Text):
            msg = await self._text(chat, text_html(view, mention if chat.is_group else None),
                                   view.buttons, reply_to=reply_to, force_reply=view.ask_reply,
                                   selective=chat.is_group)
            return [str(msg.message_id)]
        return await self.send(chat, view)

    async def send(self, chat: ChatRef, view: AnyView, once: str = "") -> list[str]:
        # The Bot API has no idempotency key: ``once`` cannot be honoured here.
        if isinstance(view, AlbumView):
            return await self._album(chat, view)
        if isinstance(view, VideoView):
            return await self._video(chat, view)
        if isinstance(view, SceneView) and view.images:
            return [str(await self._scene(chat, view))]
        if isinstance(view, Text) and view.ask_reply:
            return await self.reply(chat, view)
        msg = await self._text(chat, view_html(view), view.buttons)
        return [str(msg.message_id)]

    async def edit(self, chat: ChatRef, view: AnyView, refs: list[str]) -> bool:
        try:
            if isinstance(view, AlbumView):
                return True  # an album's slot names its generation: its frames never change
            if isinstance(view, VideoView):
                await call(lambda: self.bot.edit_message_reply_markup(
                    chat_id=int(chat.chat_id), message_id=int(refs[-1]),
                    reply_markup=markup(view.buttons)))
                return True
            if isinstance(view, SceneView):
                return await self._edit_scene(chat, view, int(refs[0]))
            await call(lambda: self.bot.edit_message_text(
                chat_id=int(chat.chat_id), message_id=int(refs[0]), text=view_html(view),
                parse_mode=ParseMode.HTML, reply_markup=markup(view.buttons),
                disable_web_page_preview=True))
            return True
        except BadRequest as err:
            text = str(err).lower()
            if "not modified" in text:
                return True
            if "not found" in text or "can't be edited" in text:
                return False
            raise

    async def edit_source(self, chat: ChatRef, message_id: int, view: Text) -> None:
        """Replace the text and buttons of the message whose button was pressed."""
        try:
            await call(lambda: self.bot.edit_message_text(
                chat_id=int(chat.chat_id), message_id=message_id, text=text_html(view),
                parse_mode=ParseMode.HTML, reply_markup=markup(view.buttons)))
        except BadRequest as err:
            if "not modified" not in str(err).lower():
                raise

    async def retire(self, chat: ChatRef, refs: list[str]) -> None:
        for ref in refs:
            try:
                await call(lambda r=ref: self.bot.edit_message_reply_markup(  # type: ignore[misc]
                    chat_id=int(chat.chat_id), message_id=int(r), reply_markup=None))
            except BadRequest:
                continue  # already without buttons, or deleted

    async def _album(self, chat: ChatRef, view: AlbumView) -> list[str]:
        blobs = [await asyncio.to_thread(Path(p).read_bytes) for p in view.images]
        where = self._where(chat)
        head = f"Scene {view.scene + 1} of {view.scenes}"
        if len(blobs) == 1:
            msg = await call(lambda: self.bot.send_photo(
                photo=blobs[0], filename="frame-1.png", caption=esc(f"{head} · frame 1"),
                parse_mode=ParseMode.HTML, **where))
            return [str(msg.message_id)]
        refs: list[str] = []
        for start in range(0, len(blobs), ALBUM_MAX):
            chunk = blobs[start : start + ALBUM_MAX]
            if len(chunk) < ALBUM_MIN:  # a lone leftover goes as a photo
                n = start + 1
                msg = await call(lambda c=chunk, n=n: self.bot.send_photo(  # type: ignore[misc]
                    photo=c[0], filename=f"frame-{n}.png", caption=esc(f"{head} · frame {n}"),
                    parse_mode=ParseMode.HTML, **where))
                refs.append(str(msg.message_id))
                continue
            media = [
                InputMediaPhoto(blob, filename=f"frame-{start + i + 1}.png",
                                caption=esc(f"{head} · frame {start + i + 1}"),
                                parse_mode=ParseMode.HTML)
                for i, blob in enumerate(chunk)
            ]
            msgs = await call(lambda m=media: self.bot.send_media_group(  # type: ignore[misc]
                media=m, **where))
            refs += [str(m.message_id) for m in msgs]
        return refs

    async def _scene(self, chat: ChatRef, view: SceneView) -> int:
        """A scene as one photo: its frames in one numbered picture, its text, its buttons."""
        photo = await numbered_sheet(view.images)
        msg = await call(lambda: self.bot.send_photo(
            photo=photo, filename=f"scene-{view.scene + 1}.jpg", caption=scene_html(view),
            parse_mode=ParseMode.HTML, reply_markup=markup(view.buttons), **self._where(chat)))
        self._frames[(chat.chat_id, msg.message_id)] = _frames_key(view)
        return msg.message_id

    async def _edit_scene(self, chat: ChatRef, view: SceneView, message_id: int) -> bool:
        """New frames replace the picture (``editMessageMedia``); a pick, or frames being
        drawn, changes only the caption and buttons."""
        where = (chat.chat_id, message_id)
        if view.images and self._frames.get(where) != _frames_key(view):
            photo = await numbered_sheet(view.images)
            media = InputMediaPhoto(photo, filename=f"scene-{view.scene + 1}.jpg",
                                    caption=scene_html(view), parse_mode=ParseMode.HTML)
            await call(lambda: self.bot.edit_message_media(
                media=media, chat_id=int(chat.chat_id), message_id=message_id,
                reply_markup=markup(view.buttons)))
            self._frames[where] = _frames_key(view)
            return True
        try:
            await call(lambda: self.bot.edit_message_caption(
                chat_id=int(chat.chat_id), message_id=message_id, caption=scene_html(view),
                parse_mode=ParseMode.HTML, reply_markup=markup(view.buttons)))
        except BadRequest as err:
            if "no caption" in str(err).lower() or "no media" in str(err).lower():
                return False  # shown as text before: post it anew as a photo
            raise
        return True

    async def _video(self, chat: ChatRef, view: VideoView) -> list[str]:
        """The video is one message, its buttons under it; a video over the upload limit is
        its storyboard with a note (and the link, when the media store has one)."""
        where = self._where(chat)
        size = view.size or (await asyncio.to_thread(Path(view.video).stat)).st_size
        if size > self.upload_limit:
            mb = size / 1_000_000
            note = (f"The video is {mb:.0f} MB, over this bot's {self.upload_limit / 1e6:.0f} MB "
                    "upload limit")
            note += f": {view.url}" if view.url else "; here is its storyboard."
            title = f"🎬 <b>{esc(shorten(view.title, 200))}</b>\n"
            sheet = await asyncio.to_thread(Path(view.sheet).read_bytes)
            smsg = await call(lambda: self.bot.send_photo(
                photo=sheet, filename="storyboard.png", caption=title + esc(note),
                parse_mode=ParseMode.HTML, reply_markup=markup(view.buttons), **where))
            return [str(smsg.message_id)]
        data = await asyncio.to_thread(Path(view.video).read_bytes)
        vmsg = await call(lambda: self.bot.send_video(
            video=data, filename="story.mp4", caption=video_caption(view),
            parse_mode=ParseMode.HTML, supports_streaming=True,
            duration=max(1, round(view.duration_s)), width=view.width, height=view.height,
            reply_markup=markup(view.buttons), read_timeout=120, write_timeout=120, **where))
        return [str(vmsg.message_id)]


def _frames_key(view: SceneView) -> str:
    return "|".join(str(p) for p in view.images)
