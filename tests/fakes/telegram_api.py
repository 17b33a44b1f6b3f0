"""A fake Telegram Bot API server: real HTTP, the documented request and response shapes.

The real python-telegram-bot ``Application`` talks to it. Tests inject updates (``say``,
``press``, ``react``, ``kick``...) which ``getUpdates`` hands out; every call is recorded; the
server keeps each chat's messages (with their edits) so a test can assert what a person would see.
Telegram's limits are enforced the way Telegram answers them: ``callback_data`` of 1 to 64
bytes, text up to 4096 and captions up to 1024 characters after entity parsing, albums of 2 to 10
photos of up to 10 MB, 50 MB a request, HTML that must parse, a reply to a missing message,
flood limits per chat answered with 429 and ``retry_after`` (a chat in a flood wait refuses only
that chat; ``documented()`` gives Telegram's own limits), and a button press answered more than
15 s later refused as too old. The simulated client splits a text over 4096 characters as real
clients do (``say_long``) and sends captioned photos with their command entities.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.base import RECORDED, FakeService

TOKEN = "123456:TEST-fake-token-never-real"
BOT_ID = 123456
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Storyloom", "username": "storyloom_bot",
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False}
JSON_FIELDS = {"reply_markup", "media", "allowed_updates", "commands", "reaction", "entities",
               "caption_entities", "reply_parameters", "link_preview_options", "scope"}
INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "user_id", "duration",
              "width", "height", "message_thread_id", "reply_to_message_id"}
TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span",
        "tg-spoiler", "blockquote", "tg-emoji"}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


# Some of the emoji Telegram's ReactionTypeEmoji allows; a user cannot react with any other
# (no 🔄, no keycaps), so the fake refuses to send those.
STANDARD_REACTIONS = frozenset({"👍", "👎", "❤", "🔥", "🥰", "👏", "😁", "🤔", "🎉", "🤩", "🙏",
                                "👌", "😍", "🐳", "💯", "⚡", "🏆", "👀", "🤝", "✍", "🆒"})


class ApiError(Exception):
    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(raw: str) -> str:
    """The visible text of a Telegram HTML message, or ApiError exactly as Telegram words it."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "<":
            m = _TAG.match(raw, i)
            if m is None:
                raise ApiError(400, "Bad Request: can't parse entities: Unexpected end tag at byte "
                               f"offset {len(raw[:i].encode())}")
            closing, name = m.group(1), m.group(2).lower()
            if name not in TAGS:
                raise ApiError(400, f'Bad Request: can\'t parse entities: Unsupported start tag '
                               f'"{name}" at byte offset {len(raw[:i].encode())}')
            if closing:
                if not stack or stack[-1] != name:
                    raise ApiError(400, "Bad Request: can't parse entities: Can't find end tag "
                                   f'corresponding to start tag "{stack[-1] if stack else name}"')
                stack.pop()
            else:
                stack.append(name)
            i = m.end()
        elif ch == ">":
            raise ApiError(400, "Bad Request: can't parse entities: Unmatched end of tag at byte "
                           f"offset {len(raw[:i].encode())}")
        elif ch == "&":
            m = _ENTITY.match(raw, i)
            if m is None:
                raise ApiError(400, "Bad Request: can't parse entities: Character '&' is reserved "
                               f"at byte offset {len(raw[:i].encode())}")
            out.append(html.unescape(m.group(0)))
            i = m.end()
        else:
            out.append(ch)
            i += 1
    if stack:
        raise ApiError(400, "Bad Request: can't parse entities: Can't find end tag corresponding "
                       f'to start tag "{stack[-1]}"')
    return "".join(out)


@dataclass
class Msg:
    chat_id: int
    message_id: int
    kind: str  # text, photo, video, user
    text: str = ""  # visible text (or caption)
    html: str = ""  # as sent
    buttons: list[list[dict[str, Any]]] = field(default_factory=list)
    force_reply: bool = False
    media_group_id: str | None = None
    file_size: int = 0
    reply_to: int | None = None
    edits: int = 0
    media_edits: int = 0
    edited_at: list[float] = field(default_factory=list)  # monotonic times of its text edits
    deleted: bool = False
    from_bot: bool = True
    sender: dict[str, Any] = field(default_factory=lambda: dict(BOT_USER))

    def button_labels(self) -> list[str]:
        return [b["text"] for row in self.buttons for b in row]

    def button(self, label_part: str) -> dict[str, Any]:
        for row in self.buttons:
            for b in row:
                if label_part in b["text"]:
                    return b
        raise AssertionError(f"no button with {label_part!r} in {self.button_labels()}")


