"""Offline media speed: pan-and-zoom clips, narration and the music bed.

    python bench/bench_motion.py [frame.png]

Prints wall time and realtime factor (media seconds per wall second; above 1 is faster than real
time) for a 6 s 720x1280 24 fps clip of each motion, and each clip's cost relative to a baseline
measured in the same process: ffmpeg alone encoding the still frame as a static 6 s clip with the
same encoder settings (the floor any pan-and-zoom pays). Then the same for a 6-line narration and
a 40 s music bed. A 6-scene story renders faster than its own length when every clip's realtime
factor is above 1 with room left for voice, music and assembly.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers.base import AnimateRequest, Media, MusicRequest, SpeechRequest
from providers.offline.ffmpeg import run_ffmpeg
from providers.offline.motion import PanZoomAnimator, x264_args
from providers.offline.music import AmbientBed
from providers.offline.voice import PiperNarrator, load_voice

WIDTH, HEIGHT, FPS, SECONDS = 720, 1280, 24, 6.0
MOTIONS = ("push_in", "pull_out", "pan_left", "pan_right", "rise", "still")
RUNS = 3
NARRATION = [
    "On a cliff above the grey sea stood a lighthouse, and in it lived a keeper named Tom.",
    "One stormy night, a young whale was thrown onto the rocks below.",
    "Tom ran down with lanterns and buckets, and poured water over her all night long.",
    "At dawn the tide came back, and the whale slipped into the waves.",
    "She sang a long, low song, and Tom waved until she was gone.",
    "Every spring after that, she came back to sing beneath his light.",
]


def painting() -> bytes:
    """A storybook-like frame, 1024x1536 (another size and aspect than the output): soft
    gradients, shapes and a little brush texture."""
    rng = np.random.default_rng(7)
    w, h = 1024, 1536
    y, x = np.mgrid[0:h, 0:w]
    sky = np.stack([x / w * 120 + 60, y / h * 150 + 50, 190 + 40 * np.sin(x / 140)], axis=-1)
    image = Image.fromarray(sky.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        cx, cy, r = (
            int(v) for v in (rng.integers(0, w), rng.integers(0, h), rng.integers(10, 160))
        )
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    texture = Image.fromarray((rng.random((h // 8, w // 8)) * 255).astype(np.uint8))
    grain = np.asarray(texture.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    pixels = np.asarray(image, dtype=np.float32) + (grain[..., None] / 255 - 0.5) * 14
    buf = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


async def timed(make: Awaitable[object]) -> float:
    start = time.perf_counter()
    await make
    return time.perf_counter() - start


async def baseline(frame: bytes) -> float:
    """ffmpeg alone: decode the frame once, cover-crop, repeat it, encode with the same x264."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "frame.png", Path(tmp) / "still.mp4"
        src.write_bytes(frame)
        frames = round(SECONDS * FPS)
        chain = (
            f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,"
            f"crop={WIDTH}:{HEIGHT},loop=loop=-1:size=1,setpts=N/{FPS}/TB"
        )
        args = ["-i", str(src), "-vf", chain, *x264_args(FPS, frames, out)]
        return min([await timed(run_ffmpeg(args)) for _ in range(RUNS)])


async def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    frame = await asyncio.to_thread(source.read_bytes) if source else painting()
    animator = PanZoomAnimator()

    base = await baseline(frame)
    print(f"motion: {SECONDS:.0f} s {WIDTH}x{HEIGHT} @ {FPS} fps, best of {RUNS}")
    print(f"  {'baseline (ffmpeg still)':24} {base:6.3f} s  realtime x{SECONDS / base:5.1f}")
    worst = 0.0
    for motion in MOTIONS:
        request = AnimateRequest(
            image=Media(data=frame, mime="image/png"),
            motion=motion,
            duration_s=SECONDS,
            width=WIDTH,
            height=HEIGHT,
            fps=FPS,
        )
        wall = min([await timed(animator.animate(request)) for _ in range(RUNS)])
        worst = max(worst, wall)
        print(
            f"  {motion:24} {wall:6.3f} s  realtime x{SECONDS / wall:5.1f}"
            f"  vs baseline x{wall / base:4.2f}"
        )

    start = time.perf_counter()
    await asyncio.to_thread(load_voice)
    loaded = time.perf_counter() - start
    narrator = PiperNarrator()
    walls, spoken = [], 0.0
    for line in NARRATION:
        start = time.perf_counter()
        result = await narrator.speak(SpeechRequest(text=line))
        walls.append(time.perf_counter() - start)
        spoken += result.duration_s
    print(f"voice: load {loaded:.2f} s once per process")
    print(
        f"  6 lines, {spoken:.1f} s of speech in {sum(walls):.2f} s"
        f"  realtime x{spoken / sum(walls):5.1f}  (median line {statistics.median(walls):.3f} s)"
    )

    bed = AmbientBed()
    wall = min([await timed(bed.compose(MusicRequest(duration_s=40, seed=s))) for s in range(RUNS)])
    print(f"music: 40 s bed in {wall:.3f} s  realtime x{40 / wall:5.0f}")

    story = 6 * worst + sum(walls) + wall
    print(f"story (6 clips at the slowest motion + voice + music): {story:.2f} s of work")


if __name__ == "__main__":
    asyncio.run(main())
