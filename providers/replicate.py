"""Replicate predictions, for any image, video or music model.

The chain entry names the model as ``owner/name`` (``POST /v1/models/{owner}/{name}/predictions``,
the model's latest version) or as ``owner/name:version`` or a bare 64-hex version id
(``POST /v1/predictions`` with ``version``). Requests carry ``Prefer: wait=N`` so most image models
answer in the same call; a prediction still ``starting`` or ``processing`` when the wait ends is
polled at ``urls.get`` until ``succeeded``, ``failed`` or ``canceled``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import SecretStr

from providers.base import (
    AnimateRequest,
    CharacterRef,
    ClipResult,
    ContentRefused,
    ImageRequest,
    ImageResult,
    JobRef,
    MusicRequest,
    MusicResult,
    ProviderBadResponse,
)
from providers.config import ProviderSettings
from providers.http import (
    HttpProvider,
    JobFailed,
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

NAME = "replicate"
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
PENDING = {"starting", "processing"}
ASPECTS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21")
_REFUSAL = re.compile(r"nsfw|sensitive|flagged|content polic|safety", re.IGNORECASE)


def _refusal(response: Any, payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    text = str(payload.get("detail") or payload.get("error") or "")
    return text if text and _REFUSAL.search(text) else None


def output_urls(output: Any) -> list[str]:
    """Every URL (or data URI) in a prediction's output, in order, whatever its shape."""
    if isinstance(output, str):
        return [output] if output.startswith(("http://", "https://", "data:")) else []
    if isinstance(output, list):
        return [u for item in output for u in output_urls(item)]
    if isinstance(output, dict):
        return [u for item in output.values() for u in output_urls(item)]
    return []


def reference_fields(model: str, refs: list[CharacterRef]) -> dict[str, Any]:
    uris = [data_uri(c.reference) for c in refs if c.reference is not None]
    if not uris:
        return {}
    m = model.lower()
    if "kontext" in m:
        return {"input_image": uris[0]}
    if "pulid" in m:
        return {"main_face_image": uris[0]}
    if "redux" in m:
        return {"redux_image": uris[0]}
    return {}


