"""Pacing the bot under Telegram's flood limits, one lane per chat.

Telegram asks a bot to send about one message a second into one chat, at most 20 a minute into
one group, and about 30 a second overall; past them it answers 429 with ``retry_after``, and that
chat is in a flood wait for as long. The waits are per chat: a group in a 60 s flood wait must
not hold up any other chat. So each chat has its own lane (its spacing, its per-minute window, its
flood wait), the overall pace is shared, and a request that does not post into a chat
(``answerCallbackQuery`` above all, which Telegram refuses after about 15 s) never waits behind
any of them.

PTB's ``AIORateLimiter`` pauses *every* request on any 429 and lets a group send its 20 messages
of a minute at once; this module exists to do neither.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
# Requests that post or change a message in a chat: these count against its limits.
COUNTED = ("send", "edit", "copy", "forward")
UNCOUNTED = frozenset({"sendChatAction"})
# 429s from this many chats within a second mean the bot hit its overall limit, not theirs.
GLOBAL_CHATS, GLOBAL_WINDOW_S = 3, 1.0


def retry_after_s(err: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: int | float | dtm.timedelta = err.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@dataclass(frozen=True)
class Limits:
    """How fast the bot posts: Telegram's documented limits less a margin (one message a second
    in a chat, 20 a minute in a group, 30 a second overall)."""

    private_per_s: float = 0.85  # requests a second into one private chat
    group_per_s: float = 0.8  # requests a second into one group
    group_per_min: int = 18  # messages a minute into one group (an album counts each photo)
    overall_per_s: float = 25
    minute_s: float = 60.0

    def scaled(self, k: float) -> Limits:
        """The same limits with time running ``1/k`` times as fast (for tests)."""
        return replace(self, private_per_s=self.private_per_s / k,
                       group_per_s=self.group_per_s / k, overall_per_s=self.overall_per_s / k,
                       minute_s=self.minute_s * k)


class Lane:
    """One chat's pace: requests ``interval_s`` apart, at most ``per_window`` messages in any
    ``window_s``, and none before a flood wait ends. A reservation is made at once (no lock),
    so concurrent senders into one chat queue up in the order they asked."""

    def __init__(self, interval_s: float, per_window: int = 0, window_s: float = 0.0) -> None:
        self.interval_s = interval_s
        self.per_window = per_window
        self.window_s = window_s
        self.next_at = 0.0
        self.blocked_until = 0.0
        self.last_done = float("-inf")  # when the chat's last request was answered
        self.busy = asyncio.Lock()  # one request in flight per chat
        self.sent: deque[float] = deque()

    def reserve(self, now: float, weight: int = 1) -> float:
        """The time at which a request of ``weight`` messages may go; it is booked."""
        at = max(now, self.next_at, self.blocked_until)
        if self.per_window:
            weight = min(weight, self.per_window)
            while len(self.sent) + weight > self.per_window and self.sent:
                if self.sent[0] > at - self.window_s:
                    at = self.sent[0] + self.window_s
                self.sent.popleft()
            while self.sent and self.sent[0] <= at - self.window_s:
                self.sent.popleft()
            self.sent.extend([at] * weight)
        self.next_at = at + self.interval_s
        return at

    def flood_wait(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)

    @property
    def idle(self) -> bool:
        now = time.monotonic()
        return self.next_at < now and self.blocked_until < now and (
            not self.sent or self.sent[-1] < now - self.window_s)


class ChatRateLimiter(BaseRateLimiter[int]):
    """A PTB rate limiter with a lane per chat (see the module's docstring). Requests are
    retried after a 429, never dropped."""

    def __init__(self, limits: Limits = Limits(), max_retries: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.max_retries = max_retries
        self.clock = clock
        self._overall = Lane(1 / limits.overall_per_s)
        self._lanes: dict[int, Lane] = {}
        self._recent_429: deque[tuple[float, int]] = deque()
        self.waits: list[tuple[int | None, float]] = []  # (chat, seconds) of every 429 obeyed

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def lane(self, chat_id: int) -> Lane:
        found = self._lanes.get(chat_id)
        if found is None:
            if len(self._lanes) > 4096:
                self._lanes = {k: v for k, v in self._lanes.items() if not v.idle}
            lim = self.limits
            found = (Lane(1 / lim.group_per_s, lim.group_per_min, lim.minute_s) if chat_id < 0
                     else Lane(1 / lim.private_per_s))
            self._lanes[chat_id] = found
        return found

    async def _wait_turn(self, lane: Lane, weight: int) -> None:
        """Wait for this chat's turn, and the overall pace; again if a flood wait began
        meanwhile."""
        while True:
            at = lane.reserve(self.clock(), weight)
            at = max(at, self._overall.reserve(self.clock()))
            delay = at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.clock() >= lane.blocked_until and self.clock() >= \
                    self._overall.blocked_until:
                return

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        chat_id = _chat_id(data) if endpoint.startswith(COUNTED) and \
            endpoint not in UNCOUNTED else None
        lane = self.lane(chat_id) if chat_id is not None else None
        weight = max(1, len(data.get("media") or [])) if endpoint == "sendMediaGroup" else 1
        attempts = (rate_limit_args or self.max_retries) + 1
        for attempt in range(attempts):
            if lane is not None:
                await self._wait_turn(lane, weight)
            try:
                if lane is None:
                    return await callback(*args, **kwargs)
                async with lane.busy:
                    # Telegram spaces a chat's messages by when it *received* them: a request
                    # that took a while (an upload, a busy machine) is followed no sooner than
                    # an interval after it was answered, so requests never arrive bunched.
                    gap = lane.last_done + lane.interval_s - self.clock()
                    if gap > 0:
                        await asyncio.sleep(gap)
                    try:
                        return await callback(*args, **kwargs)
                    finally:
                        lane.last_done = self.clock()
            except RetryAfter as err:
                wait = retry_after_s(err) + 0.1
                self.waits.append((chat_id, wait))
                if attempt == attempts - 1:
                    raise
                log.info("flood wait", extra={"endpoint": endpoint, "chat": chat_id,
                                              "wait_s": wait})
                until = self.clock() + wait
                if lane is None:
                    await asyncio.sleep(wait)  # only this request waits
                    continue
                lane.flood_wait(until)
                if self._overall_limit_hit(chat_id):
                    self._overall.flood_wait(until)
        raise AssertionError("unreachable")

    def _overall_limit_hit(self, chat_id: int | None) -> bool:
        """429s from several chats at once: the bot is over its overall limit."""
        now = self.clock()
        self._recent_429.append((now, chat_id or 0))
        while self._recent_429 and self._recent_429[0][0] < now - GLOBAL_WINDOW_S:
            self._recent_429.popleft()
        return len({c for _, c in self._recent_429}) >= GLOBAL_CHATS


def _chat_id(data: dict[str, Any]) -> int | None:
    raw = data.get("chat_id")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None  # a channel's @username: paced as no chat in particular
