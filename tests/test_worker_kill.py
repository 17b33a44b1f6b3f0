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


def _cli_env(rt: Runtime) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    return env | {"STORYLOOM_REDIS_URL": rt.target.url,
                  "STORYLOOM_DATA_DIR": str(rt.settings.data_dir), "PYTHONPATH": str(ROOT)}


def _storyloom_worker(rt: Runtime) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker"], env=_cli_env(rt),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _storyloom(rt: Runtime, cwd: Path, *args: str, timeout: float = 240
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=_cli_env(rt),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


async def _killed_worker(rt: Runtime) -> None:
    """Start a real ``storyloom worker``, wait for its heartbeat, SIGKILL it."""
    from pipeline.queue import worker_alive

    proc = _storyloom_worker(rt)
    try:
        deadline = time.monotonic() + 60
        while not await worker_alive(rt.redis):
            assert time.monotonic() < deadline, "the worker never reported"
            await asyncio.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def test_make_right_after_a_killed_worker_works_in_its_own_process(
    rt: Runtime, tmp_path: Path
) -> None:
    await _killed_worker(rt)
    out = tmp_path / "fox.mp4"
    done = await asyncio.to_thread(
        _storyloom, rt, tmp_path, "make", "A fox and a heron share a winter lake",
        "--scenes", "3", "--no-music", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(no worker running: working in this process)" in done.stdout
    assert out.is_file()


async def test_a_worker_killed_while_encoding_leaves_no_scratch_folder(rt: Runtime) -> None:
    from pipeline.scratch import scratch_root

    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto", music=False)
    story = await api.start_story("A heron and a fox share a frozen pond", ALICE, ROOM, options)
    scratch = scratch_root(rt.settings.data_dir)
    first = _worker(rt, delay=0.0)
    try:
        deadline = time.monotonic() + 180
        while not (scratch.is_dir() and any(scratch.iterdir())):
            assert time.monotonic() < deadline, "the worker never started encoding"
            await asyncio.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    left = list(scratch.iterdir())
    assert left and all(p.name.startswith("storyloom-asm-") for p in left)

    second = _worker(rt, delay=0.0)
    try:
        status = await _wait_for(rt, story.id, {Status.done, Status.failed}, 180)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert status == Status.done
    assert list(scratch.iterdir()) == []
