"""A worker SIGKILLed in the middle of a step: a new worker finishes the story, and nothing a
provider had already made is asked for again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.api import StoryAPI
from pipeline.models import Status
from pipeline.runtime import Runtime
from tests.factories import ALICE, ROOM

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _worker(rt: Runtime, delay: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.counting_worker", rt.target.url,
         str(rt.settings.data_dir), str(delay)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def _wait_for(rt: Runtime, story_id: str, statuses: set[Status], limit_s: float) -> Status:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        status = (await rt.store.get(story_id)).status
        if status in statuses:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"story never reached {statuses}; it is {status}")


@pytest.mark.parametrize("kill_in", [Status.casting, Status.animating, Status.assembling])
async def test_killed_worker_mid_step_resumes_without_repeating_calls(
    rt: Runtime, kill_in: Status
) -> None:
    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto", music=True)
    story = await api.start_story("A fox and a heron share a winter lake", ALICE, ROOM, options)

    first = _worker(rt, delay=0.4)
    try:
        await _wait_for(rt, story.id, {kill_in}, 120)
        await asyncio.sleep(0.5)  # in the middle of the step
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    inflight = int(await rt.redis.get("test:inflight") or 0)

    second = _worker(rt, delay=0.0)
    try:
        status = await _wait_for(rt, story.id, {Status.done, Status.failed}, 180)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    final = await rt.store.get(story.id)
    assert status == Status.done, final.error
    calls = int(await rt.redis.get("test:calls") or 0)
    distinct = int(await rt.redis.scard("test:distinct"))
    # Only a call that was in flight at the moment of the kill may be made again.
    assert calls - distinct <= inflight, (calls, distinct, inflight)