class _ReplicateBase(HttpProvider):
    name = NAME
    refusal = staticmethod(_refusal)

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        super().__init__(model, settings)
        self.poll_interval_s = settings.poll_interval_s

    @staticmethod
    def endpoint(settings: ProviderSettings) -> tuple[str, SecretStr]:
        return settings.replicate_base_url, settings.replicate_api_token

    @property
    def model_name(self) -> str:
        """``owner/name`` without a version, for the price table."""
        return self.model.split(":")[0]

    async def check(self) -> Probe:
        """``GET /account``: who the token belongs to, free."""
        return await probe(self.service, f"{self.base_url}/account")

    def _endpoint(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        owner_name, _, version = self.model.partition(":")
        if re.fullmatch(r"[0-9a-f]{64}", owner_name):
            version, owner_name = owner_name, ""
        if version:
            return f"{self.base_url}/predictions", {"version": version, "input": inputs}
        if owner_name.count("/") != 1:
            raise ProviderBadResponse(NAME, f"model {self.model!r} is not owner/name[:version]")
        return f"{self.base_url}/models/{owner_name}/predictions", {"input": inputs}

    async def predict(self, inputs: dict[str, Any], deadline_s: float) -> Any:
        """Create a prediction once (see :func:`run_job`), wait for it, and return its output
        (or a typed error). The prediction is created without ``Prefer: wait`` so that its id
        is recorded before any waiting."""
        url, body = self._endpoint(inputs)

        async def earlier() -> httpx.Response | None:
            """The prediction an attempt whose answer was lost created, from the newest
            predictions of the account (the list carries each one's input)."""
            listed = await self.service.json("GET", f"{self.base_url}/predictions", kind="poll",
                                             what="list predictions")
            for pred in (listed.get("results") or []) if isinstance(listed, dict) else []:
                if isinstance(pred, dict) and pred.get("input") == inputs and (
                    pred.get("status") in PENDING | {"succeeded"}
                ):
                    return httpx.Response(201, json=pred)
            return None

        async def submit() -> JobRef:
            prediction = await self.service.json("POST", url, json=body, what="prediction",
                                                 found=earlier)
            prediction_id = str(field_of(NAME, prediction, "id"))
            urls = prediction.get("urls") or {}
            return JobRef(service=NAME, id=prediction_id, urls={
                "get": str(urls.get("get") or f"{self.base_url}/predictions/{prediction_id}"),
                "cancel": str(urls.get("cancel")
                              or f"{self.base_url}/predictions/{prediction_id}/cancel"),
            })

        async def follow(job: JobRef) -> Any:
            async def cancel(state: Any) -> bool:
                answer = await self.service.json("POST", job.urls["cancel"], kind="poll",
                                                 what="cancel")
                return isinstance(answer, dict) and answer.get("status") == "canceled"

            prediction = await poll_job(
                self.service, job.urls["get"], done=TERMINAL, pending=PENDING, cancel=cancel,
                deadline_s=deadline_s, interval_s=self.poll_interval_s,
                what=f"prediction {job.id}",
            )
            status = prediction["status"]
            if status == "succeeded":
                return prediction.get("output")
            error = str(prediction.get("error") or status)[:300]
            if _REFUSAL.search(error):
                raise ContentRefused(NAME, error)
            raise JobFailed(NAME, f"prediction {status}: {error}")

        return await run_job(self.service, self.model, body, submit, follow)


class ReplicateImageGenerator(_ReplicateBase):
    default_model = "black-forest-labs/flux-schnell"

    async def generate(self, request: ImageRequest) -> ImageResult:
        refs = [c for c in request.characters if c.reference is not None]
        inputs: dict[str, Any] = {
            "prompt": compose_prompt(request),
            "seed": request.seed,
            "num_outputs": request.count,
            "aspect_ratio": nearest_aspect(request.width, request.height, ASPECTS),
            "width": request.width,
            "height": request.height,
            "output_format": "png",
            **reference_fields(self.model, refs),
        }
        if request.negative_prompt:
            inputs["negative_prompt"] = request.negative_prompt
        output = await self.predict(inputs, self.settings.image_deadline_s)
        urls = output_urls(output)
        if not urls:
            raise ProviderBadResponse(NAME, "prediction succeeded without an image URL")
        images = [await self.service.download(u, "image") for u in urls]
        usage = self.prices.usage(NAME, self.model_name, "image", len(images))
        return ImageResult(
            images=images, seeds=[request.seed + i for i in range(len(images))], usage=usage
        )


class ReplicateAnimator(_ReplicateBase):
    default_model = "kwaivgi/kling-v1.6-standard"

    async def animate(self, request: AnimateRequest) -> ClipResult:
        m = self.model.lower()
        seconds = clip_seconds(self.model, request.duration_s)
        inputs: dict[str, Any] = {
            "prompt": motion_prompt(request),
            ("start_image" if "kling" in m else "image"): data_uri(request.image),
            "duration": int(seconds) if "kling" in m else seconds,  # what is billed
            "aspect_ratio": nearest_aspect(request.width, request.height, ("16:9", "9:16", "1:1")),
            "seed": request.seed,
        }
        output = await self.predict(inputs, self.settings.video_deadline_s)
        urls = output_urls(output)
        if not urls:
            raise ProviderBadResponse(NAME, "prediction succeeded without a video URL")
        clip = await self.service.download(urls[0], "video")
        usage = self.prices.usage(NAME, self.model_name, "second", seconds)
        return ClipResult(clip=clip, duration_s=seconds, usage=usage)


class ReplicateMusicMaker(_ReplicateBase):
    """Text-to-music models such as ``meta/musicgen`` (at most 30 s a clip, which the
    assembler loops under a longer story) or a Stable Audio port (``seconds_total``)."""

    default_model = "meta/musicgen"
    MIN_S, MAX_S = 1, 30  # MusicGen's longest clip

    async def compose(self, request: MusicRequest) -> MusicResult:
        seconds = music_seconds(request.duration_s, self.MIN_S, self.MAX_S)
        inputs = music_inputs(self.model, request, seconds)
        if "duration" in inputs:
            inputs["output_format"] = "wav"  # MusicGen's choice of wav or mp3
        output = await self.predict(inputs, self.settings.video_deadline_s)
        urls = output_urls(output)
        if not urls:
            raise ProviderBadResponse(NAME, "prediction succeeded without an audio URL")
        audio = await self.service.download(urls[0], "audio")
        usage = self.prices.usage(NAME, self.model_name, "second", seconds)
        return MusicResult(audio=audio, duration_s=float(seconds), usage=usage)
