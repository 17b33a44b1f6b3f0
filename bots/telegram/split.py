"""Telegram clients split a text longer than 4096 characters (UTF-16 units) into several
messages, sent one after another; the bot joins them back into the one text the person wrote.

A part is taken as the continuation of a long message when it comes from the same person in the
same chat with the next message id, within a moment of it. Only a long message (near the limit)
waits for a continuation, so everyday messages are answered at once.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

TEXT_LIMIT = 4096  # Telegram's message limit, in UTF-16 code units
LONG_AT = 3000  # a part this long may have been cut by the client (it cuts at a word break)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _Open:
    parts: list[str]
    last_id: int
    more: asyncio.Event = field(default_factory=asyncio.Event)


class SplitJoiner:
    def __init__(self, wait_s: float = 1.5, long_at: int = LONG_AT) -> None:
        self.wait_s = wait_s
        self.long_at = long_at
        self._open: dict[tuple[int, int], _Open] = {}

    async def whole(self, chat_id: int, user_id: int, message_id: int, text: str) -> str | None:
        """The whole text that this message begins, once its continuations have arrived; or
        ``None`` when this message continues an earlier one (its text was added there).

        Must be called before the handler's first ``await``, so parts are seen in order."""
        key = (chat_id, user_id)
        pending = self._open.get(key)
        if pending is not None and message_id == pending.last_id + 1 and \
                utf16_len(pending.parts[-1]) >= self.long_at:
            pending.parts.append(text)
            pending.last_id = message_id
            pending.more.set()
            return None
        if utf16_len(text) < self.long_at:
            return text
        mine = _Open([text], message_id)
        self._open[key] = mine
        try:
            while utf16_len(mine.parts[-1]) >= self.long_at:  # the last part may go on
                mine.more.clear()
                try:
                    await asyncio.wait_for(mine.more.wait(), self.wait_s)
                except TimeoutError:
                    break
        finally:
            if self._open.get(key) is mine:
                del self._open[key]
        return join(mine.parts)


def join(parts: list[str]) -> str:
    """The parts as one text. A part cut short of the limit was cut at a space or line break
    that the client did not send; one of exactly the limit was cut in the middle of a word."""
    out = parts[0]
    for before, part in itertools.pairwise(parts):
        hard = utf16_len(before) >= TEXT_LIMIT
        out += part if hard or out[-1:].isspace() or part[:1].isspace() else " " + part
    return out
