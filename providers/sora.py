"""OpenAI's video API (Sora) as an image-to-video animator.

``POST /v1/videos`` (multipart: ``model``, ``prompt``, ``seconds``, ``size`` and the frame as
``input_reference``, which becomes the first frame and must match ``size`` exactly) answers a
video object whose ``status`` goes ``queued`` -> ``in_progress`` -> ``completed`` or ``failed``;
``GET /v1/videos/{id}`` polls it and ``GET /v1/videos/{id}/content`` downloads the MP4. Billing is
per second of video by model, so a clip is the allowed length closest above the scene's.

:meth:`SoraAnimator.submit` (returns the video id) and :meth:`SoraAnimator.resume` (polls a known
id to the end and downloads) are separate, so a job journal can resume a paid job after a crash.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image, ImageOps

from providers.base import (
    AnimateRequest,
    ClipResult,
    ContentRefused,
    Media,
    ProviderBadResponse,
    ProviderUnavailable,
)
from providers.config import ProviderSettings
from providers.http import (
    Cancel,
    Probe,
    field_of,
    motion_prompt,
    poll_job,
    probe,
    run_clip_job,
)
from providers.openai import REFUSAL_CODES, _OpenAIBase

NAME = "openai"
DONE = {"completed", "failed"}
PENDING = {"queued", "in_progress"}
JOB_LIMIT = 2  # videos in progress at once per worker (the lower API tiers allow 1-2)

# (seconds allowed, sizes allowed) by model family; sora-2-pro adds the taller sizes
SECONDS = (4, 8, 12)
SIZES = {
    "sora-2": ("720x1280", "1280x720"),
    "sora-2-pro": ("720x1280", "1280x720", "1024x1792", "1792x1024"),
}


def clip_seconds(duration_s: float) -> int:
    """The shortest allowed length that covers the scene (the assembler trims), else the longest."""
    return next((s for s in SECONDS if s >= duration_s - 0.25), SECONDS[-1])


def clip_size(model: str, width: int, height: int) -> str:
    """The allowed size of the same orientation closest to the frame's height."""
    sizes = SIZES["sora-2-pro" if model.startswith("sora-2-pro") else "sora-2"]

    def score(size: str) -> tuple[bool, int]:
        w, h = (int(v) for v in size.split("x"))
        return ((w > h) != (width > height), abs(h - height))

    return min(sizes, key=score)


def fit_image(media: Media, size: str) -> Media:
    """The frame cropped and scaled to exactly ``size`` (CPU work: call in a thread)."""
    w, h = (int(v) for v in size.split("x"))
    with Image.open(io.BytesIO(media.data)) as img:
        if img.size == (w, h) and media.mime in ("image/png", "image/jpeg", "image/webp"):
            return media
        fitted = ImageOps.fit(img.convert("RGB"), (w, h), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    fitted.save(buf, format="PNG")
    return Media(data=buf.getvalue(), mime="image/png")


class SoraAnimator(_OpenAIBase):
    default_model = "sora-2"

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        super().__init__(model, settings)
        self.poll_interval_s = settings.poll_interval_s
        self.service.limit = min(JOB_LIMIT, settings.provider_concurrency)

    async def check(self) -> Probe:
        """``GET /models/{model}``: free; 401 for a bad key, 404 when the key lacks the model."""
        return await probe(self.service, f"{self.base_url}/models/{self.model}")

    async def submit(self, request: AnimateRequest) -> str:
        """Start a video; returns its id (the job is billed from here on)."""
        size = clip_size(self.model, request.width, request.height)
        frame = await asyncio.to_thread(fit_image, request.image, size)
        fields = {
            "model": self.model,
            "prompt": motion_prompt(request) or "gentle camera motion",
            "seconds": str(clip_seconds(request.duration_s)),
            "size": size,
        }
        files = {"input_reference": (f"frame.{frame.ext}", frame.data, frame.mime)}
        video = await self.service.json("POST", f"{self.base_url}/videos", data=fields,
                                        files=files, kind="upload", what="video")
        return str(field_of(NAME, video, "id"))

    def _cancel(self, url: str) -> Cancel:
        async def cancel(state: Any) -> bool:
            """DELETE a video: confirmed only while it is still queued (not yet billed)."""
            await self.service.request("DELETE", url, kind="poll", what="cancel")
            return bool(state.get("status") == "queued")

        return cancel

    async def resume(self, video_id: str) -> ClipResult:
        """Poll a started video to its end, then download it and price it by its seconds."""
        url = f"{self.base_url}/videos/{video_id}"
        video: Any = await poll_job(
            self.service, url, done=DONE, pending=PENDING, cancel=self._cancel(url),
            deadline_s=self.settings.video_deadline_s, interval_s=self.poll_interval_s,
            what=f"video {video_id}",
        )
        if video["status"] == "failed":
            error = video.get("error") or {}
            code = str(error.get("code") or "") if isinstance(error, dict) else ""
            message = str(error.get("message") or code or "failed")[:300] \
                if isinstance(error, dict) else str(error)[:300]
            if code in REFUSAL_CODES or "moderation" in message.lower():
                raise ContentRefused(NAME, message)
            raise ProviderUnavailable(NAME, f"video {video_id} failed: {message}")
        try:
            seconds = float(video.get("seconds") or 0)
        except (TypeError, ValueError):
            seconds = 0.0
        if seconds <= 0:
            raise ProviderBadResponse(NAME, f"video {video_id} has no length")
        clip = await self.service.download(f"{url}/content", "video", authorised=True)
        usage = self.prices.usage(NAME, self.model, "second", seconds)
        return ClipResult(clip=clip, duration_s=seconds, usage=usage)

    async def animate(self, request: AnimateRequest) -> ClipResult:
        return await run_clip_job(self.service, self.model, request,
                                  lambda: self.submit(request), self.resume)
