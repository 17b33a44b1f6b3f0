"""Retention: what finished stories leave behind is deleted after a while.

Two settings, both off (0) by default:

- ``STORYLOOM_RETENTION_MEDIA_DAYS``: a finished story's intermediate media (character sheets,
  storyboard frames, clips, narration) go after this many days; its video and storyboard sheet
  stay. A later ``regen`` finds them missing and ``retry`` makes them again.
- ``STORYLOOM_RETENTION_STORY_DAYS``: the whole story goes: its document, its index entries, every
  Redis key named after it (job records, the bots' message records...) and all its media.

Media is content-addressed, so one file may serve several stories: a file is deleted only when no
story that stays refers to it, and never when something else has claimed it in the
``sl:media:keep`` set (the hook for a community's library and gallery: whatever they show, they
add there). ``storyloom gc --dry-run`` says what would go; the worker runs the collection every
hour when a retention is set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import BaseModel

from pipeline.models import MediaRef, Status, Story, now
from pipeline.runtime import Runtime
from pipeline.store import story_key

log = logging.getLogger(__name__)

KEEP_SET = "sl:media:keep"
DAY_S = 24 * 3600
ENDED = (Status.done, Status.failed, Status.cancelled)


async def keep_media(rt: Runtime, *refs: MediaRef) -> None:
    """Claim media for something other than a story (a library entry, a gallery post)."""
    if refs:
        await rt.redis.sadd(KEEP_SET, *(r.key for r in refs))  # type: ignore[misc]


def final_media(story: Story) -> list[MediaRef]:
    return [story.video.media, story.video.contact_sheet] if story.video else []


def intermediate_media(story: Story) -> list[MediaRef]:
    refs = [c.reference for c in story.characters if c.reference is not None]
    for sc in story.scenes:
        refs += [fc.media for fc in sc.candidates]
        refs += [sc.clip.media] if sc.clip else []
        refs += [sc.voice.media] if sc.voice else []
    return refs


class GcReport(BaseModel):
    dry_run: bool
    stories: list[str] = []  # deleted whole
    trimmed: list[str] = []  # intermediate media deleted
    redis_keys: int = 0
    redis_bytes: int = 0
    media_files: int = 0
    media_bytes: int = 0
    skipped_media: int = 0  # the media store cannot delete

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (f"{verb} {_n(len(self.stories), 'whole story', 'whole stories')} "
                f"({_n(self.redis_keys, 'Redis key')}, {_size(self.redis_bytes)}) and "
                f"{_n(self.media_files, 'media file')} ({_size(self.media_bytes)}) of "
                f"{_n(len(self.stories) + len(self.trimmed), 'story', 'stories')}"
                + (f"; {self.skipped_media} media files kept: the media store cannot delete"
                   if self.skipped_media else ""))


def _n(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


async def _ended_stories(rt: Runtime) -> list[Story]:
    out = []
    for status in ENDED:
        for raw in await rt.redis.smembers(f"sl:status:{status.value}"):  # type: ignore[misc]
            try:
                out.append(await rt.store.get(raw.decode()))
            except Exception:  # a damaged document is shown by `status`, not collected
                continue
    return out


async def _live_refs(rt: Runtime, going: set[str], trimmed: set[str]) -> set[str]:
    """Media keys something that stays still uses."""
    keep = {k.decode() for k in await rt.redis.smembers(KEEP_SET)}  # type: ignore[misc]
    async for key in rt.redis.scan_iter(match="sl:story:*", count=500):
        story_id = key.decode().removeprefix("sl:story:")
        if story_id in going:
            continue
        try:
            story = await rt.store.get(story_id)
        except Exception:
            continue
        refs = final_media(story)
        if story_id not in trimmed:
            refs += intermediate_media(story)
        keep |= {r.key for r in refs}
    return keep


async def _keys_of(rt: Runtime, story_ids: set[str]) -> list[bytes]:
    """Every Redis key named after one of the stories (one pass over the keyspace)."""
    found = []
    async for key in rt.redis.scan_iter(count=1000):
        if any(part in story_ids for part in key.decode(errors="replace").split(":")):
            found.append(key)
    return found


async def collect(rt: Runtime, *, dry_run: bool, media_days: float | None = None,
                  story_days: float | None = None) -> GcReport:
    """Delete (or, dry, count) what the retention settings let go."""
    s = rt.settings
    media_days = s.retention_media_days if media_days is None else media_days
    story_days = s.retention_story_days if story_days is None else story_days
    report = GcReport(dry_run=dry_run)
    if not media_days and not story_days:
        return report
    t = now()
    going: dict[str, Story] = {}
    trimmed: dict[str, Story] = {}
    for story in await _ended_stories(rt):
        age_s = t - story.updated_at
        if story_days and age_s >= story_days * DAY_S:
            going[story.id] = story
        elif media_days and age_s >= media_days * DAY_S:
            trimmed[story.id] = story
    live = await _live_refs(rt, set(going), set(trimmed))

    doomed: dict[str, MediaRef] = {}
    for story in going.values():
        doomed |= {r.key: r for r in final_media(story) + intermediate_media(story)}
    for story in trimmed.values():
        doomed |= {r.key: r for r in intermediate_media(story)}
    await _delete_media(rt, [r for k, r in doomed.items() if k not in live], report, dry_run)

    report.stories = sorted(going)
    report.trimmed = sorted(k for k, st in trimmed.items() if intermediate_media(st))
    keys = await _keys_of(rt, set(going))
    for key in keys:
        report.redis_bytes += int(await rt.redis.memory_usage(key) or 0)
    report.redis_keys = len(keys)
    if not dry_run and going:
        pipe = rt.redis.pipeline(transaction=False)
        for story in going.values():
            pipe.srem(f"sl:status:{story.status.value}", story.id)
            pipe.zrem(f"sl:chat:{story.chat.key}", story.id)
            pipe.zrem(f"sl:owner:{story.owner.key}", story.id)
            pipe.zrem("sl:stories", story.id)
            pipe.delete(story_key(story.id))
        for key in keys:
            pipe.delete(key)
        await pipe.execute()
    if not dry_run and (report.stories or report.media_files):
        log.warning("retention: " + report.summary(),
                    extra={"stories": len(report.stories), "trimmed": len(report.trimmed)})
    return report


async def _delete_media(rt: Runtime, refs: Iterable[MediaRef], report: GcReport,
                        dry_run: bool) -> None:
    delete = getattr(rt.media, "delete", None)
    for ref in refs:
        if not await rt.media.exists(ref):
            continue
        if delete is None:
            report.skipped_media += 1
            continue
        size = ref.size
        if not dry_run:
            size = int(await delete(ref))
        report.media_files += 1
        report.media_bytes += size