@dataclass(frozen=True)
class Flood:
    """One kind of chat's flood limits: ``per_s`` requests a second (``burst`` at once), and in
    a group at most ``per_min`` messages a ``minute_s`` (an album counts each of its items)."""

    per_s: float
    burst: float = 1.0
    per_min: int = 0
    minute_s: float = 60.0


# Telegram's documented limits: about one message a second in a chat, 20 a minute in a group,
# 30 a second overall. ``scale`` < 1 makes time run faster (the same limits, sooner).
def documented(scale: float = 1.0) -> dict[str, Flood]:
    return {"private": Flood(per_s=1 / scale),
            "group": Flood(per_s=1 / scale, per_min=20, minute_s=60 * scale),
            "overall": Flood(per_s=30 / scale, burst=30)}


LENIENT = {"private": Flood(per_s=20, burst=20), "group": Flood(per_s=10, burst=20),
           "overall": Flood(per_s=300, burst=300)}
CALLBACK_TTL_S = 15.0  # Telegram refuses an answer to a button press older than this
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


class FakeTelegram(FakeService):
    def __init__(self, *, limits: dict[str, Flood] | None = None) -> None:
        self.updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self.messages: dict[tuple[int, int], Msg] = {}
        self._msg_ids: dict[int, itertools.count[int]] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.admins: dict[int, set[int]] = {}
        self.kicked: set[int] = set()
        self.limits = dict(limits or LENIENT)
        self._buckets: dict[int, tuple[float, float]] = {}
        self._minute: dict[int, list[float]] = {}
        self._flood_until: dict[int, float] = {}
        self.floods: list[tuple[int, str]] = []  # (chat, method) answered with 429
        self.pressed: dict[str, float] = {}  # callback query id -> when it was pressed
        self.answered_after: dict[str, float] = {}  # callback query id -> seconds to answer
        self.errors: list[tuple[str, str]] = []  # (method, description) of every 4xx answered
        self.answers: list[dict[str, Any]] = []  # answerCallbackQuery calls
        self.commands: list[dict[str, Any]] = []
        self.allowed_updates: list[str] | None = None
        self.media_groups = itertools.count(1000)
        self.callback_ids = itertools.count(1)
        self.uploads: dict[str, int] = {}
        super().__init__()

    # ------------------------------------------------------------------ test side

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/bot{token}/{method}", self.handle)

    @property
    def base_url(self) -> str:
        return self.url

    def private(self, user_id: int, name: str = "Alice") -> dict[str, Any]:
        chat = {"id": user_id, "type": "private", "first_name": name}
        self.chats[user_id] = chat
        return chat

    def group(self, chat_id: int, title: str = "Story club", admins: set[int] | None = None
              ) -> dict[str, Any]:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        self.chats[chat_id] = chat
        self.admins[chat_id] = set(admins or ())
        return chat

    @staticmethod
    def user(user_id: int, name: str) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": name}

    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        update["update_id"] = next(self._update_ids)
        self.updates.append(update)
        self._new_update.set()
        return update

    def _new_id(self, chat_id: int) -> int:
        return next(self._msg_ids.setdefault(chat_id, itertools.count(1)))

    def say(self, chat: dict[str, Any], user: dict[str, Any], text: str, *,
            reply_to: int | None = None, **extra: Any) -> int:
        """A person writes ``text`` (commands and mentions get their entities)."""
        assert utf16_len(text) <= 4096, "a Telegram client splits a longer text: use say_long"
        mid = self._new_id(chat["id"])
        message: dict[str, Any] = {"message_id": mid, "date": int(time.time()), "chat": chat,
                                   "from": user, **extra}
        if text:
            message["text"] = text
            entities = self._entities(text)
            if entities:
                message["entities"] = entities
        if reply_to is not None:
            target = self.messages.get((chat["id"], reply_to))
            replied: dict[str, Any] = {"message_id": reply_to, "date": int(time.time()),
                                       "chat": chat}
            if target is not None and target.from_bot:
                # what a client sees of the message it answers: its sender, text and inline
                # keyboard (a ForceReply is never part of a delivered message)
                replied["from"] = BOT_USER
                replied["text"] = target.text or "…"
                if target.buttons:
                    replied["reply_markup"] = {"inline_keyboard": target.buttons}
            elif target is not None:
                replied["from"] = target.sender
                replied["text"] = target.text or "…"
            message["reply_to_message"] = replied
        self.messages[(chat["id"], mid)] = Msg(chat["id"], mid, "user",
                                               text=text or extra.get("caption", ""),
                                               from_bot=False, reply_to=reply_to, sender=user)
        self._push({"message": message})
        return mid

    def say_long(self, chat: dict[str, Any], user: dict[str, Any], text: str) -> list[int]:
        """A person sends a text over 4096 characters: the client sends it as consecutive
        messages of at most 4096 (UTF-16 units each), cut at the last space or line break
        before the limit (which is not sent), else hard at the limit."""
        ids = []
        while text:
            cut = len(text)
            if utf16_len(text) > 4096:
                cut = 4096
                while utf16_len(text[:cut]) > 4096:
                    cut -= 1
                space = max(text.rfind(" ", 0, cut + 1), text.rfind("\n", 0, cut + 1))
                part, text = (text[:space], text[space + 1 :]) if space > 0 else \
                    (text[:cut], text[cut:])
            else:
                part, text = text, ""
            ids.append(self.say(chat, user, part))
        return ids

    @staticmethod
    def _entities(text: str) -> list[dict[str, Any]]:
        entities = []
        command = len(text.split()[0]) if text.startswith("/") else 0
        if command:
            entities.append({"type": "bot_command", "offset": 0,
                             "length": utf16_len(text[:command])})
        for m in re.finditer(r"@[A-Za-z0-9_]{5,}", text):
            if m.start() < command:
                continue  # the @bot of /command@bot is part of the command
            entities.append({"type": "mention", "offset": utf16_len(text[: m.start()]),
                             "length": utf16_len(m.group(0))})
        return entities

    def send_sticker(self, chat: dict[str, Any], user: dict[str, Any]) -> int:
        sticker = {"file_id": "stk1", "file_unique_id": "u1", "type": "regular", "width": 512,
                   "height": 512, "is_animated": False, "is_video": False, "emoji": "🐳"}
        return self.say(chat, user, "", sticker=sticker)

    def send_photo(self, chat: dict[str, Any], user: dict[str, Any], caption: str = "") -> int:
        """A person sends a photo (Telegram delivers it in several sizes, largest last), with a
        caption of up to 1024 characters whose commands and mentions get entities."""
        assert utf16_len(caption) <= 1024, "a Telegram client cannot send a longer caption"
        photo = [{"file_id": "ph1-small", "file_unique_id": "p1", "width": 90, "height": 90},
                 {"file_id": "ph1-large", "file_unique_id": "p1", "width": 1280,
                  "height": 1280}]
        extra: dict[str, Any] = {"photo": photo}
        if caption:
            extra["caption"] = caption
            entities = self._entities(caption)
            if entities:
                extra["caption_entities"] = entities
        return self.say(chat, user, "", **extra)

    def press(self, chat: dict[str, Any], user: dict[str, Any], message_id: int,
              data: str) -> str:
        """A person presses a button (``data`` as the client would send it)."""
        target = self.messages[(chat["id"], message_id)]
        qid = f"cb{next(self.callback_ids)}"
        self.pressed[qid] = time.monotonic()
        msg = {"message_id": message_id, "date": int(time.time()), "chat": chat,
               "from": BOT_USER, "text": target.text or "…"}
        self._push({"callback_query": {"id": qid, "from": user, "chat_instance": "ci1",
                                       "message": msg, "data": data}})
        return qid

    def react(self, chat: dict[str, Any], user: dict[str, Any], message_id: int,
              emoji: str) -> None:
        assert emoji in STANDARD_REACTIONS, f"a Telegram client cannot react with {emoji}"
        self._push({"message_reaction": {
            "chat": chat, "message_id": message_id, "user": user, "date": int(time.time()),
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": emoji}]}})

    def kick(self, chat: dict[str, Any], by: dict[str, Any]) -> None:
        """The bot is removed from the group: later sends there answer 403."""
        self.kicked.add(chat["id"])
        self._push({"my_chat_member": {
            "chat": chat, "from": by, "date": int(time.time()),
            "old_chat_member": {"status": "member", "user": BOT_USER},
            "new_chat_member": {"status": "kicked", "user": BOT_USER, "until_date": 0}}})

    def log(self, chat_id: int, *, bot_only: bool = True) -> list[Msg]:
        out = [m for (c, _), m in sorted(self.messages.items()) if c == chat_id and not m.deleted]
        return [m for m in out if m.from_bot] if bot_only else out

    def find(self, chat_id: int, needle: str) -> list[Msg]:
        return [m for m in self.log(chat_id) if needle in m.text]

    def one(self, chat_id: int, needle: str) -> Msg:
        found = self.find(chat_id, needle)
        assert len(found) == 1, f"{len(found)} messages with {needle!r}: {self.dump(chat_id)}"
        return found[0]

    def dump(self, chat_id: int) -> str:
        return "\n".join(f"#{m.message_id} [{m.kind}] {m.text[:80]!r} {m.button_labels()}"
                         for m in self.log(chat_id, bot_only=False))

    def answer_for(self, qid: str) -> dict[str, Any] | None:
        return next((a for a in self.answers if a.get("callback_query_id") == qid), None)

    async def wait_for(self, pred: Any, within: float = 15.0, what: str = "",
                       chat_id: int | None = None) -> Any:
        deadline = time.monotonic() + within
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                extra = f"\n{self.dump(chat_id)}" if chat_id is not None else ""
                raise AssertionError(f"timed out waiting for {what or pred}{extra}")
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ server side

    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params, files = self._params(request)
        fn = getattr(self, "m_" + method, None)
        if fn is None:
            return web.json_response({"ok": False, "error_code": 404,
                                      "description": "Not Found: method not found"}, status=404)
        try:
            result = await fn(params, files)
        except ApiError as err:
            self.errors.append((method, err.description))
            body: dict[str, Any] = {"ok": False, "error_code": err.code,
                                    "description": err.description}
            if err.parameters:
                body["parameters"] = err.parameters
            return web.json_response(body, status=err.code)
        return web.json_response({"ok": True, "result": result})

    def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        rec = request[RECORDED]
        raw: dict[str, str] = dict(rec.form) if rec.form else dict(
            parse_qsl(rec.body.decode(), keep_blank_values=True)) if rec.body else {}
        if rec.json is not None and isinstance(rec.json, dict):
            raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in rec.json.items()}
        params: dict[str, Any] = {}
        for k, v in raw.items():
            if k in JSON_FIELDS:
                params[k] = json.loads(v)
            elif k in INT_FIELDS:
                params[k] = int(v)
            elif v in ("true", "false"):
                params[k] = v == "true"
            else:
                params[k] = v
        files = {name: data for name, _fn, data in rec.files}
        return params, files

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id not in self.chats:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.kicked:
            raise ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
        return self.chats[chat_id]

    def flood_wait(self, chat_id: int, seconds: int) -> None:
        """Put a chat in a flood wait: every message into it is refused for ``seconds``."""
        self._flood_until[chat_id] = time.monotonic() + seconds

    def _flood(self, chat: dict[str, Any], method: str, weight: int = 1) -> None:
        """Telegram's flood control: a chat over its limits is in a flood wait, and every
        message into it is refused with the seconds left; other chats are not affected. The
        overall limit refuses any chat while it lasts."""
        cid, now = chat["id"], time.monotonic()
        until = self._flood_until.get(cid, 0.0)
        if now < until:
            self._refuse(cid, method, until - now)
        lim = self.limits["private" if chat["type"] == "private" else "group"]
        wait = 0.0
        level, at = self._buckets.get(cid, (0.0, now))
        level = max(0.0, level - (now - at) * lim.per_s)
        if level + 1 > lim.burst + 1e-6:
            wait = (level + 1 - lim.burst) / lim.per_s
        recent = [t for t in self._minute.get(cid, []) if t > now - lim.minute_s]
        if lim.per_min and len(recent) + weight > lim.per_min:
            wait = max(wait, recent[len(recent) + weight - lim.per_min - 1] + lim.minute_s - now)
        overall = self.limits["overall"]
        olevel, oat = self._buckets.get(0, (0.0, now))
        olevel = max(0.0, olevel - (now - oat) * overall.per_s)
        if olevel + weight > overall.burst + 1e-6:
            self._refuse(cid, method, (olevel + weight - overall.burst) / overall.per_s)
        if wait > 0:
            self._flood_until[cid] = now + math.ceil(wait)
            self._refuse(cid, method, math.ceil(wait))
        self._buckets[cid] = (level + 1, now)
        self._buckets[0] = (olevel + weight, now)
        self._minute[cid] = recent + [now] * weight

    def _refuse(self, chat_id: int, method: str, seconds: float) -> None:
        self.floods.append((chat_id, method))
        wait = max(1, math.ceil(seconds))
        raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    @staticmethod
    def _text(raw: str, parse_mode: str | None, limit: int, what: str) -> str:
        visible = parse_html(raw) if parse_mode == "HTML" else raw
        if parse_mode not in (None, "HTML"):
            raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode}")
        if utf16_len(visible) > limit:
            raise ApiError(400, f"Bad Request: {what} is too long")
        return visible

    @staticmethod
    def _keyboard(params: dict[str, Any]) -> tuple[list[list[dict[str, Any]]], bool]:
        rm = params.get("reply_markup")
        if not rm:
            return [], False
        if "force_reply" in rm:
            return [], True
        rows = rm.get("inline_keyboard")
        if rows is None:
            raise ApiError(400, "Bad Request: unsupported reply markup")
        for row in rows:
            for b in row:
                data = b.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if not b.get("text"):
                    raise ApiError(400, "Bad Request: text buttons are unallowed")
        return rows, False

    def _reply_target(self, chat: dict[str, Any], p: dict[str, Any]) -> int | None:
        """The message a send replies to; a missing one is refused unless the bot allowed
        sending without it (then the message goes out as no reply)."""
        rp = p.get("reply_parameters") or {}
        mid = rp.get("message_id", p.get("reply_to_message_id"))
        if mid is None:
            return None
        target = self.messages.get((chat["id"], int(mid)))
        if target is not None and not target.deleted:
            return int(mid)
        if rp.get("allow_sending_without_reply") or p.get("allow_sending_without_reply"):
            return None
        raise ApiError(400, "Bad Request: message to be replied not found")

    def _store(self, chat: dict[str, Any], kind: str, **fields: Any) -> Msg:
        mid = self._new_id(chat["id"])
        msg = Msg(chat["id"], mid, kind, **fields)
        self.messages[(chat["id"], mid)] = msg
        return msg

    def _json(self, msg: Msg) -> dict[str, Any]:
        out: dict[str, Any] = {"message_id": msg.message_id, "date": int(time.time()),
                               "chat": self.chats[msg.chat_id], "from": BOT_USER}
        if msg.kind == "text":
            out["text"] = msg.text
        elif msg.kind == "photo":
            out["photo"] = [{"file_id": f"p{msg.message_id}", "file_unique_id": "u",
                             "width": 320, "height": 568}]
        elif msg.kind == "video":
            out["video"] = {"file_id": f"v{msg.message_id}", "file_unique_id": "v",
                            "width": 720, "height": 1280, "duration": 10,
                            "file_size": msg.file_size}
        if msg.kind != "text" and msg.text:
            out["caption"] = msg.text
        if msg.media_group_id:
            out["media_group_id"] = msg.media_group_id
        if msg.buttons:
            out["reply_markup"] = {"inline_keyboard": msg.buttons}
        return out

    def _target(self, params: dict[str, Any]) -> Msg:
        self._chat(params)
        msg = self.messages.get((params.get("chat_id", 0), params.get("message_id", 0)))
        if msg is None or msg.deleted or not msg.from_bot:
            raise ApiError(400, "Bad Request: message to edit not found")
        return msg

    # ------------------------------------------------------------------ methods

    async def m_getMe(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        return BOT_USER

    async def m_deleteWebhook(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        return True

    async def m_setWebhook(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        return True

    async def m_setMyCommands(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        for c in p.get("commands", []):
            if not re.fullmatch(r"[a-z0-9_]{1,32}", c["command"]) or \
                    not 1 <= len(c["description"]) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands = p.get("commands", [])
        return True

    async def m_getUpdates(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        offset = p.get("offset", 0)
        if "allowed_updates" in p:
            self.allowed_updates = p["allowed_updates"]
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + min(float(p.get("timeout", 0)), 1.0)
        while not self.updates and time.monotonic() < deadline:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        allowed = self.allowed_updates
        out = []
        for u in self.updates[: p.get("limit", 100)]:
            kind = next(k for k in u if k != "update_id")
            if allowed and kind not in allowed:
                continue  # Telegram never delivers kinds the bot did not ask for
            out.append(u)
        return out

    async def m_sendMessage(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        chat = self._chat(p)
        visible = self._text(p.get("text", ""), p.get("parse_mode"), 4096, "message text")
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        rows, force = self._keyboard(p)
        reply = self._reply_target(chat, p)
        self._flood(chat, "sendMessage")
        msg = self._store(chat, "text", text=visible, html=p.get("text", ""), buttons=rows,
                          force_reply=force, reply_to=reply)
        return self._json(msg)

    async def m_editMessageText(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        msg = self._target(p)
        visible = self._text(p.get("text", ""), p.get("parse_mode"), 4096, "message text")
        rows, _ = self._keyboard(p)
        if msg.kind != "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        if visible == msg.text and rows == msg.buttons:
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                           "content and reply markup are exactly the same as a current content "
                           "and reply markup of the message")
        self._flood(self.chats[msg.chat_id], "editMessageText")
        msg.text, msg.html, msg.buttons = visible, p.get("text", ""), rows
        msg.edits += 1
        msg.edited_at.append(time.monotonic())
        return self._json(msg)

    async def m_editMessageReplyMarkup(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        msg = self._target(p)
        rows, _ = self._keyboard(p)
        if rows == msg.buttons:
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                           "content and reply markup are exactly the same as a current content "
                           "and reply markup of the message")
        self._flood(self.chats[msg.chat_id], "editMessageReplyMarkup")
        msg.buttons = rows
        msg.edits += 1
        return self._json(msg)

    async def m_editMessageCaption(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        msg = self._target(p)
        if msg.kind == "text":
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        visible = self._text(p.get("caption", ""), p.get("parse_mode"), 1024, "message caption")
        rows, _ = self._keyboard(p)
        if visible == msg.text and rows == msg.buttons:
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                           "content and reply markup are exactly the same as a current content "
                           "and reply markup of the message")
        self._flood(self.chats[msg.chat_id], "editMessageCaption")
        msg.text, msg.html, msg.buttons = visible, p.get("caption", ""), rows
        msg.edits += 1
        return self._json(msg)

    async def m_editMessageMedia(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        """Replaces a media message's file (and caption, and buttons); a text message cannot
        become a photo, and an album's item cannot become another kind."""
        msg = self._target(p)
        item = p.get("media") or {}
        if msg.kind == "text":
            raise ApiError(400, "Bad Request: there is no media in the message to edit")
        if item.get("type") not in ("photo", "video", "animation", "document", "audio"):
            raise ApiError(400, "Bad Request: can't parse InputMedia: media type is invalid")
        data = self._upload({"media": item.get("media")}, f, "media")
        if item["type"] == "photo" and len(data) > 10_000_000:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        caption = self._text(item.get("caption", ""), item.get("parse_mode"), 1024,
                             "message caption")
        rows, _ = self._keyboard(p)
        self._flood(self.chats[msg.chat_id], "editMessageMedia")
        msg.kind = "video" if item["type"] == "video" else "photo"
        msg.text, msg.html, msg.buttons, msg.file_size = caption, item.get("caption", ""), \
            rows, len(data)
        msg.edits += 1
        msg.media_edits += 1
        return self._json(msg)

    async def m_deleteMessage(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        msg = self._target(p)
        msg.deleted = True
        return True

    def _upload(self, p: dict[str, Any], f: dict[str, bytes], name: str) -> bytes:
        value = p.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = value.removeprefix("attach://")
            if value not in f:
                raise ApiError(400, f"Bad Request: file {value} not found in the request")
            return f[value]
        if name in f:
            return f[name]
        raise ApiError(400, f"Bad Request: there is no {name} in the request")

    async def m_sendPhoto(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        chat = self._chat(p)
        data = self._upload(p, f, "photo")
        if len(data) > 10_000_000:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        caption = self._text(p.get("caption", ""), p.get("parse_mode"), 1024, "message caption")
        rows, _ = self._keyboard(p)
        self._flood(chat, "sendPhoto")
        msg = self._store(chat, "photo", text=caption, html=p.get("caption", ""), buttons=rows,
                          file_size=len(data))
        return self._json(msg)

    async def m_sendVideo(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        chat = self._chat(p)
        data = self._upload(p, f, "video")
        if len(data) > 50_000_000:
            raise ApiError(413, "Request Entity Too Large")
        caption = self._text(p.get("caption", ""), p.get("parse_mode"), 1024, "message caption")
        rows, _ = self._keyboard(p)
        self._flood(chat, "sendVideo")
        msg = self._store(chat, "video", text=caption, html=p.get("caption", ""), buttons=rows,
                          file_size=len(data))
        self.uploads[f"video:{msg.message_id}"] = len(data)
        return self._json(msg)

    async def m_sendMediaGroup(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        chat = self._chat(p)
        media = p.get("media") or []
        if not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of messages in the album; "
                           "must be between 2 and 10")
        if sum(len(d) for d in f.values()) > 50_000_000:
            raise ApiError(413, "Request Entity Too Large")
        items = []
        for item in media:
            if item.get("type") != "photo":
                raise ApiError(400, "Bad Request: unsupported media type in this album")
            data = self._upload({"media": item["media"]}, f, "media")
            if len(data) > 10_000_000:
                raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            caption = self._text(item.get("caption", ""), item.get("parse_mode"), 1024,
                                 "message caption")
            items.append((len(data), caption, item.get("caption", "")))
        self._flood(chat, "sendMediaGroup", len(items))
        group_id = str(next(self.media_groups))
        out = []
        for size, caption, raw in items:
            msg = self._store(chat, "photo", text=caption, html=raw, media_group_id=group_id,
                              file_size=size)
            out.append(self._json(msg))
        return out

    async def m_answerCallbackQuery(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        qid = str(p.get("callback_query_id", ""))
        pressed = self.pressed.get(qid)
        if pressed is None or qid in self.answered_after:
            raise ApiError(400, TOO_OLD)  # unknown, or answered already
        if len(p.get("text", "")) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        after = time.monotonic() - pressed
        if after > CALLBACK_TTL_S:
            self.answered_after[qid] = after
            raise ApiError(400, TOO_OLD)
        self.answered_after[qid] = after
        self.answers.append(p)
        return True

    @property
    def late_answers(self) -> int:
        """Button presses answered too late for the person to see the answer."""
        return sum(1 for after in self.answered_after.values() if after > CALLBACK_TTL_S)

    async def m_getChatMember(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        chat = self._chat(p)
        uid = p.get("user_id", 0)
        user = {"id": uid, "is_bot": False, "first_name": f"user{uid}"}
        if uid in self.admins.get(chat["id"], set()):
            return {"status": "administrator", "user": user, "can_be_edited": False,
                    "is_anonymous": False, "can_manage_chat": True,
                    "can_delete_messages": True, "can_manage_video_chats": True,
                    "can_restrict_members": True, "can_promote_members": False,
                    "can_change_info": True, "can_invite_users": True,
                    "can_post_stories": False, "can_edit_stories": False,
                    "can_delete_stories": False}
        return {"status": "member", "user": user}

    async def m_sendChatAction(self, p: dict[str, Any], f: dict[str, bytes]) -> Any:
        self._chat(p)
        return True
