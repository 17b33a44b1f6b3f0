"""The offline pan-and-zoom animator: real H.264 encodes, decoded back with the bundled ffmpeg."""

from __future__ import annotations

import io
import itertools
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from providers.base import AnimateRequest, Animator, ClipResult, Media, ProviderBadRequest
from providers.offline.ffmpeg import FFmpegError, ffmpeg_exe, run_ffmpeg
from providers.offline.motion import MOTION_MIME, PanZoomAnimator, read_move, render_move

pytestmark = pytest.mark.slow

W, H, FPS = 240, 432, 24


def png(image: Image.Image) -> Media:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return Media(data=buf.getvalue(), mime="image/png")


def gradient(vertical: bool = False, size: tuple[int, int] = (480, 640)) -> Media:
    """Dark at the left (or bottom), bright at the right (or top)."""
    w, h = size
    if vertical:
        ramp = np.linspace(255, 0, h)[:, None].repeat(w, axis=1)
    else:
        ramp = np.linspace(0, 255, w)[None, :].repeat(h, axis=0)
    return png(Image.fromarray(ramp.astype(np.uint8)).convert("RGB"))


def centred_square(size: tuple[int, int] = (W, H), side: int = 80) -> Media:
    image = Image.new("RGB", size, "black")
    cx, cy = size[0] // 2, size[1] // 2
    ImageDraw.Draw(image).rectangle(
        [cx - side // 2, cy - side // 2, cx + side // 2 - 1, cy + side // 2 - 1], fill="white"
    )
    return png(image)


async def animate(image: Media, motion: str, duration_s: float = 1.5, **size: int) -> ClipResult:
    request = AnimateRequest(
        image=image,
        motion=motion,
        duration_s=duration_s,
        width=size.get("width", W),
        height=size.get("height", H),
        fps=size.get("fps", FPS),
    )
    return await PanZoomAnimator().animate(request)


def probe(clip: bytes) -> str:
    """What ffmpeg says about the clip while decoding all of it (stderr at info level)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        path.write_bytes(clip)
        done = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-f", "null", "-"],
            capture_output=True,
            text=True,
            check=True,
        )
    return done.stderr


def frames(clip: bytes, width: int = W, height: int = H, colour: bool = False) -> np.ndarray:
    """Every frame as grey levels, shape (n, height, width), or RGB (n, height, width, 3)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        path.write_bytes(clip)
        done = subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-nostdin",
                "-i",
                str(path),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24" if colour else "gray",
                "-",
            ],
            capture_output=True,
            check=True,
        )
    shape = (-1, height, width, 3) if colour else (-1, height, width)
    return np.frombuffer(done.stdout, dtype=np.uint8).reshape(shape).astype(float)


