"""Retention: ``storyloom gc`` deletes what finished stories leave behind, and nothing that is
still in use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.gc import collect, keep_media
from pipeline.models import (
    Character,
    Clip,
    FinalVideo,
    FrameCandidate,
    MediaRef,
    Narration,
    Scene,
    Status,
    Story,
)
from pipeline.runtime import Runtime
from tests.factories import story as new_story

ROOT = Path(__file__).resolve().parents[1]
DAY = 24 * 3600


async def _finished_story(rt: Runtime, tag: str, days_ago: float,
                          shared: MediaRef | None = None) -> Story:
    async def put(what: str, mime: str = "image/png") -> MediaRef:
        return await rt.media.put(f"{tag}:{what}".encode() * 1000, mime)

    story = new_story(scenes=3)
    story.characters = [Character(id="c1", name="Heron", description="a grey heron",
                                  reference=await put("sheet"))]
    for i in range(3):
        frame = shared if (shared and i == 0) else await put(f"frame{i}")
        story.scenes.append(Scene(
            index=i, shot="a shot", narration="words",
            candidates=[FrameCandidate(id=f"f{i}", media=frame, seed=i, provider="offline")],
            picked=f"f{i}",
            clip=Clip(media=await put(f"clip{i}", "video/mp4"), duration_s=3, provider="offline",
                      frame_id=f"f{i}"),
            voice=Narration(media=await put(f"voice{i}", "audio/wav"), text="words",
                            duration_s=3, provider="offline"),
        ))
    story.video = FinalVideo(media=await put("video", "video/mp4"),
                             contact_sheet=await put("sheet.png"), duration_s=9, width=720,
                             height=1280)
    story.status = Status.done
    await rt.store.create(story)
    await rt.redis.set(f"sl:job:{story.id}", f"{story.id}:assemble:r7")
    await rt.redis.hset(f"sl:bot:telegram:shown:{story.id}", "status", "{}")  # type: ignore[misc]
    raw = json.loads(await rt.redis.hget(f"sl:story:{story.id}", "doc"))  # type: ignore[misc]
    raw["updated_at"] -= days_ago * DAY
    await rt.redis.hset(f"sl:story:{story.id}", "doc", json.dumps(raw))  # type: ignore[misc]
    return story


async def test_gc_deletes_old_stories_and_old_intermediates_but_nothing_in_use(
    rt: Runtime,
) -> None:
    recent = await _finished_story(rt, "recent", days_ago=1)
    shared = recent.scenes[0].candidates[0].media
    old = await _finished_story(rt, "old", days_ago=40, shared=shared)
    middle = await _finished_story(rt, "middle", days_ago=10)
    library = middle.characters[0].reference
    assert library is not None
    await keep_media(rt, library)  # a community's library shows this character sheet

    dry = await collect(rt, dry_run=True, media_days=7, story_days=30)
    assert dry.stories == [old.id] and dry.trimmed == [middle.id]
    # old: 1 sheet + 2 own frames (one is shared) + 3 clips + 3 voices + video + sheet = 11;
    # middle: its 3 frames, 3 clips and 3 voices (its character sheet is in the library) = 9
    assert dry.media_files == 11 + 9
    assert dry.redis_keys == 3 and dry.redis_bytes > 0  # document, job record, bot record
    assert await rt.store.exists(old.id)

    done = await collect(rt, dry_run=False, media_days=7, story_days=30)
    assert done.model_dump(exclude={"dry_run"}) == dry.model_dump(exclude={"dry_run"})
    assert done.summary().startswith("deleted 1 whole story (3 Redis keys, ")
    assert not await rt.store.exists(old.id)
    assert [k async for k in rt.redis.scan_iter(match=f"*{old.id}*")] == []
    assert old.id not in {m.decode() for m in await rt.redis.zrange("sl:stories", 0, -1)}
    assert await rt.media.exists(shared)  # the recent story still uses it
    assert await rt.media.exists(library)
    assert middle.video is not None and await rt.media.exists(middle.video.media)
    assert not await rt.media.exists(middle.scenes[1].clip.media)  # type: ignore[union-attr]
    for sc in recent.scenes:
        assert sc.clip is not None and await rt.media.exists(sc.clip.media)

    again = await collect(rt, dry_run=False, media_days=7, story_days=30)
    assert again.stories == [] and again.media_files == 0


async def test_gc_command_dry_run(rt: Runtime, tmp_path: Path) -> None:
    import asyncio

    old = await _finished_story(rt, "old", days_ago=40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    env |= {"STORYLOOM_REDIS_URL": rt.target.url, "STORYLOOM_DATA_DIR": str(rt.settings.data_dir),
            "PYTHONPATH": str(ROOT), "STORYLOOM_RETENTION_STORY_DAYS": "30"}

    def gc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", "gc", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    dry = await asyncio.to_thread(gc, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 1 whole story (3 Redis keys, ")
    assert "and 12 media files (" in dry.stdout and f"stories: {old.id}" in dry.stdout
    assert await rt.store.exists(old.id)
    done = await asyncio.to_thread(gc)
    assert done.stdout.startswith("deleted 1 whole story")
    assert not await rt.store.exists(old.id)


async def test_the_worker_collects_when_a_retention_is_set(rt: Runtime) -> None:
    from pipeline.worker import run_until_idle

    old = await _finished_story(rt, "old", days_ago=40)
    await run_until_idle(rt)  # retention off: nothing goes
    assert await rt.store.exists(old.id)
    rt.settings = rt.settings.model_copy(update={"retention_story_days": 30})
    await run_until_idle(rt)
    assert not await rt.store.exists(old.id)
