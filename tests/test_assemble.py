"""Assembly: the timeline (pure), and real encodes checked by probing and decoding the result."""

from __future__ import annotations

import asyncio
import io
import itertools
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import StoryloomError
from pipeline.render.assemble import (
    LEAD_IN_S,
    MIN_NARRATION_GAP_S,
    MUSIC_GAP_DB,
    MUSIC_UNDER_DB,
    TAIL_S,
    AssemblyError,
    AssemblyResult,
    AssemblySpec,
    SceneCut,
    SizeCapError,
    assemble,
    contact_sheet,
    decode_audio,
    ffmpeg_exe,
    music_envelope,
    plan_segments,
    plan_timeline,
    probe,
)
from pipeline.render.captions import make_cues, safe_area
from providers.base import AnimateRequest, Media, WordTiming
from providers.offline.motion import MOTION_MIME, PanZoomAnimator, render_move

FPS = 24

# --------------------------------------------------------------------------- timeline (pure)


def test_scene_length_is_narration_plus_padding_and_scenes_overlap_by_the_crossfade() -> None:
    slots = plan_timeline([3.0, 4.5, 2.0], 0.5)
    assert [s.length for s in slots] == pytest.approx([4.0, 5.5, 3.0])
    assert [s.start for s in slots] == pytest.approx([0.0, 3.5, 8.5])
    assert [s.narration_at - s.start for s in slots] == pytest.approx([LEAD_IN_S] * 3)
    for a, b in itertools.pairwise(slots):
        assert a.end - b.start == pytest.approx(0.5)
    assert slots[-1].end == pytest.approx(11.5)


def test_timeline_is_pure_and_frame_exact_with_fps() -> None:
    narration = [2.31, 5.07, 3.333]
    assert plan_timeline(narration, 0.5, FPS) == plan_timeline(narration, 0.5, FPS)
    slots = plan_timeline(narration, 0.5, FPS)
    for s, n in zip(slots, narration, strict=True):
        assert (s.start * FPS) == pytest.approx(round(s.start * FPS))
        assert (s.length * FPS) == pytest.approx(round(s.length * FPS))
        assert s.length >= n + LEAD_IN_S + TAIL_S  # rounding never cuts the narration short
        assert s.length < n + LEAD_IN_S + TAIL_S + 1 / FPS


def test_crossfade_never_brings_narrations_closer_than_the_minimum_gap() -> None:
    slots = plan_timeline([1.0, 1.0, 1.0], 5.0)
    narr = [1.0] * 3
    for (a, na), b in zip(zip(slots, narr, strict=True), slots[1:], strict=False):
        assert b.narration_at - (a.narration_at + na) >= MIN_NARRATION_GAP_S - 1e-9
        assert a.end > b.start  # still a crossfade


def test_single_scene_and_bad_input() -> None:
    (only,) = plan_timeline([2.0], 0.5)
    assert only.start == 0 and only.length == pytest.approx(3.0)
    with pytest.raises(ValueError):
        plan_timeline([], 0.5)
    with pytest.raises(ValueError):
        plan_timeline([1.0, -1.0], 0.5)


@pytest.mark.parametrize("narration", [[2.0, 2.0, 2.0], [0.1, 7.3, 0.0, 3.2], [4.0]])
def test_segments_tile_the_timeline_exactly(narration: list[float]) -> None:
    slots = plan_timeline(narration, 0.5, FPS)
    segments = plan_segments(slots, FPS)
    total = round(slots[-1].end * FPS)
    assert sum(s.frames for s in segments) == total
    frame = 0
    for seg in segments:
        assert seg.start_frame == frame and seg.frames > 0
        frame += seg.frames
    assert sum(s.kind == "transition" for s in segments) == len(narration) - 1


def test_music_envelope_ducks_under_narration_and_fades_at_the_ends() -> None:
    rate = 1000
    env = music_envelope([(2.0, 4.0), (6.0, 8.0)], 10.0, rate)
    assert len(env) == 10 * rate
    db = 20 * np.log10(np.maximum(env, 1e-9))
    assert db[3000] == pytest.approx(MUSIC_UNDER_DB, abs=0.1)
    assert db[5000] == pytest.approx(MUSIC_GAP_DB, abs=0.1)
    assert env[0] == pytest.approx(0, abs=1e-3) and env[-1] == pytest.approx(0, abs=1e-3)
    assert np.abs(np.diff(db[1500:9000])).max() < 0.1  # ramps, not steps (per ms)


# --------------------------------------------------------------------------- media helpers


