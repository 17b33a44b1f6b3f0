"""``storyloom telegram --worker`` killed with SIGKILL and started again at once runs its worker:
the killed process's heartbeat is not mistaken for a live worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runtime import Runtime
from tests.fakes import telegram_api

ROOT = Path(__file__).resolve().parents[1]


def _bot(rt: Runtime, base_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLOOM_")}
    env |= {"STORYLOOM_REDIS_URL": rt.target.url, "STORYLOOM_DATA_DIR": str(rt.settings.data_dir),
            "STORYLOOM_TELEGRAM_TOKEN": telegram_api.TOKEN,
            "STORYLOOM_TELEGRAM_BASE_URL": base_url, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "telegram", "--worker"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=ROOT)


def _listening_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if "is listening" in line:
            return line
    raise AssertionError("the bot ended before it listened")


@pytest.mark.slow
async def test_telegram_worker_restarted_right_after_a_kill_runs_its_worker(
    rt: Runtime,
) -> None:
    from pipeline.queue import worker_alive

    fake = telegram_api.FakeTelegram()
    await fake.start()
    procs: list[subprocess.Popen[str]] = []
    try:
        first = _bot(rt, fake.url)
        procs.append(first)
        line = await asyncio.wait_for(asyncio.to_thread(_listening_line, first), 120)
        assert "(with a worker in this process)" in line
        for _ in range(600):  # its first heartbeat follows the worker's start-up
            if await worker_alive(rt.redis):
                break
            await asyncio.sleep(0.1)
        assert await worker_alive(rt.redis)
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)

        second = _bot(rt, fake.url)  # well within the heartbeat's few seconds
        procs.append(second)
        line = await asyncio.wait_for(asyncio.to_thread(_listening_line, second), 120)
        assert "(with a worker in this process)" in line
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(p.wait, 30)
                except subprocess.TimeoutExpired:
                    p.kill()
        await fake.stop()
