"""Pan and zoom (Ken Burns) over a still frame: the offline image-to-video provider.

Why frames are drawn here and not by an ffmpeg filter: ``zoompan`` and ``crop`` move in whole
pixels, which makes slow moves shimmer, and ``perspective`` with per-frame expressions is
single-threaded and slower than this on a 2-core box. Instead the source is converted once to
BT.709 Y'CbCr planes, and every frame is a float-precision crop box resampled by Pillow (sub-pixel,
so the motion is smooth), written as raw ``yuv420p`` to an ffmpeg subprocess that only encodes.
Two threads draw batches of frames while x264 encodes the previous ones.

A caller that accepts ``MOTION_MIME`` (the assembler does) gets no video at all but the move
itself: the source image and the camera move in a few bytes of header. The assembler draws the
frames with :func:`render_move` straight into the final scene body, so the offline path encodes
every frame once instead of encoding a clip, decoding it and encoding it again.
"""

from __future__ import annotations

import asyncio
import io
import math
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field, ValidationError

from providers.base import (
    AnimateRequest,
    ClipResult,
    Media,
    ProviderBadRequest,
    Usage,
)
from providers.config import ProviderSettings
from providers.offline.ffmpeg import encoder_threads, run_ffmpeg

NAME = "offline"
MODEL = "panzoom"

# How far each move goes: zoom is the magnification at the tight end of the move; a pan travels
# at most ``PAN_TRAVEL`` of the visible width (or height, for rise).
ZOOM = 1.15
PAN_ZOOM = 1.12
PAN_TRAVEL = 0.2
BATCH = 8  # frames drawn per thread hop
IN_FLIGHT = 3  # batches drawn ahead of the encoder (one per core)
_BAND = 128  # rows converted to Y'CbCr at a time

MOTION_MIME = "application/vnd.storyloom.panzoom"
_MAGIC = b"storyloom-panzoom/1\n"

Box = tuple[float, float, float, float]
Motion = Literal["push_in", "pull_out", "pan_left", "pan_right", "rise", "still"]


class Move(BaseModel):
    """A pan-and-zoom clip described instead of encoded: what the camera does over the still."""

    motion: Motion
    duration_s: float = Field(gt=0)
    width: int
    height: int
    fps: int


def pack_move(move: Move, image: bytes) -> bytes:
    """The ``MOTION_MIME`` form: a magic line, the move as one JSON line, the image bytes."""
    return _MAGIC + move.model_dump_json().encode() + b"\n" + image


def read_move(data: bytes) -> tuple[Move, bytes] | None:
    """The move and image of a ``MOTION_MIME`` clip, or None if ``data`` is something else."""
    if not data.startswith(_MAGIC):
        return None
    header, _, image = data[len(_MAGIC) :].partition(b"\n")
    try:
        return Move.model_validate_json(header), image
    except ValidationError:
        return None


def is_move(path: Path) -> bool:
    """Whether the file at ``path`` is a ``MOTION_MIME`` clip (reads only its first bytes)."""
    with path.open("rb") as f:
        return f.read(len(_MAGIC)) == _MAGIC


def render_move(
    image: bytes,
    motion: str,
    width: int,
    height: int,
    total: int,
    first: int = 0,
    count: int | None = None,
) -> Iterator[bytes]:
    """Raw yuv420p frames ``first .. first + count`` of the move spread over ``total`` frames.

    Synchronous (Pillow releases the GIL while it resamples): run it in a worker thread."""
    planes = Planes.from_image(image, width, height, magnification(motion))
    path = camera_path(motion, planes.y.width, planes.y.height, width, height)
    last = max(1, total - 1)
    stop = first + (total - first if count is None else count)
    if motion == "still":
        frame = planes.render(path(0.0), width, height)
        for _ in range(first, stop):
            yield frame
        return
    for i in range(first, stop):
        yield planes.render(path(min(i, total - 1) / last), width, height)


def ease(p: float) -> float:
    """Smootherstep: zero velocity and acceleration at both ends, so a move starts and stops
    without a jolt."""
    p = min(1.0, max(0.0, p))
    return p * p * p * (p * (6 * p - 15) + 10)


def magnification(motion: str) -> float:
    """How much larger than the output the source is prepared: pans slide over a source already
    scaled up by ``PAN_ZOOM`` (sharper, and half the resampling work of a per-frame zoom)."""
    return PAN_ZOOM if motion in ("pan_left", "pan_right", "rise") else 1.0