def make_clip(path: Path, source: str, w: int, h: int, seconds: float, post: str = "") -> Path:
    sep = ":" if "=" in source else "="
    graph = f"{source}{sep}s={w}x{h}:r={FPS}:d={seconds}{post}"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", graph,
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", str(path)],
        check=True,
    )  # fmt: skip
    return path


def make_wav(path: Path, seconds: float, freq: float, amp: float = 0.3, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (amp * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def make_png(path: Path, color: str, w: int, h: int) -> Path:
    Image.new("RGB", (w, h), color).save(path)
    return path


def timings(text: str, step: float = 0.35, start: float = 0.1) -> list[WordTiming]:
    return [
        WordTiming(text=w, start_s=start + i * step, end_s=start + i * step + step * 0.9)
        for i, w in enumerate(text.split())
    ]


def frames_rgb(path: Path, indices: list[int], w: int, h: int) -> list[np.ndarray]:
    select = "+".join(f"eq(n\\,{i})" for i in indices)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select={select}",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    arr = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    assert len(arr) == len(indices)
    return list(arr)


def count_frames(path: Path) -> int:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", "scale=8:8",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return len(raw) // 64


def top_level_boxes(path: Path) -> list[str]:
    boxes, data = [], path.read_bytes()
    at = 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        elif size == 0:
            size = len(data) - at
        boxes.append(kind)
        at += size
    return boxes


def white_in_bottom_third(frame: np.ndarray) -> int:
    h = frame.shape[0]
    region = frame[int(h * 2 / 3) : int(h * 0.88)].astype(int)
    return int((region.min(axis=2) > 225).sum())


COLORS = [("red", (255, 0, 0)), ("green", (0, 128, 0)), ("blue", (0, 0, 255))]
CAPTION = "The keeper climbs the stairs to light the lamp"


def story_inputs(
    folder: Path, w: int, h: int, *, clip_seconds: list[float], narration: list[float],
    noise: bool = False, silent: bool = False,
) -> list[SceneCut]:  # fmt: skip
    cuts = []
    for i, ((name, _), clip_s, narr_s) in enumerate(
        zip(COLORS, clip_seconds, narration, strict=True)
    ):
        source, post = ("testsrc2", ",noise=alls=80:allf=t") if noise else (f"color=c={name}", "")
        cuts.append(
            SceneCut(
                clip=make_clip(folder / f"clip{i}.mp4", source, 480, 480, clip_s, post),
                narration=make_wav(
                    folder / f"voice{i}.wav", narr_s, 220 + 110 * i, 0.0 if silent else 0.3
                ),
                narration_s=narr_s,
                words=timings(CAPTION),
                caption=CAPTION,
                frame=make_png(folder / f"frame{i}.png", name, w // 4, h // 4),
            )
        )
    return cuts


# --------------------------------------------------------------------------- a small story


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssemblySpec, AssemblyResult]:
    folder = tmp_path_factory.mktemp("small")
    # Clip lengths vs scene lengths: stretched 1.5x, held (6x too short), compressed (cut).
    cuts = story_inputs(folder, 360, 640, clip_seconds=[2, 1, 8], narration=[2.0, 5.0, 2.5])
    spec = AssemblySpec(
        scenes=cuts,
        music=make_wav(folder / "music.wav", 1.7, 523.0, 0.5, 44100),
        width=360,
        height=640,
        fps=FPS,
        out=folder / "out" / "story.mp4",
        sheet=folder / "out" / "storyboard.png",
        title="The keeper and the whale",
    )
    return spec, assemble(spec)


@pytest.mark.slow
def test_output_is_h264_high_yuv420p_with_stereo_aac_at_the_asked_size(
    small: tuple[AssemblySpec, AssemblyResult],
) -> None:
    spec, result = small
    info = probe(result.video)
    assert (info.video_codec, info.video_profile, info.pix_fmt) == ("h264", "High", "yuv420p")
    assert (info.width, info.height, info.fps) == (360, 640, 24.0)
    assert (info.audio_codec, info.channels) == ("aac", 2)
    assert info.sample_rate in (44100, 48000)
    assert result.video == spec.out and result.size_bytes == spec.out.stat().st_size
    assert not list(spec.out.parent.glob(".assemble-*"))  # work files cleaned up


@pytest.mark.slow
def test_duration_matches_the_timeline_and_audio_matches_video(
    small: tuple[AssemblySpec, AssemblyResult],
) -> None:
    spec, result = small
    slots = plan_timeline([c.narration_s for c in spec.scenes], spec.crossfade_s, FPS)
    frames = count_frames(result.video)
    assert frames == round(slots[-1].end * FPS)
    assert result.duration_s == pytest.approx(frames / FPS)
    assert result.scene_starts == pytest.approx([s.start for s in slots])
    audio_s = len(decode_audio(result.video, 2)) / 48000
    assert audio_s == pytest.approx(frames / FPS, abs=1 / FPS)
    assert probe(result.video).duration_s == pytest.approx(frames / FPS, abs=1 / FPS)


@pytest.mark.slow
def test_joined_pieces_have_clean_timestamps(small: tuple[AssemblySpec, AssemblyResult]) -> None:
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(small[1].video), "-map", "0:v", "-c", "copy",
         "-f", "framecrc", "-"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    tick = 90_000 // FPS
    rows = [line.split(",") for line in out.splitlines() if not line.startswith("#")]
    dts = [int(r[1]) for r in rows]
    pts = sorted(int(r[2]) for r in rows)
    assert pts == [i * tick for i in range(len(rows))]  # every frame once, evenly spaced
    assert all(b > a for a, b in itertools.pairwise(dts))


@pytest.mark.slow
def test_faststart_puts_the_index_before_the_media(
    small: tuple[AssemblySpec, AssemblyResult],
) -> None:
    boxes = top_level_boxes(small[1].video)
    assert boxes.index("moov") < boxes.index("mdat")


@pytest.mark.slow
def test_captions_show_while_a_cue_is_on_and_not_before(
    small: tuple[AssemblySpec, AssemblyResult],
) -> None:
    spec, result = small
    slot = plan_timeline([c.narration_s for c in spec.scenes], spec.crossfade_s, FPS)[1]
    cue = make_cues(CAPTION, timings(CAPTION), 5.0, 360, 640)[0]
    on = round((slot.narration_at + cue.start_s + 0.2) * FPS)
    off = 2  # the lead-in of scene 1: nothing is said yet
    before, during = frames_rgb(result.video, [off, on], 360, 640)
    assert white_in_bottom_third(before) == 0
    assert white_in_bottom_third(during) > 150
    area = safe_area(360, 640)
    cols = np.nonzero((during.min(axis=2) > 225).any(axis=0))[0]
    assert cols.min() >= area.x - 4 and cols.max() <= area.right + 4


@pytest.mark.slow
def test_crossfade_mixes_both_scenes(small: tuple[AssemblySpec, AssemblyResult]) -> None:
    spec, result = small
    slots = plan_timeline([c.narration_s for c in spec.scenes], spec.crossfade_s, FPS)
    mid = round((slots[1].start + slots[0].end) / 2 * FPS)
    just_before = round(slots[1].start * FPS) - 1
    fade, red = frames_rgb(result.video, [just_before, mid], 360, 640)[::-1]
    r, g, b = fade[100:300, 100:260].reshape(-1, 3).mean(axis=0)
    assert 70 < r < 190 and 25 < g < 105 and b < 40  # half red, half green
    assert red[100:300, 100:260, 0].mean() > 230 and red[100:300, 100:260, 1].mean() < 30


@pytest.mark.slow
def test_contact_sheet_of_the_story(small: tuple[AssemblySpec, AssemblyResult]) -> None:
    result = small[1]
    sheet = np.asarray(Image.open(result.sheet).convert("RGB")).astype(int)
    for _, rgb in COLORS:
        assert (np.abs(sheet - np.array(rgb)).sum(axis=2) < 30).sum() > 5000


@pytest.mark.parametrize("n", [3, 7, 12])
def test_contact_sheet_layout_stays_readable(n: int, tmp_path: Path) -> None:
    colors = [(20 * i, 200 - 10 * i, 128) for i in range(n)]
    frames = [make_png(tmp_path / f"f{i}.png", "#{:02x}{:02x}{:02x}".format(*c), 72, 128)
              for i, c in enumerate(colors)]  # fmt: skip
    captions = [f"Scene {i} where something rather long happens to the keeper" for i in range(n)]
    out = contact_sheet(frames, captions, "The keeper and the whale", tmp_path / "sheet.png")
    w, h = Image.open(out).size
    assert 600 <= w <= 1600 and h <= 2600
    assert 0.4 < w / h < 2.5


# --------------------------------------------------------------------------- audio


@pytest.mark.slow
def test_music_is_ducked_under_narration(tmp_path: Path) -> None:
    cuts = story_inputs(
        tmp_path, 160, 288, clip_seconds=[1, 1, 1], narration=[2.0, 2.0, 2.0], silent=True
    )
    spec = AssemblySpec(
        scenes=cuts,
        music=make_wav(tmp_path / "music.wav", 3.0, 440.0, 0.5, 44100),
        width=160,
        height=288,
        out=tmp_path / "ducked.mp4",
        sheet=tmp_path / "sheet.png",
        title="t",
        crossfade_s=0.0,  # one second between narrations
    )
    result = assemble(spec)
    audio = decode_audio(result.video, 1)[:, 0]
    slots = plan_timeline([2.0] * 3, 0.0, FPS)

    def rms_db(a: float, b: float) -> float:
        part = audio[int(a * 48000) : int(b * 48000)]
        return float(20 * np.log10(np.sqrt(np.mean(part**2))))

    gap_mid = (slots[0].narration_at + 2.0 + slots[1].narration_at) / 2
    under = rms_db(slots[1].narration_at + 0.5, slots[1].narration_at + 1.5)
    gap = rms_db(gap_mid - 0.1, gap_mid + 0.1)
    assert gap - under == pytest.approx(MUSIC_GAP_DB - MUSIC_UNDER_DB, abs=1.5)
    assert rms_db(0.0, 0.05) < under - 6  # faded in


# --------------------------------------------------------------------------- size cap


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> list[SceneCut]:
    folder = tmp_path_factory.mktemp("noisy")
    return story_inputs(
        folder, 360, 640, clip_seconds=[2, 2, 2], narration=[1.6, 1.6, 1.6], noise=True
    )


@pytest.mark.slow
def test_size_cap_is_honoured(noisy: list[SceneCut], tmp_path: Path) -> None:
    spec = AssemblySpec(
        scenes=noisy,
        music=None,
        width=360,
        height=640,
        out=tmp_path / "capped.mp4",
        sheet=tmp_path / "sheet.png",
        title="noise",
        size_cap_bytes=500_000,
    )
    uncapped = assemble(spec.model_copy(update={"size_cap_bytes": None, "out": tmp_path / "u.mp4"}))
    assert uncapped.size_bytes > 1_000_000  # the cap really forces a re-encode
    result = assemble(spec)
    assert result.size_bytes <= 500_000 == spec.size_cap_bytes
    assert result.size_bytes > 250_000  # used the room it had, not a blind minimum
    info = probe(result.video)
    assert (info.video_codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert count_frames(result.video) == uncapped.duration_s * FPS
    assert top_level_boxes(result.video).index("moov") < top_level_boxes(result.video).index("mdat")


@pytest.mark.slow
def test_impossible_size_cap_raises_a_clear_error(noisy: list[SceneCut], tmp_path: Path) -> None:
    spec = AssemblySpec(
        scenes=noisy,
        width=360,
        height=640,
        out=tmp_path / "tiny.mp4",
        sheet=tmp_path / "sheet.png",
        size_cap_bytes=100_000,
    )
    with pytest.raises(SizeCapError, match="cannot fit") as err:
        assemble(spec)
    assert isinstance(err.value, StoryloomError)
    assert not spec.out.exists()


# --------------------------------------------------------------------------- sizes and errors


@pytest.mark.slow
def test_default_portrait_720p_story(tmp_path: Path) -> None:
    cuts = story_inputs(tmp_path, 720, 1280, clip_seconds=[2, 2, 2], narration=[1.2, 1.4, 1.2])
    spec = AssemblySpec(
        scenes=cuts,
        music=None,
        width=720,
        height=1280,
        out=tmp_path / "story.mp4",
        sheet=tmp_path / "sheet.png",
        title="Portrait",
    )
    result = assemble(spec)
    info = probe(result.video)
    assert (info.width, info.height, info.video_profile) == (720, 1280, "High")
    frames = count_frames(result.video)
    assert frames == round(result.duration_s * FPS)
    on = round((plan_timeline([1.2, 1.4, 1.2], 0.5, FPS)[0].narration_at + 0.3) * FPS)
    (frame,) = frames_rgb(result.video, [on], 720, 1280)
    assert white_in_bottom_third(frame) > 600


@pytest.mark.slow
def test_landscape_output_cover_crops_a_square_clip(tmp_path: Path) -> None:
    cuts = story_inputs(tmp_path, 640, 360, clip_seconds=[1, 1, 1], narration=[0.5, 0.5, 0.5])
    spec = AssemblySpec(
        scenes=cuts,
        width=640,
        height=360,
        fps=25,
        out=tmp_path / "wide.mp4",
        sheet=tmp_path / "sheet.png",
    )
    result = assemble(spec)
    info = probe(result.video)
    assert (info.width, info.height, info.fps) == (640, 360, 25.0)
    (first,) = frames_rgb(result.video, [0], 640, 360)
    assert first[:, :, 0].mean() > 230  # no letterbox bars: the red clip fills the frame


def test_missing_media_and_unreadable_files_raise_assembly_errors(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-video.mp4"
    bogus.write_bytes(b"hello")
    with pytest.raises(AssemblyError):
        probe(bogus)
    with pytest.raises(AssemblyError):
        probe(tmp_path / "absent.mp4")
    cut = SceneCut(clip=bogus, narration=tmp_path / "absent.wav", narration_s=1, frame=bogus)
    spec = AssemblySpec(
        scenes=[cut], width=64, height=64, out=tmp_path / "o.mp4", sheet=tmp_path / "s.png"
    )
    with pytest.raises(AssemblyError, match="missing"):
        assemble(spec)
    with pytest.raises(ValueError):
        AssemblySpec(scenes=[cut], width=65, height=64, out=bogus, sheet=bogus)


# --------------------------------------------------------------------------- offline moves


def _painting(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.resize((w, h), Image.Resampling.BICUBIC).save(buf, format="PNG")
    return buf.getvalue()


async def _clip(image: bytes, motion: str, seconds: float, accept: list[str]) -> Media:
    request = AnimateRequest(
        image=Media(data=image, mime="image/png"), motion=motion, duration_s=seconds,
        width=360, height=640, fps=FPS, accept=accept,
    )  # fmt: skip
    return (await PanZoomAnimator().animate(request)).clip


def luma(path: Path, indices: list[int], w: int, h: int) -> list[np.ndarray]:
    select = "+".join(f"eq(n\\,{i})" for i in indices)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select={select}",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h * w * 3 // 2)[:, : h * w]
    return list(frames.reshape(-1, h, w).astype(int))


@pytest.mark.slow
def test_an_offline_move_is_drawn_straight_into_the_video(tmp_path: Path) -> None:
    """A pan-and-zoom described (not encoded) by the offline animator comes out as the frames
    of its move, spread over the scene's length, with captions, in an H.264 High video."""
    narration = [1.2, 1.6]
    slots = plan_timeline(narration, fps=FPS)
    motions = ["push_in", "pan_left"]
    cuts, images = [], []
    for i, motion in enumerate(motions):
        images.append(_painting(480, 640, i))
        clip = asyncio.run(_clip(images[i], motion, 3.0, [MOTION_MIME, "video/mp4"]))
        assert clip.mime == MOTION_MIME and len(clip.data) < len(images[i]) + 200
        path = tmp_path / f"clip{i}.bin"
        path.write_bytes(clip.data)
        cuts.append(
            SceneCut(
                clip=path,
                narration=make_wav(tmp_path / f"voice{i}.wav", narration[i], 330),
                narration_s=narration[i],
                words=timings("light the lamp"),
                caption="light the lamp",
                frame=make_png(tmp_path / f"frame{i}.png", "gray", 90, 160),
            )
        )
    spec = AssemblySpec(scenes=cuts, width=360, height=640, fps=FPS, out=tmp_path / "story.mp4",
                        sheet=tmp_path / "sheet.png")  # fmt: skip
    video = assemble(spec).video
    info = probe(video)
    assert (info.video_codec, info.video_profile, info.pix_fmt) == ("h264", "High", "yuv420p")
    total = round(slots[-1].end * FPS)
    assert count_frames(video) == total
    scene0 = round(slots[0].length * FPS)
    picks = [0, 5, scene0 - 14]  # before the caption, and after it (the lower third is masked)
    drawn = [
        np.frombuffer(f, np.uint8)[: 360 * 640].reshape(640, 360).astype(int)
        for f in render_move(images[0], "push_in", 360, 640, scene0)
    ]
    got = luma(video, picks, 360, 640)
    for k, frame in zip(picks, got, strict=True):
        assert np.abs(frame[:400] - drawn[k][:400]).mean() < 3
    assert np.abs(got[0][:400] - got[2][:400]).mean() > 8  # the camera moved
    start1 = round(slots[1].start * FPS) + 12
    second = luma(video, [start1], 360, 640)[0]
    pan = (
        np.frombuffer(
            next(render_move(images[1], "pan_left", 360, 640, round(slots[1].length * FPS), 12)),
            np.uint8,
        )[: 360 * 640]
        .reshape(640, 360)
        .astype(int)
    )
    assert np.abs(second[:400] - pan[:400]).mean() < 3
    on = round((slots[0].narration_at + 0.3) * FPS)
    assert white_in_bottom_third(frames_rgb(video, [on], 360, 640)[0]) > 100
