"""What fits in one Discord request, and how large a server's uploads may be.

Discord refuses (413, code 40005) a request whose files and JSON payload together exceed the
server's upload limit, so every post with files is sized as a whole. The limit is per server: an
interaction reports it (``attachment_size_limit``), the server's boost tier implies it, and a 413
proves it is lower than what was sent. :class:`UploadLimits` remembers the latest of these per
server in Redis; :func:`fit_images` shrinks frames (JPEG, then smaller) to fit a budget.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.models import ChatRef
from providers.offline.ffmpeg import FFmpegError, run_ffmpeg

MiB = 1024 * 1024
DEFAULT_LIMIT = 10 * MiB
LIMIT_TTL_S = 60 * 60 * 24 * 60
# Discord's upload limits (by boost tier, and the former ones): after a 413 the next one below
# what was refused is the likely limit; below these, each refusal halves the estimate.
KNOWN_LIMITS = (500 * MiB, 100 * MiB, 50 * MiB, 25 * MiB, 10 * MiB, 8 * MiB)
PAYLOAD_ROOM = 6 * 1024  # payload_json besides the content: components, attachments, flags
PART_ROOM = 400  # each file's multipart headers and its entry in payload_json
SMALLEST_SIDE = 48  # frames are not shrunk below this many pixels on their short side
SHRINK_AUDIO_KBPS = 64
SHRINK_MIN_VIDEO_KBPS = 150  # below this a re-encoded video is not worth watching: link it


def mib(size: int) -> str:
    if size >= MiB:
        value = size / MiB
        return f"{value:.0f} MiB" if abs(value - round(value)) < 0.05 else f"{value:.1f} MiB"
    return f"{max(1, round(size / 1024))} KiB"


def exact(size: int) -> str:
    return f"{size / MiB:.1f} MiB" if size >= MiB else f"{max(1, round(size / 1024))} KiB"


def request_room(content: str, files: int) -> int:
    """The bytes a message's text, buttons and file parts add to its files."""
    return len(content.encode()) + PAYLOAD_ROOM + PART_ROOM * files


def request_size(content: str, files: list[tuple[str, bytes]]) -> int:
    return sum(len(data) for _, data in files) + request_room(content, len(files))


@dataclass(frozen=True)
class UploadLimit:
    """A server's upload limit; ``refused`` is the size of a request Discord refused, when the
    limit was learned from that refusal (then ``size`` is an estimate below it); ``disproved``
    is the reported limit that refusal proved wrong (interactions have been seen to report more
    than Discord accepts), so the same report does not raise the limit again."""

    size: int
    refused: int = 0
    disproved: int = 0

    def name(self) -> str:
        if self.refused:
            return (f"this server's upload limit (Discord refused an upload of "
                    f"{exact(self.refused)} here)")
        return f"this server's {mib(self.size)} upload limit"

    def over(self, what: str, size: int) -> str:
        """Why ``what`` of ``size`` bytes is not attached, naming the limit that refused it."""
        return f"{what} is {exact(size)}, over {self.name()}"

    def dump(self) -> str:
        return f"{self.size}/{self.refused}/{self.disproved}"

    @classmethod
    def load(cls, raw: Any) -> UploadLimit | None:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        parts = [int(p) if p.isdigit() else 0 for p in text.split("/")][:3]
        if not parts or parts[0] <= 0:
            return None
        return cls(*parts)


