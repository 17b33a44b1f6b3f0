"""fal.ai through its queue API.

``POST {queue}/{model_id}`` submits and answers ``request_id``, ``status_url`` and
``response_url``; the status goes ``IN_QUEUE`` -> ``IN_PROGRESS`` -> ``COMPLETED``; the result is
fetched from ``response_url``. Auth is ``Authorization: Key ...``. Any model id works: image models
(FLUX dev/schnell, a reference-image model such as ``fal-ai/flux-pulid`` or Kontext for character
consistency), image-to-video models (Kling, Wan) and text-to-music models (Stable Audio). Input
images travel as data URIs, which the queue accepts for file inputs.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from providers.base import (
    AnimateRequest,
    CharacterRef,
    ClipResult,
    ContentRefused,
    ImageRequest,
    ImageResult,
    JobRef,
    Media,
    MusicRequest,
    MusicResult,
    ProviderBadRequest,
    ProviderBadResponse,
)
from providers.config import ProviderSettings
from providers.http import (
    HttpProvider,
    Probe,
    compose_prompt,
    data_uri,
    field_of,
    motion_prompt,
    music_inputs,
    music_seconds,
    nearest_aspect,
    poll_job,
    probe,
    run_job,
)
from providers.pricing import clip_seconds

NAME = "fal"
DONE = {"COMPLETED"}
PENDING = {"IN_QUEUE", "IN_PROGRESS"}


def _refusal(response: Any, payload: Any) -> str | None:
    detail = payload.get("detail") if isinstance(payload, dict) else None
    items = detail if isinstance(detail, list) else [detail] if detail else []
    for item in items:
        kind = str(item.get("type", "")) if isinstance(item, dict) else ""
        msg = str(item.get("msg", "")) if isinstance(item, dict) else str(item)
        if "content_policy" in kind or "nsfw" in msg.lower() or "content policy" in msg.lower():
            return msg or kind
    return None


def reference_fields(model: str, refs: list[CharacterRef]) -> dict[str, Any]:
    """Where this model family takes its reference images; empty for text-only models."""
    uris = [data_uri(c.reference) for c in refs if c.reference is not None]
    if not uris:
        return {}
    m = model.lower()
    if "pulid" in m:
        return {"reference_image_url": uris[0]}
    if "kontext" in m and "multi" in m:
        return {"image_urls": uris}
    if "kontext" in m or "redux" in m:
        return {"image_url": uris[0]}
    if "ip-adapter" in m or "ipadapter" in m:
        return {"ip_adapter_image_url": uris[0]}
    return {}


class _FalBase(HttpProvider):
    name = NAME
    refusal = staticmethod(_refusal)

    scheme = "Key "

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        super().__init__(model, settings)
        self.model = self.model.strip("/")
        self.poll_interval_s = settings.poll_interval_s

    @staticmethod
    def endpoint(settings: ProviderSettings) -> tuple[str, SecretStr]:
        return settings.fal_base_url, settings.fal_key

    @property
    def app_id(self) -> str:
        """Queue status paths use the app (``owner/app``), not the full endpoint path."""
        return "/".join(self.model.split("/")[:2])

    async def check(self) -> Probe:
        """Status of a request id that does not exist: 404 with a good key, 401 with a bad one.
        Spends nothing."""
        url = f"{self.base_url}/{self.app_id}/requests/00000000-0000-0000-0000-000000000000/status"
        return await probe(self.service, url, accept=(200, 404, 422))

    async def run(self, arguments: dict[str, Any], deadline_s: float) -> Any:
        """Submit (once: see :func:`run_job`), poll until COMPLETED or the deadline, and fetch
        the result."""

        async def submit() -> JobRef:
            submitted = await self.service.json(
                "POST", f"{self.base_url}/{self.model}", json=arguments, what="submit"
            )
            request_id = str(field_of(NAME, submitted, "request_id"))
            base = f"{self.base_url}/{self.app_id}/requests/{request_id}"
            return JobRef(service=NAME, id=request_id, urls={
                "status": str(submitted.get("status_url") or f"{base}/status"),
                "response": str(submitted.get("response_url") or base),
                "cancel": str(submitted.get("cancel_url") or f"{base}/cancel"),
            })

        async def follow(job: JobRef) -> Any:
            async def cancel(state: Any) -> bool:
                """fal removes a queued request; one already running is up to the app, so it
                is waited for (and paid for) unless the service stops knowing it."""
                try:
                    await self.service.request("PUT", job.urls["cancel"], kind="poll",
                                               what="cancel")
                except ProviderBadRequest as err:
                    return err.status == 404  # NOT_FOUND; 400 is ALREADY_COMPLETED
                return bool(state.get("status") == "IN_QUEUE")

            await poll_job(
                self.service, job.urls["status"], done=DONE, pending=PENDING, cancel=cancel,
                deadline_s=deadline_s, interval_s=self.poll_interval_s,
                what=f"request {job.id}",
            )
            return await self.service.json("GET", job.urls["response"], what="result")

        return await run_job(self.service, self.model, arguments, submit, follow)


class FalImageGenerator(_FalBase):
    default_model = "fal-ai/flux/dev"

    async def generate(self, request: ImageRequest) -> ImageResult:
        refs = [c for c in request.characters if c.reference is not None]
        arguments: dict[str, Any] = {
            "prompt": compose_prompt(request),
            "image_size": {"width": request.width, "height": request.height},
            "seed": request.seed,
            "num_images": request.count,
            "enable_safety_checker": True,
            "output_format": "png",
            **reference_fields(self.model, refs),
        }
        if request.negative_prompt:
            arguments["negative_prompt"] = request.negative_prompt
        result = await self.run(arguments, self.settings.image_deadline_s)
        items = field_of(NAME, result, "images")
        if not isinstance(items, list) or not items:
            raise ProviderBadResponse(NAME, "result has no images")
        flags = result.get("has_nsfw_concepts") or []
        flagged = {i for i, f in enumerate(flags) if f is True}
        kept = [item for i, item in enumerate(items) if i not in flagged]
        if not kept:
            raise ContentRefused(NAME, "every image was flagged by the safety checker")
        images: list[Media] = []
        for item in kept:
            url = field_of(NAME, item, "url")
            images.append(await self.service.download(str(url), "image"))
        seed = result.get("seed") if isinstance(result.get("seed"), int) else request.seed
        usage = self.prices.usage(NAME, self.model, "image", len(items))
        return ImageResult(images=images, seeds=[seed + i for i in range(len(images))], usage=usage)


class FalAnimator(_FalBase):
    default_model = "fal-ai/kling-video/v1.6/standard/image-to-video"

    def arguments(self, request: AnimateRequest) -> tuple[dict[str, Any], float]:
        """The model family's input, and the clip length it will bill and return."""
        m = self.model.lower()
        aspect = nearest_aspect(request.width, request.height, ("16:9", "9:16", "1:1"))
        args: dict[str, Any] = {
            "prompt": motion_prompt(request),
            "image_url": data_uri(request.image),
        }
        seconds = clip_seconds(self.model, request.duration_s)
        if "kling" in m:
            args |= {"duration": str(int(seconds)), "aspect_ratio": aspect}
        elif "wan" in m:
            args |= {"seed": request.seed, "aspect_ratio": aspect}
        else:
            args |= {"duration": request.duration_s, "seed": request.seed, "aspect_ratio": aspect}
        return args, seconds

    async def animate(self, request: AnimateRequest) -> ClipResult:
        args, seconds = self.arguments(request)
        result = await self.run(args, self.settings.video_deadline_s)
        url = field_of(NAME, result, "video", "url")
        clip = await self.service.download(str(url), "video")
        usage = self.prices.usage(NAME, self.model, "second", seconds)
        return ClipResult(clip=clip, duration_s=seconds, usage=usage)


def audio_url(result: Any) -> str:
    """The audio file's URL, wherever this model family puts it (``audio_file`` for Stable
    Audio, ``audio`` for MMAudio and most others, ``audio_url`` for a few)."""
    if isinstance(result, dict):
        for key in ("audio_file", "audio", "audio_url"):
            item = result.get(key)
            url = item.get("url") if isinstance(item, dict) else item
            if isinstance(url, str) and url.startswith(("http://", "https://", "data:")):
                return url
    raise ProviderBadResponse(NAME, "result has no audio file")


class FalMusicMaker(_FalBase):
    default_model = "fal-ai/stable-audio"
    MIN_S, MAX_S = 1, 47  # Stable Audio Open's longest clip

    async def compose(self, request: MusicRequest) -> MusicResult:
        seconds = music_seconds(request.duration_s, self.MIN_S, self.MAX_S)
        args = music_inputs(self.model, request, seconds)
        result = await self.run(args, self.settings.video_deadline_s)
        audio = await self.service.download(audio_url(result), "audio")
        usage = self.prices.usage(NAME, self.model, "second", seconds)
        return MusicResult(audio=audio, duration_s=float(seconds), usage=usage)
