"""Assembly: scene clips, narration, captions and music into one H.264/AAC MP4, plus a
contact sheet of the storyboard.

The fast path never composites the whole video in one process. The timeline is cut into scene
bodies and the short crossfade transitions between them; each piece is its own ffmpeg job
(retime, cover-crop, captions overlaid from PNGs, x264 with identical settings), run in parallel,
and the pieces are joined by the concat demuxer without re-encoding. The audio (narration placed
on the timeline, music ducked under it by an envelope computed from the same timeline) is mixed
once in numpy, encoded once to AAC, and muxed with ``-c copy``. Every length is a whole number
of frames, and the audio has exactly the video's length in samples, so the two stay in sync.

A clip that is an offline pan-and-zoom move (``providers.offline.motion.MOTION_MIME``) is not
decoded: its frames are drawn over the scene's exact length and streamed raw into the piece's
encoder, so the offline path encodes every frame once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, Field, model_validator

from pipeline.errors import StoryloomError
from pipeline.render.captions import (
    Placement,
    TextStyle,
    draw_line,
    make_cues,
    render_cue,
    text_width,
    wrap_text,
)
from providers.base import ProviderError, WordTiming
from providers.offline.ffmpeg import ffmpeg_exe, widen_pipe
from providers.offline.motion import MOTION_MIME, Move, is_move, read_move, render_move
from providers.wav import float_wav

log = logging.getLogger(__name__)

CROSSFADE_S = 0.5
LEAD_IN_S = 0.4  # silence before a scene's narration
TAIL_S = 0.6  # after it
MIN_NARRATION_GAP_S = 0.2  # crossfades never make two narrations closer than this
MAX_STRETCH = 2.0  # a clip is slowed or sped up at most this much; beyond, held or cut
PRESET = "veryfast"
CRF = 23
SAMPLE_RATE = 48_000
AUDIO_KBPS = 128
MIN_AUDIO_KBPS = 64
MIN_VIDEO_KBPS = 250
MUSIC_UNDER_DB = -20.0  # music level under narration, relative to the voice
MUSIC_GAP_DB = -12.0  # music level between narrations
DUCK_RAMP_S = 0.25
DUCK_LEAD_S = 0.1  # the music is already down when the voice starts
MUSIC_FADE_IN_S = 1.0
MUSIC_FADE_OUT_S = 2.0
STDERR_TAIL = 1200
CLIP_TYPES = [MOTION_MIME, "video/mp4"]  # what a scene's clip may be, cheapest first


class AssemblyError(StoryloomError):
    """The video could not be put together (bad input media, or ffmpeg failed)."""


class SizeCapError(AssemblyError):
    """The video cannot fit the size cap without dropping below a watchable quality."""


# --------------------------------------------------------------------------- models


class SceneCut(BaseModel):
    clip: Path
    narration: Path
    narration_s: float = Field(ge=0)
    words: list[WordTiming] = Field(default_factory=list)
    caption: str = ""
    frame: Path


class AssemblySpec(BaseModel):
    scenes: list[SceneCut] = Field(min_length=1)
    music: Path | None = None
    width: int = Field(ge=16, le=4096)
    height: int = Field(ge=16, le=4096)
    fps: int = Field(24, ge=1, le=120)
    out: Path
    sheet: Path
    title: str = ""
    size_cap_bytes: int | None = Field(None, gt=0)
    crossfade_s: float = Field(CROSSFADE_S, ge=0)
    threads: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _even(self) -> AssemblySpec:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"H.264 needs even sizes, not {self.width}x{self.height}")
        return self


class AssemblyResult(BaseModel):
    video: Path
    sheet: Path
    duration_s: float
    width: int
    height: int
    size_bytes: int
    scene_starts: list[float]


class SceneSlot(BaseModel):
    """Where one scene sits on the timeline (seconds)."""

    index: int
    start: float
    length: float
    narration_at: float

    @property
    def end(self) -> float:
        return self.start + self.length


class Segment(BaseModel):
    """One independently encoded piece of the timeline, in frames.

    A body shows frames ``first .. first + frames`` of scene ``scene``; a transition crossfades
    the last ``frames`` frames of ``scene`` (from ``first``) into the first ones of ``scene + 1``.
    """

    kind: Literal["body", "transition"]
    scene: int
    first: int
    frames: int
    start_frame: int


class MediaInfo(BaseModel):
    duration_s: float | None = None
    video_codec: str | None = None
    video_profile: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


# --------------------------------------------------------------------------- timeline (pure)


def plan_timeline(
    narration_s: Sequence[float], crossfade_s: float = CROSSFADE_S, fps: int | None = None
) -> list[SceneSlot]:
    """Each scene's slot: its narration plus a lead-in and a tail; consecutive scenes overlap by
    the crossfade (shortened if the scenes are too short for it, and never so long that two
    narrations come closer than ``MIN_NARRATION_GAP_S``). With ``fps``, every start and length
    is a whole number of frames and every scene is at least its padded narration long."""
    if not narration_s:
        raise ValueError("a timeline needs at least one scene")
    if any(not math.isfinite(n) or n < 0 for n in narration_s):
        raise ValueError("narration durations must be finite and not negative")
    lengths = [LEAD_IN_S + n + TAIL_S for n in narration_s]
    xfade = max(0.0, min(crossfade_s, LEAD_IN_S + TAIL_S - MIN_NARRATION_GAP_S))
    xfade = min(xfade, min(lengths) / 2) if len(lengths) > 1 else 0.0
    if fps is None:
        slots, t = [], 0.0
        for i, length in enumerate(lengths):
            slots.append(SceneSlot(index=i, start=t, length=length, narration_at=t + LEAD_IN_S))
            t += length - xfade
        return slots
    frames = [math.ceil(length * fps - 1e-6) for length in lengths]
    xf = min(round(xfade * fps), min(frames) // 2) if len(frames) > 1 else 0
    lead = round(LEAD_IN_S * fps)
    out, f = [], 0
    for i, n in enumerate(frames):
        out.append(SceneSlot(index=i, start=f / fps, length=n / fps, narration_at=(f + lead) / fps))
        f += n - xf
    return out


def plan_segments(slots: Sequence[SceneSlot], fps: int) -> list[Segment]:
    """Cut frame-aligned slots into bodies and transitions that tile the timeline exactly."""
    starts = [round(s.start * fps) for s in slots]
    lengths = [round(s.length * fps) for s in slots]
    n = len(slots)
    overlaps = [starts[i] + lengths[i] - starts[i + 1] for i in range(n - 1)]
    segments: list[Segment] = []
    for i in range(n):
        lo = overlaps[i - 1] if i > 0 else 0
        hi = lengths[i] - (overlaps[i] if i < n - 1 else 0)
        if hi > lo:
            segments.append(
                Segment(kind="body", scene=i, first=lo, frames=hi - lo, start_frame=starts[i] + lo)
            )
        if i < n - 1 and overlaps[i] > 0:
            segments.append(
                Segment(
                    kind="transition",
                    scene=i,
                    first=lengths[i] - overlaps[i],
                    frames=overlaps[i],
                    start_frame=starts[i + 1],
                )
            )
    return segments


def music_envelope(
    intervals: Sequence[tuple[float, float]], total_s: float, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Gain for the music bed, one value per sample: ``MUSIC_GAP_DB`` between narrations,
    ``MUSIC_UNDER_DB`` under them (starting a little before the voice), with linear ramps of
    ``DUCK_RAMP_S``, faded in at the start and out at the end."""
    control = 200  # Hz
    n_ctl = max(2, math.ceil(total_s * control) + 1)
    t = np.arange(n_ctl) / control
    db = np.full(n_ctl, MUSIC_GAP_DB)
    for a, b in intervals:
        db[(t >= a - DUCK_LEAD_S) & (t <= b + DUCK_LEAD_S)] = MUSIC_UNDER_DB
    gain = 10.0 ** (db / 20.0)
    win = max(1, round(DUCK_RAMP_S * control))
    padded = np.concatenate([np.full(win, gain[0]), gain, np.full(win, gain[-1])])
    smooth = np.convolve(padded, np.ones(win) / win, mode="same")[win:-win]
    fade_in = np.clip(t / MUSIC_FADE_IN_S, 0, 1)
    fade_out = np.clip((total_s - t) / MUSIC_FADE_OUT_S, 0, 1)
    smooth = smooth * np.sin(fade_in * np.pi / 2) ** 2 * np.sin(fade_out * np.pi / 2) ** 2
    samples = round(total_s * rate)
    result: np.ndarray = np.interp(np.arange(samples) / rate, t, smooth).astype(np.float32)
    return result