def below(refused: int, tier: int | None) -> UploadLimit:
    """The limit after a request of ``refused`` bytes got a 413: the server's tier limit when that
    is lower (the server lost boosts), else the next known limit below, else half."""
    if tier is not None and tier < refused:
        return UploadLimit(tier)
    known = next((k for k in KNOWN_LIMITS if k < refused), None)
    return UploadLimit(known if known is not None else refused // 2, refused)


class UploadLimits:
    """Each server's upload limit (a DM's by its channel), in memory and in Redis."""

    def __init__(self, redis: Any, prefix: str,
                 where: Callable[[ChatRef], tuple[str, int | None]]) -> None:
        self.redis = redis
        self.prefix = prefix
        self.where = where  # a chat -> (its server's key, the limit its boost tier implies)
        self._known: dict[str, UploadLimit] = {}

    def _key(self, key: str) -> str:
        return f"{self.prefix}limit:{key}"

    async def _set(self, key: str, limit: UploadLimit) -> None:
        if self._known.get(key) != limit:
            self._known[key] = limit
            await self.redis.set(self._key(key), limit.dump(), ex=LIMIT_TTL_S)

    async def reported(self, chat: ChatRef, size: int) -> None:
        """Discord reported the limit (an interaction's ``attachment_size_limit``); a report
        that a refusal already proved too high changes nothing."""
        if size <= 0 or (await self.get(chat)).disproved == size:
            return
        await self._set(self.where(chat)[0], UploadLimit(size))

    async def refused(self, chat: ChatRef, size: int) -> UploadLimit:
        """Discord refused a request of ``size`` bytes as too large: remember a lower limit."""
        key, tier = self.where(chat)
        current = await self.get(chat)
        wrong = current.disproved or (0 if current.refused else current.size)
        limit = below(size, tier)
        if limit.size >= current.size:  # more than the known limit was sent: it stands
            limit = UploadLimit(current.size, size)
        limit = UploadLimit(limit.size, limit.refused, wrong)
        await self._set(key, limit)
        return limit

    async def get(self, chat: ChatRef) -> UploadLimit:
        key, tier = self.where(chat)
        if key in self._known:
            return self._known[key]
        raw = await self.redis.get(self._key(key))
        found = UploadLimit.load(raw) if raw is not None else None
        if found is not None:
            self._known[key] = found
            return found
        return UploadLimit(tier or DEFAULT_LIMIT)

    def cached(self, chat: ChatRef) -> int:
        """The limit without a Redis read (for the video's size cap at a story's start)."""
        key, tier = self.where(chat)
        known = self._known.get(key)
        return known.size if known is not None else tier or DEFAULT_LIMIT


# --------------------------------------------------------------------------- shrinking frames


def _jpeg(img: Image.Image, scale: float, quality: int) -> bytes:
    if scale < 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _fit(images: list[tuple[str, bytes]], budget: int) -> list[tuple[str, bytes]] | None:
    if sum(len(data) for _, data in images) <= budget:
        return images
    opened = []
    for _, data in images:
        with Image.open(io.BytesIO(data)) as im:
            opened.append(im.convert("RGB"))
    short = min(min(im.size) for im in opened)
    scale = 1.0
    while short * scale >= SMALLEST_SIDE or scale == 1.0:
        for quality in (85, 70, 55):
            out = [(name.rsplit(".", 1)[0] + ".jpg", _jpeg(im, scale, quality))
                   for (name, _), im in zip(images, opened, strict=True)]
            if sum(len(data) for _, data in out) <= budget:
                return out
        scale *= 0.7
    return None


async def fit_images(images: list[tuple[str, bytes]], budget: int
                     ) -> list[tuple[str, bytes]] | None:
    """``images`` as they are when they fit ``budget`` bytes together, else as JPEGs, smaller
    and smaller, until they do; ``None`` when even the smallest do not. Runs in a thread."""
    if budget <= 0:
        return None
    if sum(len(data) for _, data in images) <= budget:
        return images
    return await asyncio.to_thread(_fit, images, budget)


# --------------------------------------------------------------------------- shrinking a video


async def shrink_video(src: Path, duration_s: float, target: int) -> bytes | None:
    """The video re-encoded (x264 at a bitrate its ``target`` size allows, smaller frames when
    that bitrate is low) to at most ``target`` bytes; ``None`` when that would fall below a
    watchable bitrate, or ffmpeg cannot read it. ffmpeg runs as a subprocess, off the loop."""
    if duration_s <= 0 or target <= 0:
        return None
    kbps = target * 8 * 0.92 / duration_s / 1000 - SHRINK_AUDIO_KBPS
    tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="storyloom-fit-"))
    out = tmp / "fit.mp4"
    try:
        for _ in range(2):
            if kbps < SHRINK_MIN_VIDEO_KBPS:
                return None
            height = 720 if kbps >= 900 else 480
            rate = f"{int(kbps)}k"
            await run_ffmpeg(
                ["-i", str(src), "-vf", f"scale=-2:'min(ih,{height})'", "-c:v", "libx264",
                 "-preset", "veryfast", "-pix_fmt", "yuv420p", "-b:v", rate, "-maxrate", rate,
                 "-bufsize", rate, "-c:a", "aac", "-b:a", f"{SHRINK_AUDIO_KBPS}k",
                 "-threads", "2", "-movflags", "+faststart", "-y", str(out)],
                provider="discord")  # fmt: skip
            data = await asyncio.to_thread(out.read_bytes)
            if len(data) <= target:
                return data
            kbps *= 0.85 * target / len(data)
        return None
    except FFmpegError:
        return None
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)