def camera_path(
    motion: str, src_w: int, src_h: int, out_w: int, out_h: int
) -> Callable[[float], Box]:
    """The crop box (in source pixels, float) at progress ``p`` in [0, 1].

    The source is already scaled to cover the output, so a box of ``out / zoom`` pixels shows
    the frame at ``zoom`` magnification.
    """

    def box_at(zoom: float, cx: float, cy: float) -> Box:
        w, h = out_w / zoom, out_h / zoom
        x0 = min(max(cx - w / 2, 0.0), src_w - w)
        y0 = min(max(cy - h / 2, 0.0), src_h - h)
        return (x0, y0, x0 + w, y0 + h)

    mid_x, mid_y = src_w / 2, src_h / 2
    if motion in ("push_in", "pull_out"):

        def zoom_path(p: float) -> Box:
            e = ease(p) if motion == "push_in" else 1 - ease(p)
            # Interpolate the visible width, not the zoom factor, so the apparent speed is even.
            return box_at(1 / (1 + (1 / ZOOM - 1) * e), mid_x, mid_y)

        return zoom_path

    if motion in ("pan_left", "pan_right", "rise"):
        # The source is pre-magnified (see ``magnification``), so a pan is a 1:1 slide: the
        # fixed axis sits on an even pixel and only the moving axis is resampled.
        vertical = motion == "rise"
        size = out_h if vertical else out_w
        room = (src_h if vertical else src_w) - size
        travel = min(room, size * PAN_TRAVEL)
        centre = mid_y if vertical else mid_x
        start, end = centre + travel / 2, centre - travel / 2  # rise and pan_left go up/left
        if motion == "pan_right":
            start, end = end, start
        fixed_x = out_w / 2 + 2 * ((src_w - out_w) // 4)
        fixed_y = out_h / 2 + 2 * ((src_h - out_h) // 4)

        def pan_path(p: float) -> Box:
            c = start + (end - start) * ease(p)
            return box_at(1.0, fixed_x, c) if vertical else box_at(1.0, c, fixed_y)

        return pan_path

    return lambda p: box_at(1.0, mid_x, mid_y)


@dataclass(frozen=True)
class Planes:
    """A frame source as limited-range BT.709 planes: luma at full size, chroma at half."""

    y: Image.Image
    u: Image.Image
    v: Image.Image

    @classmethod
    def from_image(cls, data: bytes, out_w: int, out_h: int, magnify: float = 1.0) -> Planes:
        try:
            with Image.open(io.BytesIO(data)) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError) as err:
            raise ProviderBadRequest(NAME, f"the frame is not a readable image ({err})") from err
        # Cover: scale so the image fills the output, keeping its aspect; even sizes so the
        # chroma planes line up exactly.
        scale = max(out_w / image.width, out_h / image.height) * magnify
        w = max(out_w, 2 * math.ceil(image.width * scale / 2))
        h = max(out_h, 2 * math.ceil(image.height * scale / 2))
        rgb = np.asarray(image.resize((w, h), Image.Resampling.LANCZOS))
        del image
        # A band of rows at a time: float copies of a whole magnified 1080p frame would cost
        # the worker ~100 MB of peak memory per clip drawn at once.
        planes = np.empty((3, h, w), dtype=np.uint8)
        for top in range(0, h, _BAND):
            band = rgb[top : top + _BAND].astype(np.float32)
            r, g, b = band[..., 0], band[..., 1], band[..., 2]
            rows = slice(top, top + _BAND)
            planes[0, rows] = _u8(16 + (0.2126 * r + 0.7152 * g + 0.0722 * b) * (219 / 255))
            planes[1, rows] = _u8(128 + (-0.1146 * r - 0.3854 * g + 0.5 * b) * (224 / 255))
            planes[2, rows] = _u8(128 + (0.5 * r - 0.4542 * g - 0.0458 * b) * (224 / 255))
        half = (w // 2, h // 2)
        return cls(
            y=Image.fromarray(planes[0]),
            u=Image.fromarray(planes[1]).resize(half, Image.Resampling.BOX),
            v=Image.fromarray(planes[2]).resize(half, Image.Resampling.BOX),
        )

    def render(self, box: Box, out_w: int, out_h: int) -> bytes:
        """One raw yuv420p frame showing ``box`` of the source, resampled at sub-pixel offsets."""
        half_box = (box[0] / 2, box[1] / 2, box[2] / 2, box[3] / 2)
        half = (out_w // 2, out_h // 2)
        return b"".join(
            (
                _sample(self.y, (out_w, out_h), box),
                _sample(self.u, half, half_box),
                _sample(self.v, half, half_box),
            )
        )


def _sample(plane: Image.Image, size: tuple[int, int], box: Box) -> bytes:
    """Resample ``box`` of ``plane`` to ``size``. When one axis is a whole-pixel 1:1 window,
    cut it out first so Pillow resamples along the other axis only."""
    x0, y0, x1, y1 = box
    if y1 - y0 == size[1] and y0.is_integer():
        plane = plane.crop((0, int(y0), plane.width, int(y0) + size[1]))
        box = (x0, 0, x1, size[1])
    elif x1 - x0 == size[0] and x0.is_integer():
        plane = plane.crop((int(x0), 0, int(x0) + size[0], plane.height))
        box = (0, y0, size[0], y1)
    return plane.resize(size, Image.Resampling.BILINEAR, box=box).tobytes()


def _u8(values: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return result


def x264_args(fps: int, frames: int, out: Path) -> list[str]:
    """Output settings, shared with the bench baseline: an intermediate clip (it is re-encoded
    at assembly), so speed first at near-transparent quality, and streamable."""
    return [
        "-frames:v", str(frames),
        "-r", str(fps),
        "-an",
        "-c:v", "libx264",
        "-preset", "ultrafast",
        "-crf", "20",
        "-threads", str(encoder_threads()),
        "-pix_fmt", "yuv420p",
        "-colorspace", "bt709",
        "-color_primaries", "bt709",
        "-color_trc", "bt709",
        "-color_range", "tv",
        "-movflags", "+faststart",
        "-y", str(out),
    ]  # fmt: skip


def raw_input_args(width: int, height: int, fps: int) -> list[str]:
    """Raw yuv420p frames on standard input."""
    return [
        "-f", "rawvideo",
        "-pix_fmt", "yuv420p",
        "-s", f"{width}x{height}",
        "-framerate", str(fps),
        "-i", "pipe:0",
    ]  # fmt: skip


class PanZoomAnimator:
    """Animates a still frame with an eased pan or zoom, encoded as H.264 MP4."""

    name = NAME

    def __init__(self, model: str = "") -> None:
        self.model = model or MODEL

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> PanZoomAnimator:
        return cls(model)

    async def animate(self, request: AnimateRequest) -> ClipResult:
        width, height, fps = request.width, request.height, request.fps
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ProviderBadRequest(NAME, f"size {width}x{height} must be even and at least 16")
        if not 1 <= fps <= 120:
            raise ProviderBadRequest(NAME, f"fps {fps} is outside 1..120")
        frames = max(1, round(request.duration_s * fps))
        if MOTION_MIME in request.accept:
            return await self._describe(request, frames / fps)

        planes = await asyncio.to_thread(
            Planes.from_image, request.image.data, width, height, magnification(request.motion)
        )
        path = camera_path(request.motion, planes.y.width, planes.y.height, width, height)

        # A still clip is one drawn frame that ffmpeg repeats.
        still = request.motion == "still"
        hold = ["-vf", f"loop=loop=-1:size=1,setpts=N/{fps}/TB"] if still else []
        with tempfile.TemporaryDirectory(prefix="storyloom-motion-") as tmp:
            out = Path(tmp) / "clip.mp4"
            await run_ffmpeg(
                [*raw_input_args(width, height, fps), *hold, *x264_args(fps, frames, out)],
                stdin=_frames(planes, path, 1 if still else frames, width, height),
                provider=NAME,
            )
            data = await asyncio.to_thread(out.read_bytes)

        duration = frames / fps
        return ClipResult(
            clip=Media(data=data, mime="video/mp4"),
            duration_s=duration,
            usage=Usage(provider=NAME, model=self.model, units=duration, unit="second"),
        )

    async def _describe(self, request: AnimateRequest, duration: float) -> ClipResult:
        """The move instead of a video, for a caller that renders it itself."""
        await asyncio.to_thread(_check_image, request.image.data)
        move = Move(
            motion=request.motion,
            duration_s=duration,
            width=request.width,
            height=request.height,
            fps=request.fps,
        )
        return ClipResult(
            clip=Media(data=pack_move(move, request.image.data), mime=MOTION_MIME),
            duration_s=duration,
            usage=Usage(provider=NAME, model=self.model, units=duration, unit="second"),
        )


def _check_image(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
    except (OSError, ValueError) as err:
        raise ProviderBadRequest(NAME, f"the frame is not a readable image ({err})") from err


async def _frames(
    planes: Planes,
    path: Callable[[float], Box],
    frames: int,
    width: int,
    height: int,
) -> AsyncIterator[bytes]:
    """Raw frames in order, drawn in worker threads a few batches ahead of the encoder."""
    last = max(1, frames - 1)

    def draw(start: int) -> bytes:
        stop = min(start + BATCH, frames)
        return b"".join(planes.render(path(i / last), width, height) for i in range(start, stop))

    pending: list[asyncio.Future[bytes]] = []
    starts = iter(range(0, frames, BATCH))
    try:
        for start in starts:
            pending.append(asyncio.ensure_future(asyncio.to_thread(draw, start)))
            if len(pending) < IN_FLIGHT:
                continue
            yield await pending.pop(0)
        while pending:
            yield await pending.pop(0)
    finally:
        for fut in pending:
            fut.cancel()