def bright_width(frame: np.ndarray) -> int:
    """Width of the white square along the middle row."""
    return int(np.count_nonzero(frame[frame.shape[0] // 2] > 128))


def test_is_an_animator() -> None:
    assert isinstance(PanZoomAnimator(), Animator)


async def test_clip_is_h264_of_the_requested_shape() -> None:
    result = await animate(gradient(), "push_in", duration_s=2.0)
    assert result.clip.mime == "video/mp4"
    assert result.duration_s == pytest.approx(2.0, abs=1 / FPS)
    assert result.usage.provider == "offline"
    assert result.usage.units == pytest.approx(2.0, abs=1 / FPS)
    info = probe(result.clip.data)
    assert re.search(r"Video: h264 .*yuv420p.*, 240x432", info), info
    assert re.search(r"\b24 fps\b", info), info
    assert "Audio:" not in info
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info)
    assert duration is not None
    h, m, s = duration.groups()
    assert int(h) * 3600 + int(m) * 60 + float(s) == pytest.approx(2.0, abs=1 / FPS)
    counts = re.findall(r"frame=\s*(\d+)", info)
    assert counts and int(counts[-1]) == 48
    # +faststart: the index (moov) comes before the media data (mdat).
    assert result.clip.data.find(b"moov") < result.clip.data.find(b"mdat")


async def test_push_in_magnifies_and_pull_out_shrinks() -> None:
    square = centred_square()
    push = frames((await animate(square, "push_in")).clip.data)
    pull = frames((await animate(square, "pull_out")).clip.data)
    first, last = bright_width(push[0]), bright_width(push[-1])
    assert first == pytest.approx(80, abs=3)
    assert last == pytest.approx(80 * 1.15, abs=3)
    assert bright_width(pull[0]) == pytest.approx(last, abs=3)
    assert bright_width(pull[-1]) == pytest.approx(first, abs=3)
    # Eased and monotonic: the square never shrinks during a push-in, and it starts slowly.
    widths = [bright_width(f) for f in push]
    assert all(b >= a - 1 for a, b in itertools.pairwise(widths))
    assert widths[3] - widths[0] <= 1


async def test_pans_move_in_opposite_directions() -> None:
    image = gradient()
    left = frames((await animate(image, "pan_left")).clip.data)
    right = frames((await animate(image, "pan_right")).clip.data)
    # The source is dark on the left: panning left darkens the view, panning right brightens it.
    assert left[-1].mean() < left[0].mean() - 5
    assert right[-1].mean() > right[0].mean() + 5
    means = right.mean(axis=(1, 2))
    assert np.all(np.diff(means) > -0.5), "no jitter back and forth"


async def test_rise_moves_up() -> None:
    clip = frames((await animate(gradient(vertical=True), "rise")).clip.data)
    assert clip[-1].mean() > clip[0].mean() + 5  # bright at the top


async def test_still_does_not_move() -> None:
    clip = frames((await animate(gradient(), "still")).clip.data)
    assert np.abs(clip[-1] - clip[0]).max() <= 2


async def test_other_aspect_is_cover_cropped() -> None:
    # A wide image: red left third, green middle, blue right third. A 9:16 output covers its
    # height, so only the green middle shows, unstretched.
    image = Image.new("RGB", (900, 300), "green")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 299, 299], fill="red")
    draw.rectangle([600, 0, 899, 299], fill="blue")
    result = await animate(png(image), "still", width=W, height=H)
    assert re.search(r", 240x432\b", probe(result.clip.data))
    rgb = frames(result.clip.data, colour=True)[0]
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert np.all(green > red + 60) and np.all(green > blue + 60), "only the middle shows"


async def test_rejects_what_it_cannot_encode() -> None:
    with pytest.raises(ProviderBadRequest):
        await animate(Media(data=b"not an image", mime="image/png"), "push_in")
    with pytest.raises(ProviderBadRequest):
        await animate(gradient(), "push_in", width=241)


async def test_ffmpeg_errors_carry_stderr() -> None:
    with pytest.raises(FFmpegError) as caught:
        await run_ffmpeg(["-i", "/nonexistent/input.png", "-f", "null", "-"])
    assert "nonexistent" in str(caught.value)
    assert caught.value.provider == "offline"


async def test_ffmpeg_that_stops_reading_fails_cleanly() -> None:
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield bytes(1 << 20)

    args = ["-f", "rawvideo", "-pix_fmt", "gray", "-s", "64x64", "-i", "pipe:0"]
    with pytest.raises(FFmpegError) as caught:
        await run_ffmpeg([*args, "-c:v", "no-such-encoder", "-f", "null", "-"], stdin=endless())
    assert "no-such-encoder" in caught.value.stderr
    assert produced < 1000


async def test_a_caller_that_draws_moves_gets_the_move_not_a_video() -> None:
    image = gradient()
    request = AnimateRequest(image=image, motion="pan_left", duration_s=2.0, width=W, height=H,
                             fps=FPS, accept=[MOTION_MIME, "video/mp4"])  # fmt: skip
    result = await PanZoomAnimator().animate(request)
    assert result.clip.mime == MOTION_MIME and result.duration_s == pytest.approx(2.0)
    found = read_move(result.clip.data)
    assert found is not None
    move, source = found
    assert (move.motion, move.width, move.height, move.fps) == ("pan_left", W, H, FPS)
    assert source == image.data and len(result.clip.data) < len(image.data) + 200
    # Drawn by the caller, the move is the frames the video would have shown.
    drawn = [
        np.frombuffer(f, np.uint8)[: W * H].reshape(H, W).astype(float)
        for f in render_move(source, "pan_left", W, H, 48, 0, 48)
    ]
    assert len(drawn) == 48
    assert drawn[-1].mean() < drawn[0].mean() - 5  # the view slid left, where it is dark
    with pytest.raises(ProviderBadRequest):
        bad = request.model_copy(update={"image": Media(data=b"not an image", mime="image/png")})
        await PanZoomAnimator().animate(bad)
