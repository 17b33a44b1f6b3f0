"""Compact, HMAC-signed action tokens for buttons.

A token names one action on one story (or on the chat's settings), and is bound to the chat it was
posted in: ``<action>.<story>.<args>.<mac>``. It fits Telegram's 64-byte ``callback_data`` and
Discord's 100-character ``custom_id``. A forged token, or one copied to another chat, fails the
MAC; whether the person pressing may act is decided afresh on every press (see permissions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

SECRET_KEY = "sl:bot:secret"
MAC_BYTES = 9  # 12 base64 characters: forging one is a 2**72 guess
MAX_TOKEN = 64

_ARG = re.compile(r"^[0-9a-z]{1,6}$")
_STORY = re.compile(r"^[0-9a-z]{0,16}$")
_ACTION = re.compile(r"^[a-z]$")


class BadToken(Exception):
    """The token was not made by this bot for this chat, or is malformed."""


@dataclass(frozen=True)
class Action:
    code: str
    story_id: str = ""
    args: tuple[int, ...] = ()

    def arg(self, n: int, default: int = 0) -> int:
        return self.args[n] if n < len(self.args) else default


def _b36(n: int) -> str:
    if n < 0:
        raise ValueError("token arguments are non-negative")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must have at least 16 bytes")
        self._secret = secret

    def _mac(self, chat_key: str, payload: str) -> str:
        digest = hmac.new(self._secret, f"{chat_key}\n{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:MAC_BYTES]).decode().rstrip("=")

    def sign(self, chat_key: str, action: Action) -> str:
        if not _ACTION.match(action.code) or not _STORY.match(action.story_id):
            raise ValueError(f"cannot sign action {action!r}")
        payload = ".".join([action.code, action.story_id, *(_b36(a) for a in action.args)])
        token = f"{payload}.{self._mac(chat_key, payload)}"
        if len(token.encode()) > MAX_TOKEN:
            raise ValueError("token too long")
        return token

    def verify(self, chat_key: str, token: str) -> Action:
        if not token or len(token) > MAX_TOKEN or not token.isascii():
            raise BadToken("malformed")
        payload, _, mac = token.rpartition(".")
        parts = payload.split(".")
        if len(parts) < 2 or not hmac.compare_digest(mac, self._mac(chat_key, payload)):
            raise BadToken("bad signature")
        code, story_id, *raw = parts
        if not _ACTION.match(code) or not _STORY.match(story_id):
            raise BadToken("malformed")
        if not all(_ARG.match(a) for a in raw):
            raise BadToken("malformed")
        return Action(code, story_id, tuple(int(a, 36) for a in raw))


async def load_secret(redis: Redis, configured: str = "") -> bytes:
    """The configured secret, or a random one stored once in Redis and shared by every process."""
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    await redis.set(SECRET_KEY, secrets.token_hex(32), nx=True)
    raw = await redis.get(SECRET_KEY)
    if raw is None:  # pragma: no cover - set nx just succeeded or found one
        raise RuntimeError("could not store the bot secret")
    return bytes.fromhex(raw.decode() if isinstance(raw, bytes) else str(raw))
