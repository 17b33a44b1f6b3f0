"""Assembly speed: the parallel ffmpeg fast path against naive moviepy compositing.

Builds a 6-scene 720x1280 story (pan-and-zoom clips, ~4.5 s narrations, word timings, a music
bed) once, then times ``pipeline.render.assemble.assemble`` and, in the same process, the obvious
moviepy version of the same edit (CompositeVideoClip with the clips, crossfades and caption
images, write_videofile with the same x264 preset and CRF). The baseline's audio is a plain mix
(moviepy has no ducking); it is not what is being measured.

    python bench/bench_assemble.py [--scenes 6] [--keep DIR]

Prints ``fast_s=… video_s=… realtime=…x baseline_s=… speedup=…x``. If the baseline would take
more than ~2 minutes it runs on the first two scenes and is scaled by duration (said so).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.render.assemble import (
    AssemblySpec,
    SceneCut,
    assemble,
    ffmpeg_exe,
    plan_timeline,
    probe,
)
from pipeline.render.captions import make_cues, render_cue
from providers.base import WordTiming

W, H, FPS = 720, 1280, 24
NARRATION_S = 4.5  # + 1.0 s padding = 5.5 s scenes
LINES = [
    "A lighthouse keeper climbed the winding stairs one last time before the storm.",
    "Far below, a young whale lay stranded on the silver sand, singing softly.",
    "He carried buckets of seawater down the cliff path all through the night.",
    "At dawn the villagers came with ropes, lanterns and their own quiet songs.",
    "Together they waited for the tide to rise and lift the whale to the sea.",
    "Now every spring the whale returns, and the old keeper lights the lamp for her.",
]


def painting(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, H)[:, None, None]
    top, bottom = rng.uniform(40, 220, 3), rng.uniform(10, 120, 3)
    sky = (top * (1 - y) + bottom * y).repeat(W, axis=1).astype(np.uint8)
    img = Image.fromarray(sky)
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = rng.uniform(0, W), rng.uniform(0, H)
        r = rng.uniform(20, 160)
        color = tuple(int(c) for c in rng.uniform(0, 255, 3))
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=color)
    img.save(path)
    return path


def pan_zoom_clip(still: Path, out: Path, seconds: float) -> Path:
    frames = round(seconds * FPS)
    zoom = f"zoompan=z='1+0.15*on/{frames}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(still), "-vf",
         f"scale={W * 2}:{H * 2},{zoom}:d={frames}:s={W}x{H}:fps={FPS}",
         "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
         "-pix_fmt", "yuv420p", "-y", str(out)],
        check=True,
    )  # fmt: skip
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def voice(path: Path, text: str, seconds: float, seed: int) -> tuple[Path, list[WordTiming]]:
    """A tone that speaks in bursts, one per word, with matching word timings."""
    rate = 22050
    words = text.split()
    step = seconds / len(words)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 30 * seed
    signal = 0.25 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 5 * t))
    envelope = ((t % step) < step * 0.8).astype(float)
    timings = [
        WordTiming(text=w, start_s=i * step, end_s=i * step + step * 0.8)
        for i, w in enumerate(words)
    ]
    return write_wav(path, signal * envelope, rate), timings


def music(path: Path, seconds: float) -> Path:
    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    stereo = np.stack([chord, np.roll(chord, 200)], axis=1) * 0.4
    return write_wav(path, stereo, rate)


def build_inputs(folder: Path, scenes: int) -> list[SceneCut]:
    cuts = []
    for i in range(scenes):
        still = painting(folder / f"frame{i}.png", i)
        clip = pan_zoom_clip(still, folder / f"clip{i}.mp4", NARRATION_S + 1.0)
        wav, words = voice(folder / f"voice{i}.wav", LINES[i % len(LINES)], NARRATION_S, i)
        cuts.append(
            SceneCut(
                clip=clip,
                narration=wav,
                narration_s=NARRATION_S,
                words=words,
                caption=LINES[i % len(LINES)],
                frame=still,
            )
        )
    return cuts


def baseline(cuts: list[SceneCut], music_path: Path, folder: Path, out: Path) -> float:
    """The naive moviepy edit of the same story; returns its wall time."""
    from moviepy import (
        AudioFileClip,
        CompositeAudioClip,
        CompositeVideoClip,
        ImageClip,
        VideoFileClip,
        afx,
        vfx,
    )

    started = time.monotonic()
    slots = plan_timeline([c.narration_s for c in cuts], 0.5)
    total = slots[-1].end
    layers = []
    audio = []
    opened = []
    for i, (cut, slot) in enumerate(zip(cuts, slots, strict=True)):
        clip = VideoFileClip(str(cut.clip), audio=False)
        opened.append(clip)
        scale = max(W / clip.w, H / clip.h)
        clip = clip.resized(scale)
        clip = clip.cropped(x_center=clip.w / 2, y_center=clip.h / 2, width=W, height=H)
        clip = clip.with_effects([vfx.MultiplySpeed(final_duration=slot.length)])
        if i:
            clip = clip.with_effects([vfx.CrossFadeIn(0.5)])
        layers.append(clip.with_start(slot.start))
        for k, cue in enumerate(make_cues(cut.caption, cut.words, cut.narration_s, W, H)):
            cue.start_s += slot.narration_at
            cue.end_s += slot.narration_at
            placed = render_cue(cue, W, H, folder / f"base-cue-{i}-{k}.png")
            layers.append(
                ImageClip(str(placed.path))
                .with_start(placed.start_s)
                .with_duration(placed.end_s - placed.start_s)
                .with_position((placed.x, placed.y))
            )
        audio.append(AudioFileClip(str(cut.narration)).with_start(slot.narration_at))
    bed = AudioFileClip(str(music_path)).with_effects(
        [afx.AudioLoop(duration=total), afx.MultiplyVolume(0.2)]
    )
    video = CompositeVideoClip(layers, size=(W, H)).with_duration(total)
    video = video.with_audio(CompositeAudioClip([bed, *audio]).with_duration(total))
    video.write_videofile(
        str(out), fps=FPS, codec="libx264", preset="veryfast", audio_codec="aac",
        threads=os.cpu_count(), ffmpeg_params=["-crf", "23", "-profile:v", "high"],
        pixel_format="yuv420p", logger=None,
    )  # fmt: skip
    for clip in opened:
        clip.close()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--keep", type=Path, help="keep inputs and outputs in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-assemble-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        cuts = build_inputs(folder, args.scenes)
        bed = music(folder / "music.wav", 8.0)
        print(f"inputs: {args.scenes} scenes at {W}x{H} built in {time.monotonic() - t0:.1f} s")

        spec = AssemblySpec(
            scenes=cuts, music=bed, width=W, height=H, fps=FPS, out=folder / "fast.mp4",
            sheet=folder / "storyboard.png", title="The keeper and the whale",
        )  # fmt: skip
        t0 = time.monotonic()
        result = assemble(spec)
        fast_s = time.monotonic() - t0
        info = probe(result.video)
        video_s = result.duration_s
        print(
            f"fast path: {info.video_codec} {info.video_profile} {info.width}x{info.height} "
            f"{info.fps:g} fps + {info.audio_codec}, {result.size_bytes / 1e6:.2f} MB, "
            f"{os.cpu_count()} cores"
        )

        short = cuts[:2]
        short_s = plan_timeline([c.narration_s for c in short], 0.5)[-1].end
        full_s = plan_timeline([c.narration_s for c in cuts], 0.5)[-1].end
        t_short = baseline(short, bed, folder, folder / "baseline-short.mp4")
        estimate = t_short * full_s / short_s
        if estimate <= 120:
            baseline_s = baseline(cuts, bed, folder, folder / "baseline.mp4")
            note = "full run"
        else:
            baseline_s = estimate
            note = f"scaled from a {short_s:.1f} s run of 2 scenes ({t_short:.1f} s)"
        print(
            f"fast_s={fast_s:.2f} video_s={video_s:.2f} realtime={video_s / fast_s:.1f}x "
            f"baseline_s={baseline_s:.2f} speedup={baseline_s / fast_s:.1f}x ({note})"
        )


if __name__ == "__main__":
    main()
