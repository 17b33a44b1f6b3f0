"""The event pump: reads a platform's story-event stream in a consumer group and renders each
story through the platform's :class:`~bots.core.delivery.Renderer`.

Every view is built from the story as stored now, and shown through the delivery records, so an
event read twice (after a restart) edits what is there instead of posting again."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from bots.core.conversation import (
    STATUS_STEP,
    Conversation,
    eta_seconds,
    status_due,
)
from bots.core.delivery import ChatGone, Renderer
from bots.core.views import AnyView, SceneView, Text
from pipeline.errors import (
    CorruptStory,
    MediaNotFound,
    StoryloomError,
    StoryNotFound,
)
from pipeline.events import EventKind, StoryEvent, stream_key
from pipeline.models import ChatRef, Status, Story

log = logging.getLogger(__name__)

# Slots whose messages carry buttons that act on the story.
ARMED = ("scene:", "approve", "video:")
# Events that may change what a scene's message shows.
SCENE_EVENTS = frozenset({EventKind.candidates, EventKind.awaiting_approval, EventKind.status,
                          EventKind.notice})
# States whose status line is shown by the event that reached them, never by a deferred update.
FINAL_VIEWS = frozenset({Status.done, Status.failed, Status.cancelled, Status.awaiting_approval})


class EventPump:
    """Reads the platform's event stream in a consumer group and renders each story.

    Every view is built from the story as stored now (not from the event alone) and shown through
    :class:`~bots.core.delivery.Delivery`, so an event read twice changes nothing. Progress edits
    are throttled per chat; the latest throttled one is shown when its time comes.
    """

    def __init__(
        self,
        conv: Conversation,
        renderer: Renderer,
        *,
        consumer: str = "main",
        group: str | None = None,
        status_interval_s: tuple[float, float] = (3.0, 6.0),
        block_ms: int = 500,
        chat_filter: Callable[[ChatRef], bool] | None = None,
        start: str = "0",
        max_backlog: int = 500,
    ) -> None:
        self.conv = conv
        self.renderer = renderer
        self.platform = conv.platform
        self.group = group or f"bot-{conv.platform.value}"
        self.consumer = consumer
        self.private_s, self.group_s = status_interval_s
        self.block_ms = block_ms
        self.chat_filter = chat_filter
        self.start = start
        self._last_status: dict[str, float] = {}
        self._deferred: dict[str, StoryEvent] = {}
        self._final_due: set[str] = set()  # stories whose new state waits for its edit
        self._step_first: dict[tuple[str, str], float] = {}
        self._failures: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._lanes: dict[str, deque[Callable[[], Awaitable[None]]]] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        self._backlog = 0
        self._recovering = True
        self._stopping = False
        self.stop_grace_s = 3.0
        self.max_backlog = max_backlog
        self.rendered = 0

    @property
    def outbox(self) -> Any:
        return self.conv.rt.outbox

    async def run(self, stop: asyncio.Event | None = None) -> None:
        await self.outbox.ensure_group(self.platform, self.group, start=self.start)
        self._recovering = True
        try:
            while stop is None or not stop.is_set():
                try:
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("event pump hiccup; retrying",
                                  extra={"platform": self.platform})
                    await asyncio.sleep(1.0)
        finally:
            await self._stop_lanes()

    async def step(self) -> int:
        """Read one batch and hand each event to its chat's lane (after a restart, first render
        the events read before it, in order); flush due progress edits. Returns the events
        taken."""
        await self.flush()
        if self._recovering:
            return await self._recover()
        if self._backlog >= self.max_backlog:
            await asyncio.sleep(0.05)  # the lanes are behind: read more once they catch up
            return 0
        batch = await self.outbox.read(self.platform, self.group, self.consumer,
                                       block_ms=self.block_ms, pending_first=False)
        for entry_id, ev in batch:
            self._to_lane(ev.chat, functools.partial(self._in_lane, entry_id, ev))
        return len(batch)

    async def _recover(self) -> int:
        """The events this consumer read but never acknowledged (a restart), one by one."""
        batch = await self.outbox.read(self.platform, self.group, self.consumer, block_ms=None)
        done = 0
        for entry_id, ev in batch:
            if not await self._once(entry_id, ev):
                return done  # not acknowledged: read again (pending first)
            done += 1
        if not await self._has_pending():
            self._recovering = False
        return done

    async def _has_pending(self) -> bool:
        rows = await self.conv.rt.redis.xpending_range(
            stream_key(self.platform), self.group, min="-", max="+", count=1,
            consumername=self.consumer)
        return bool(rows)

    async def _in_lane(self, entry_id: str, ev: StoryEvent) -> None:
        """Render one event in its chat's lane, retrying a passing failure in place."""
        while not await self._once(entry_id, ev):
            pass

    async def _once(self, entry_id: str, ev: StoryEvent) -> bool:
        """Render one event and acknowledge it; ``False`` when it should be tried again."""
        try:
            await self.process(ev)
        except ChatGone:
            await self.conv.delivery.mark_gone(ev.chat)
            log.info("chat is gone; dropping its events", extra={"chat": ev.chat.key})
        except (StoryloomError, MediaNotFound) as err:
            log.warning("cannot render event", extra={"story_id": ev.story_id,
                                                      "kind": ev.kind, "err": str(err)})
        except Exception as err:
            n = self._failures.get(entry_id, 0) + 1
            self._failures[entry_id] = n
            if n < 5 and _transient(err):
                log.warning("render failed; will retry",
                            extra={"story_id": ev.story_id, "err": type(err).__name__})
                await asyncio.sleep(min(5.0, 0.5 * n))
                return False
            log.exception("giving up on an event", extra={"story_id": ev.story_id})
        self._failures.pop(entry_id, None)
        await self.outbox.ack(self.platform, self.group, entry_id)
        return True

    # ------------------------------------------------------------------ one lane per chat
    # A chat's events are rendered in order; chats do not wait for each other, so a chat whose
    # platform makes the bot wait (a flood wait of a minute) holds up only itself.

    def _to_lane(self, chat: ChatRef, job: Callable[[], Awaitable[None]]) -> None:
        queue = self._lanes.setdefault(chat.key, deque())
        queue.append(job)
        self._backlog += 1
        if chat.key not in self._lane_tasks:
            self._lane_tasks[chat.key] = asyncio.create_task(self._drain(chat.key, queue),
                                                             name=f"pump-lane-{chat.key}")

    async def _drain(self, key: str, queue: deque[Callable[[], Awaitable[None]]]) -> None:
        try:
            while queue and not self._stopping:
                job = queue.popleft()
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("event pump lane hiccup", extra={"chat": key})
                finally:
                    self._backlog -= 1
        finally:
            self._lane_tasks.pop(key, None)
            if not queue:
                self._lanes.pop(key, None)

    async def _stop_lanes(self) -> None:
        """Stop every lane: each finishes the event in hand for a moment (a message posted but
        not yet recorded would be posted again after a restart); what they had not acknowledged
        is read again after a restart."""
        tasks = list(self._lane_tasks.values())
        self._stopping = True
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=self.stop_grace_s)
        finally:
            self._stopping = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lane_tasks.clear()
        self._lanes.clear()
        self._backlog = 0

    async def flush(self) -> None:
        now = time.monotonic()
        for sid, ev in list(self._deferred.items()):
            story_chat_group = ev.chat.is_group
            interval = self.group_s if story_chat_group else self.private_s
            if status_due(self._last_status.get(ev.chat.key), now, interval):
                del self._deferred[sid]
                self._to_lane(ev.chat, functools.partial(self._deferred_status, sid, ev))

    async def _deferred_status(self, sid: str, ev: StoryEvent) -> None:
        try:
            story = await self.conv.api.get(sid)
            if story.status in FINAL_VIEWS and sid not in self._final_due:
                return  # the event that got it there shows it, in order
            async with self._lock(sid):  # its turn may have been taken meanwhile: check again
                await self._show_status(story, ev, force=False)
        except ChatGone:
            await self.conv.delivery.mark_gone(ev.chat)
        except Exception as err:
            log.warning("deferred status failed", extra={"story_id": sid,
                                                         "err": type(err).__name__})

    def _lock(self, sid: str) -> asyncio.Lock:
        return self._locks.setdefault(sid, asyncio.Lock())

    async def process(self, ev: StoryEvent) -> None:
        d = self.conv.delivery
        if self.chat_filter is not None and not self.chat_filter(ev.chat):
            return
        if await d.is_gone(ev.chat):
            return
        try:
            story = await self.conv.api.get(ev.story_id)
        except (StoryNotFound, CorruptStory):
            return
        async with self._lock(story.id):
            await self._render(story, ev)
        self.rendered += 1

    async def _render(self, story: Story, ev: StoryEvent) -> None:
        conv, d, r, chat = self.conv, self.conv.delivery, self.renderer, story.chat
        if story.status == Status.cancelled:  # an older event of an ended story shows nothing
            await self._show_status(story, ev, force=True)
            await self._disarm(story)
            return
        if ev.step:
            self._step_first.setdefault((story.id, ev.step), ev.at)
        final = story.status in FINAL_VIEWS
        finished = story.video is not None and story.status == Status.done
        if finished:  # the video lands before the status line says it is ready
            await d.show(r, chat, await conv.video_view(story))
        if ev.kind != EventKind.notice or final:
            await self._show_status(story, ev, force=final or ev.kind == EventKind.created)
        if ev.kind in SCENE_EVENTS or story.status == Status.awaiting_approval:
            await self._show_scenes(story)
        if ev.kind == EventKind.awaiting_approval or (
            story.status == Status.awaiting_approval and ev.kind == EventKind.status
        ):
            await d.show(r, chat, conv.approve_view(story))
        elif ev.kind == EventKind.notice and ev.scene is None and ev.message:
            # A step's word to the chat (no voice for the language): slotted, so said once.
            await d.show(r, chat, Text(story_id=story.id, slot=f"notice:{ev.step}",
                                       text=ev.message))
        if story.community is not None:
            await self._community_event(story, ev)
        if "approve" in await d.all(story.id):
            await d.show(r, chat, conv.approve_view(story))

    async def _disarm(self, story: Story) -> None:
        """Take the buttons off every message of the story that still offers a choice."""
        for slot in await self.conv.delivery.all(story.id):
            if slot.startswith(ARMED):
                await self.conv.delivery.retire(self.renderer, story.chat, story.id, slot)

    async def _community_event(self, story: Story, ev: StoryEvent) -> None:
        """Votes (live counts, results, overrides), spend approvals and the gallery post."""
        desk, d, r = self.conv.community, self.conv.delivery, self.renderer
        if ev.kind == EventKind.vote and ev.scene is not None:
            for view in await self._scene_views(story, ev.scene):
                await d.show(r, story.chat, view)
        elif ev.kind == EventKind.spend:
            await self._show_status(story, ev, force=True)  # "waits for a moderator", at once
            spend = desk.spend_view(story)
            if spend is not None:
                await d.show(r, story.chat, spend)
        elif ev.kind == EventKind.gallery and story.community is not None:
            c = await desk.communities.get(story.community)
            entry = desk.gallery_entry(c, story.id) if c is not None else None
            if c is not None and entry is not None:
                await d.show(r, desk.gallery_chat(c, story), entry)

    async def _show_status(self, story: Story, ev: StoryEvent, force: bool) -> None:
        now = time.monotonic()
        interval = self.group_s if story.chat.is_group else self.private_s
        due = status_due(self._last_status.get(story.chat.key), now, interval)
        if not due and force and await self.conv.delivery.get(story.id, "status") is not None:
            # a change of state is shown too, but as an edit it waits its turn like any other
            # (the chat's status message changes at most once an interval)
            self._final_due.add(story.id)
            force = False
        if not force and not due:
            self._deferred[story.id] = ev
            return
        self._deferred.pop(story.id, None)
        self._final_due.discard(story.id)
        eta = None
        step = STATUS_STEP.get(story.status)
        if step is not None:
            cur = ev.current if ev.step == step else 0
            tot = ev.total if ev.step == step else 0
            first = self._step_first.get((story.id, step), ev.at)
            eta = eta_seconds(step, cur, tot, max(0.0, ev.at - first), len(story.scenes) or
                              story.options.scenes)
        view = self.conv.status_view(story, ev, eta)
        await self.conv.delivery.show(self.renderer, story.chat, view)
        self._last_status[story.chat.key] = time.monotonic()  # from when it was shown

    async def _show_scenes(self, story: Story) -> None:
        """Each scene is one message, posted in scene order: a scene whose frames are ready
        waits until every scene before it is shown. A shown scene is edited in place (a pick,
        a redraw, an edit of its text); in a voted story it carries its vote."""
        d = self.conv.delivery
        shown = await d.all(story.id)
        for sc in story.scenes:
            slot = f"scene:{sc.index}"
            if slot not in shown and not sc.candidates:
                return  # later scenes wait for this one
            if shown.get(slot) is not None and shown[slot].fp == "retired":
                continue
            for view in await self._scene_views(story, sc.index):
                await d.show(self.renderer, story.chat, view)

    async def _scene_views(self, story: Story, index: int) -> list[AnyView]:
        """The scene's message (with its frames), or in a voted story its votes."""
        if not story.voting:
            return [await self.scene_view(story, index)]
        return [await self.scene_view(story, index) if isinstance(v, SceneView) else v
                for v in self.conv.community.scene_views(story, index)]

    async def scene_view(self, story: Story, index: int) -> SceneView:
        view = self.conv.scene_view(story, index)
        if not story.scene(index).candidates:  # new frames are being drawn
            return view.model_copy(update={"buttons": []})
        album = await self.conv.album_view(story, index)
        return view.model_copy(update={"images": album.images})


def _transient(err: BaseException) -> bool:
    name = type(err).__name__
    return isinstance(err, OSError | TimeoutError | ConnectionError) or name in (
        "NetworkError", "TimedOut", "RetryAfter", "ConnectionError"
    )


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