# --------------------------------------------------------------------------- ffmpeg


def _run(args: Sequence[str], what: str) -> bytes:
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *args]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:]
        raise AssemblyError(f"ffmpeg failed while {what}: {tail}")
    return proc.stdout


def _split_top(s: str) -> list[str]:
    """Split an ffmpeg stream description at commas outside parentheses and brackets."""
    parts, depth, buf = [], 0, ""
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(buf.strip())
            buf = ""
        else:
            buf += ch
    parts.append(buf.strip())
    return parts


def probe(path: Path) -> MediaInfo:
    """What ``ffmpeg -i`` says about a media file (no ffprobe is assumed)."""
    if not path.is_file():
        raise AssemblyError(f"no media file at {path}")
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)],
        capture_output=True,
        check=False,
    )
    text = proc.stderr.decode("utf-8", "replace")
    info = MediaInfo()
    if m := re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text):
        info.duration_s = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    for line in text.splitlines():
        m = re.match(r"\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)", line)
        if not m:
            continue
        parts = _split_top(m[2])
        if m[1] == "Video" and info.video_codec is None:
            info.video_codec = parts[0].split()[0]
            if prof := re.search(r"\(([^)/]+)\)", parts[0]):
                info.video_profile = prof[1].strip()
            for part in parts[1:]:
                if info.pix_fmt is None and re.match(r"[a-z0-9_]+(\(|$)", part):
                    info.pix_fmt = re.split(r"[(\s]", part)[0]
                if size := re.match(r"(\d+)x(\d+)", part):
                    info.width, info.height = int(size[1]), int(size[2])
                if rate := re.match(r"([\d.]+)(k?) fps", part):
                    info.fps = float(rate[1]) * (1000 if rate[2] else 1)
        elif m[1] == "Audio" and info.audio_codec is None:
            info.audio_codec = parts[0].split()[0]
            for part in parts[1:]:
                if hz := re.match(r"(\d+) Hz", part):
                    info.sample_rate = int(hz[1])
                layout = part.split("(")[0].strip()
                named = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6}
                if layout in named:
                    info.channels = named[layout]
                elif ch := re.match(r"(\d+) channels", part):
                    info.channels = int(ch[1])
    if info.duration_s is None and info.video_codec is None and info.audio_codec is None:
        tail = text.strip()[-STDERR_TAIL:]
        raise AssemblyError(f"ffmpeg cannot read {path.name}: {tail}")
    return info


def decode_audio(path: Path, channels: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any audio file as float32 samples, shape (n, channels), resampled by ffmpeg."""
    raw = _run(
        ["-i", str(path), "-vn", "-f", "f32le", "-ac", str(channels), "-ar", str(rate), "-"],
        f"reading {path.name}",
    )
    return np.frombuffer(raw, dtype="<f4").reshape(-1, channels)


def _x264_args(fps: int, threads: int) -> list[str]:
    return [
        "-c:v", "libx264",
        "-preset", PRESET,
        "-profile:v", "high",
        "-pix_fmt", "yuv420p",
        "-g", str(2 * fps),
        "-threads", str(threads),
        "-video_track_timescale", str(90_000 if 90_000 % fps == 0 else fps * 1000),
    ]  # fmt: skip


# --------------------------------------------------------------------------- pieces


class _Plan(BaseModel):
    spec: AssemblySpec
    slots: list[SceneSlot]
    clip_s: list[float]
    cues: list[Placement]
    moves: list[Move | None]

    def scene_frames(self, i: int) -> int:
        return round(self.slots[i].length * self.spec.fps)


def _source_chain(plan: _Plan, scene: int, first: int, count: int, index: int, label: str) -> str:
    spec = plan.spec
    if plan.moves[scene] is not None:  # drawn at the output size, exactly the frames asked for
        return f"[{index}:v]setsar=1,setpts=PTS-STARTPTS[{label}]"
    w, h, fps = spec.width, spec.height, spec.fps
    factor = plan.slots[scene].length / max(plan.clip_s[scene], 1 / fps)
    factor = min(max(factor, 1 / MAX_STRETCH), MAX_STRETCH)
    return (
        f"[{index}:v]scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,"
        f"crop={w}:{h},setsar=1,setpts={factor:.6f}*(PTS-STARTPTS),fps={fps},"
        f"tpad=stop=-1:stop_mode=clone,trim=start_frame={first}:end_frame={first + count},"
        f"setpts=PTS-STARTPTS[{label}]"
    )


def _input_args(plan: _Plan, scene: int, first: int, count: int, raw: str = "") -> list[str]:
    """Read a clip only as far as the piece needs (the rest is never decoded); a drawn move is
    read as raw BT.709 frames from ``raw`` (a file, or ``pipe:0``)."""
    spec = plan.spec
    if raw:
        return [
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{spec.width}x{spec.height}",
            "-framerate", str(spec.fps), "-colorspace", "bt709", "-color_primaries", "bt709",
            "-color_trc", "bt709", "-color_range", "tv", "-i", raw,
        ]  # fmt: skip
    factor = plan.slots[scene].length / max(plan.clip_s[scene], 1 / spec.fps)
    factor = min(max(factor, 1 / MAX_STRETCH), MAX_STRETCH)
    need = (first + count) / spec.fps / factor + 0.5
    return ["-threads", "1", "-t", f"{need:.3f}", "-i", str(plan.spec.scenes[scene].clip)]


def _sources(seg: Segment) -> list[tuple[int, int, int]]:
    """(scene, first frame, frames) of each scene a piece shows."""
    if seg.kind == "body":
        return [(seg.scene, seg.first, seg.frames)]
    return [(seg.scene, seg.first, seg.frames), (seg.scene + 1, 0, seg.frames)]


def _segment_args(plan: _Plan, seg: Segment, out: Path, raw: Sequence[str] = ("", "")) -> list[str]:
    spec = plan.spec
    fps = spec.fps
    args: list[str] = []
    graph: list[str] = []
    args += _input_args(plan, seg.scene, seg.first, seg.frames, raw[0])
    graph.append(_source_chain(plan, seg.scene, seg.first, seg.frames, 0, "a"))
    n_inputs = 1
    label = "a"
    if seg.kind == "transition":
        args += _input_args(plan, seg.scene + 1, 0, seg.frames, raw[1])
        graph.append(_source_chain(plan, seg.scene + 1, 0, seg.frames, 1, "b"))
        graph.append(f"[a][b]xfade=transition=fade:duration={seg.frames / fps:.6f}:offset=0[x]")
        n_inputs, label = 2, "x"
    t0 = seg.start_frame / fps
    t1 = (seg.start_frame + seg.frames) / fps
    for k, cue in enumerate(c for c in plan.cues if c.start_s < t1 and c.end_s > t0):
        args += ["-i", str(cue.path)]
        a, b = max(0.0, cue.start_s - t0), cue.end_s - t0
        nxt = f"c{k}"
        graph.append(
            f"[{label}][{n_inputs}:v]overlay=x={cue.x}:y={cue.y}:"
            f"enable='gte(t,{a:.4f})*lt(t,{b:.4f})'[{nxt}]"
        )
        n_inputs += 1
        label = nxt
    graph.append(f"[{label}]format=yuv420p[v]")
    return [
        *args,
        "-filter_threads", "1",
        "-filter_complex", ";".join(graph),
        "-map", "[v]",
        "-frames:v", str(seg.frames),
        "-an",
        *_x264_args(fps, 1),
        "-crf", str(CRF),
        "-y", str(out),
    ]  # fmt: skip


def _move_frames(plan: _Plan, scene: int, first: int, count: int) -> Generator[bytes]:
    move = plan.moves[scene]
    assert move is not None
    found = read_move(plan.spec.scenes[scene].clip.read_bytes())
    if found is None:
        raise AssemblyError(f"scene {scene + 1}'s move cannot be read")
    spec = plan.spec
    try:
        yield from render_move(
            found[1], move.motion, spec.width, spec.height, plan.scene_frames(scene), first, count
        )
    except ProviderError as err:
        raise AssemblyError(f"scene {scene + 1}'s frame cannot be drawn: {err}") from err


def _encode_segment(plan: _Plan, seg: Segment, out: Path, what: str) -> None:
    """Encode one piece. Drawn moves are streamed into ffmpeg's standard input (the first one)
    or written as raw frames beside the piece (the second scene of a crossfade: a few frames)."""
    raw, feed = ["", ""], None
    for j, (scene, first, count) in enumerate(_sources(seg)):
        if plan.moves[scene] is None:
            continue
        if feed is None:
            raw[j], feed = "pipe:0", _move_frames(plan, scene, first, count)
            continue
        raw[j] = str(out.with_suffix(f".{j}.yuv"))
        with open(raw[j], "wb") as f:
            for frame in _move_frames(plan, scene, first, count):
                f.write(frame)
    args = _segment_args(plan, seg, out, raw)
    if feed is None:
        _run(args, what)
        return
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *args]
    cmd.remove("-nostdin")  # it reads the frames from standard input
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        widen_pipe(proc.stdin.fileno())  # a whole frame in one write: drawing overlaps encoding
        try:
            for frame in feed:
                proc.stdin.write(frame)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading: its exit code and stderr say why
        finally:
            feed.close()
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            code = proc.wait()
        if code != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip()[-STDERR_TAIL:]
            raise AssemblyError(f"ffmpeg failed while {what}: {tail}")


def mix_audio(spec: AssemblySpec, slots: Sequence[SceneSlot], total_s: float) -> np.ndarray:
    """The whole soundtrack, stereo float32 at ``SAMPLE_RATE``: each narration at its place on
    the timeline, the music bed looped to length and ducked under the voice."""
    n = round(total_s * SAMPLE_RATE)
    voice = np.zeros(n, dtype=np.float32)
    intervals = []
    for cut, slot in zip(spec.scenes, slots, strict=True):
        samples = decode_audio(cut.narration, 1)[:, 0]
        at = round(slot.narration_at * SAMPLE_RATE)
        end = min(n, at + len(samples))
        if end > at:
            voice[at:end] += samples[: end - at]
        intervals.append((slot.narration_at, slot.narration_at + len(samples) / SAMPLE_RATE))
    mix = np.repeat(voice[:, None], 2, axis=1)
    if spec.music is not None:
        music = decode_audio(spec.music, 2)
        if len(music):
            music = np.tile(music, (math.ceil(n / len(music)), 1))[:n]
            spoken = voice[np.abs(voice) > 1e-3]
            ref = float(np.sqrt(np.mean(spoken**2))) if len(spoken) > SAMPLE_RATE // 10 else 0.0
            ref = ref if ref > 1e-3 else 10 ** (-20 / 20)  # silent narration: a -20 dBFS voice
            level = float(np.sqrt(np.mean(music**2)))
            if level > 1e-6:
                music = music * (ref / level)
                mix += music * music_envelope(intervals, total_s)[:n, None]
    peak = float(np.abs(mix).max()) if n else 0.0
    if peak > 0.98:
        mix *= 0.98 / peak
    result: np.ndarray = mix.astype(np.float32)
    return result


def _audio_job(spec: AssemblySpec, slots: list[SceneSlot], total_s: float, work: Path) -> Path:
    wav = work / "mix.wav"
    wav.write_bytes(float_wav(mix_audio(spec, slots, total_s), SAMPLE_RATE))
    return _encode_audio(wav, work / "audio.m4a", AUDIO_KBPS)


def _encode_audio(wav: Path, out: Path, kbps: int) -> Path:
    _run(
        ["-i", str(wav), "-c:a", "aac", "-b:a", f"{kbps}k", "-ar", str(SAMPLE_RATE), "-ac", "2",
         "-y", str(out)],
        "encoding the soundtrack",
    )  # fmt: skip
    return out


def _concat_list(paths: Sequence[Path], frames: Sequence[int], fps: int, out: Path) -> Path:
    lines = ["ffconcat version 1.0"]
    for p, n in zip(paths, frames, strict=True):
        quoted = str(p).replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {n / fps:.6f}"]
    out.write_text("\n".join(lines) + "\n")
    return out


def _mux(concat: Path, audio: Path, title: str, out: Path) -> None:
    _run(
        ["-f", "concat", "-safe", "0", "-i", str(concat), "-i", str(audio),
         "-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-movflags", "+faststart",
         "-metadata", f"title={title}", "-y", str(out)],
        "joining the scenes",
    )  # fmt: skip


def _fit_to_cap(
    spec: AssemblySpec, concat: Path, work: Path, total_s: float, size: int, threads: int
) -> int:
    """Re-encode the joined video with two-pass x264 at a bitrate computed from the cap."""
    cap = spec.size_cap_bytes
    assert cap is not None
    audio_kbps = AUDIO_KBPS
    audio = work / "audio.m4a"
    budget_kbps = cap * 8 * 0.97 / total_s / 1000
    video_kbps = budget_kbps - audio_kbps
    if video_kbps < MIN_VIDEO_KBPS:
        audio_kbps = MIN_AUDIO_KBPS
        audio = _encode_audio(work / "mix.wav", work / "audio-low.m4a", audio_kbps)
        video_kbps = budget_kbps - audio_kbps
    audio_bytes = audio.stat().st_size
    for attempt in range(3):
        if video_kbps < MIN_VIDEO_KBPS:
            break
        rate = ["-b:v", f"{int(video_kbps)}k"]
        log_prefix = str(work / f"x264-{attempt}")
        common = ["-f", "concat", "-safe", "0", "-i", str(concat)]
        x264 = _x264_args(spec.fps, threads)
        _run(
            [*common, "-map", "0:v:0", *x264, *rate, "-pass", "1", "-passlogfile", log_prefix,
             "-an", "-f", "null", "-"],
            "fitting the size cap (pass 1)",
        )  # fmt: skip
        out = work / "capped.mp4"
        _run(
            [*common, "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", *x264, *rate,
             "-pass", "2", "-passlogfile", log_prefix, "-c:a", "copy",
             "-movflags", "+faststart", "-metadata", f"title={spec.title}", "-y", str(out)],
            "fitting the size cap (pass 2)",
        )  # fmt: skip
        size = out.stat().st_size
        log.info("size cap attempt", extra={"kbps": int(video_kbps), "bytes": size, "cap": cap})
        if size <= cap:
            os.replace(out, work / "joined.mp4")
            return size
        video_bytes = max(1, size - audio_bytes)
        video_kbps *= max(0.5, (cap * 0.97 - audio_bytes) / video_bytes)
    mb = cap / 1_000_000
    raise SizeCapError(
        f"a {total_s:.0f} s video cannot fit in {mb:.1f} MB without dropping below "
        f"{MIN_VIDEO_KBPS} kb/s; allow a larger file or tell a shorter story"
    )


def _render_cues(spec: AssemblySpec, slots: list[SceneSlot], work: Path) -> list[Placement]:
    placements = []
    total = slots[-1].end
    for i, (cut, slot) in enumerate(zip(spec.scenes, slots, strict=True)):
        limit = slots[i + 1].narration_at if i + 1 < len(slots) else total
        cues = make_cues(cut.caption, cut.words, cut.narration_s, spec.width, spec.height)
        for k, cue in enumerate(cues):
            cue.start_s = slot.narration_at + cue.start_s
            cue.end_s = min(slot.narration_at + cue.end_s, limit)
            if cue.end_s <= cue.start_s:
                continue
            out = work / f"cue-{i:02d}-{k:02d}.png"
            placements.append(render_cue(cue, spec.width, spec.height, out))
    return placements


def _move_of(clip: Path) -> Move | None:
    if not is_move(clip):
        return None
    found = read_move(clip.read_bytes())
    if found is None:
        raise AssemblyError(f"{clip.name} is not a readable pan-and-zoom move")
    return found[0]


def assemble(spec: AssemblySpec) -> AssemblyResult:
    """Build the final video and the contact sheet. Synchronous and CPU-heavy: call it in a
    thread; it runs its ffmpeg jobs in parallel (``spec.threads`` at once, 0 = every core)."""
    started = time.monotonic()
    threads = spec.threads or os.cpu_count() or 2
    fps = spec.fps
    for cut in spec.scenes:
        for p in (cut.clip, cut.narration):
            if not p.is_file():
                raise AssemblyError(f"missing media for assembly: {p.name}")
    slots = plan_timeline([c.narration_s for c in spec.scenes], spec.crossfade_s, fps)
    segments = plan_segments(slots, fps)
    total_frames = round(slots[-1].end * fps)
    total_s = total_frames / fps
    spec.out.parent.mkdir(parents=True, exist_ok=True)
    spec.sheet.parent.mkdir(parents=True, exist_ok=True)

    with (
        tempfile.TemporaryDirectory(dir=spec.out.parent, prefix=".assemble-") as tmp,
        ThreadPoolExecutor(max_workers=threads) as pool,
    ):
        work = Path(tmp)
        audio_job = pool.submit(_audio_job, spec, slots, total_s, work)
        moves = [_move_of(c.clip) for c in spec.scenes]
        probed = pool.map(probe, [c.clip for c, m in zip(spec.scenes, moves, strict=True) if not m])
        clip_s = [m.duration_s if m else (next(probed).duration_s or 0.0) for m in moves]
        plan = _Plan(
            spec=spec, slots=slots, clip_s=clip_s, cues=_render_cues(spec, slots, work), moves=moves
        )
        paths = [work / f"seg-{k:03d}.mp4" for k in range(len(segments))]
        jobs: list[Future[None]] = []
        for k in sorted(range(len(segments)), key=lambda k: -segments[k].frames):
            what = f"encoding piece {k + 1} of {len(segments)}"
            jobs.append(pool.submit(_encode_segment, plan, segments[k], paths[k], what))
        sheet_job = pool.submit(
            contact_sheet,
            [c.frame for c in spec.scenes],
            [c.caption for c in spec.scenes],
            spec.title,
            spec.sheet,
        )
        try:
            for job in jobs:
                job.result()
            sheet_job.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        encoded_s = time.monotonic() - started
        concat = _concat_list(paths, [s.frames for s in segments], fps, work / "pieces.ffconcat")
        joined = work / "joined.mp4"
        _mux(concat, audio_job.result(), spec.title, joined)
        size = joined.stat().st_size
        if spec.size_cap_bytes is not None and size > spec.size_cap_bytes:
            size = _fit_to_cap(spec, concat, work, total_s, size, threads)
        os.replace(joined, spec.out)

    log.info(
        "assembled",
        extra={
            "scenes": len(spec.scenes),
            "pieces": len(segments),
            "duration_s": round(total_s, 3),
            "bytes": size,
            "encode_s": round(encoded_s, 2),
            "total_s": round(time.monotonic() - started, 2),
        },
    )
    return AssemblyResult(
        video=spec.out,
        sheet=spec.sheet,
        duration_s=total_s,
        width=spec.width,
        height=spec.height,
        size_bytes=size,
        scene_starts=[s.start for s in slots],
    )


# --------------------------------------------------------------------------- contact sheet

_SHEET_BG = (22, 22, 28, 255)
_SHEET_TEXT = (236, 236, 240, 255)
_SHEET_ACCENT = (255, 196, 64, 255)


def _sheet_columns(n: int, portrait: bool) -> int:
    if n <= 3:
        return max(1, n)
    if n == 4:
        return 2 if not portrait else 4
    if n <= 6 or (n <= 9 and not portrait):
        return 3
    return 4 if portrait or n > 9 else 3


def _clamp_lines(text: str, width: int, px: int, max_lines: int, weight: int) -> list[str]:
    lines = wrap_text(text, width, px, weight)
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    last = kept[-1]
    while last and text_width(last + "…", px, weight) > width:
        last = last[:-1].rstrip()
    kept[-1] = last + "…"
    return kept


def contact_sheet(frames: list[Path], captions: list[str], title: str, out: Path) -> Path:
    """The storyboard as one PNG: the title, then the picked frames in a grid, numbered, each
    with the start of its narration under it."""
    images: list[Image.Image] = []
    for f in frames:
        try:
            with Image.open(f) as im:
                images.append(im.convert("RGB"))
        except (OSError, ValueError):
            images.append(Image.new("RGB", (9, 16), (60, 60, 70)))
    n = len(images)
    aspect = images[0].height / images[0].width if images else 16 / 9
    portrait = aspect > 1.1
    cols = _sheet_columns(n, portrait)
    rows = max(1, math.ceil(n / cols))
    thumb_w = 280 if portrait else (360 if aspect > 0.9 else 400)
    thumb_h = round(thumb_w * aspect)
    gap, margin = 24, 40
    cap_px = 19
    cap_style = TextStyle(px=cap_px, weight=500, fill=_SHEET_TEXT, stroke_px=0, shadow=(0, 0, 0, 0))
    cap_h = 2 * cap_style.line_px + 12
    sheet_w = 2 * margin + cols * thumb_w + (cols - 1) * gap
    title_style = TextStyle(px=40, fill=_SHEET_TEXT, stroke_px=0, shadow=(0, 0, 0, 0))
    title_lines = _clamp_lines(title or "Storyboard", sheet_w - 2 * margin, 40, 2, 700)
    title_h = len(title_lines) * title_style.line_px + 24
    sheet_h = margin + title_h + rows * (thumb_h + cap_h + gap) - gap + margin
    sheet = Image.new("RGBA", (sheet_w, sheet_h), _SHEET_BG)
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(title_lines):
        draw_line(sheet, line, sheet_w / 2, margin + i * title_style.line_px + 40, title_style)
    top = margin + title_h
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        in_row = min(cols, n - r * cols)
        row_left = margin + (cols - in_row) * (thumb_w + gap) // 2
        x = row_left + c * (thumb_w + gap)
        y = top + r * (thumb_h + cap_h + gap)
        scale = max(thumb_w / img.width, thumb_h / img.height)
        resized = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        left = (resized.width - thumb_w) // 2
        upper = (resized.height - thumb_h) // 2
        sheet.paste(resized.crop((left, upper, left + thumb_w, upper + thumb_h)), (x, y))
        badge = 34
        draw.ellipse((x + 8, y + 8, x + 8 + badge, y + 8 + badge), fill=_SHEET_ACCENT)
        num_style = TextStyle(px=20, fill=(20, 20, 20, 255), stroke_px=0, shadow=(0, 0, 0, 0))
        draw_line(sheet, str(k + 1), x + 8 + badge / 2, y + 8 + badge / 2 + 7, num_style)
        text = captions[k] if k < len(captions) else ""
        lines = _clamp_lines(" ".join(text.split()), thumb_w, cap_px, 2, 500)
        for i, line in enumerate(lines):
            baseline = y + thumb_h + 8 + i * cap_style.line_px + cap_px
            draw_line(sheet, line, x + thumb_w / 2, baseline, cap_style)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    sheet.convert("RGB").save(tmp, format="PNG", optimize=False)
    os.replace(tmp, out)
    return out


__all__ = [
    "CLIP_TYPES",
    "CROSSFADE_S",
    "AssemblyError",
    "AssemblyResult",
    "AssemblySpec",
    "MediaInfo",
    "SceneCut",
    "SceneSlot",
    "Segment",
    "SizeCapError",
    "assemble",
    "contact_sheet",
    "plan_segments",
    "plan_timeline",
    "probe",
]
