"""Runway's API (``api.dev.runwayml.com``) as an image-to-video animator.

``POST /v1/image_to_video`` with ``model``, ``promptImage`` (the frame, as a data URI: it becomes
the first frame), ``promptText``, ``ratio`` and ``duration`` answers a task id; ``GET
/v1/tasks/{id}`` goes ``PENDING``/``THROTTLED`` -> ``RUNNING`` -> ``SUCCEEDED`` (``output`` holds
short-lived video URLs) or ``FAILED`` (``failureCode``, ``SAFETY.*`` for moderation) or
``CANCELLED``. Every request carries ``X-Runway-Version``. Billing is in credits per second of
video, by model.

:meth:`RunwayAnimator.submit` (returns the task id) and :meth:`RunwayAnimator.resume` (polls a
known id to the end and downloads) are separate, so a job journal can resume a paid task.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

from providers.base import (
    AnimateRequest,
    ClipResult,
    ContentRefused,
    ProviderBadResponse,
    ProviderUnavailable,
)
from providers.config import ProviderSettings
from providers.http import (
    Cancel,
    HttpProvider,
    Probe,
    Service,
    data_uri,
    field_of,
    motion_prompt,
    nearest_aspect,
    poll_job,
    probe,
    run_clip_job,
)

NAME = "runway"
API_VERSION = "2024-11-06"
DONE = {"SUCCEEDED", "FAILED", "CANCELLED"}
PENDING = {"PENDING", "THROTTLED", "RUNNING"}
JOB_LIMIT = 2  # tasks running at once per worker; Runway queues more as THROTTLED
DURATIONS = (5, 10)
RATIOS = {
    "gen4_turbo": ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"),
    "gen3a_turbo": ("1280:768", "768:1280"),
}
_SAFETY = re.compile(r"safety|moderation|content polic", re.IGNORECASE)


def _refusal(response: Any, payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    text = str(payload.get("error") or "")
    code = str(payload.get("failureCode") or payload.get("code") or "")
    if code.startswith("SAFETY") or _SAFETY.search(text):
        return text or code
    return None


def clip_duration(duration_s: float) -> int:
    return next((d for d in DURATIONS if d >= duration_s - 0.25), DURATIONS[-1])


def clip_ratio(model: str, width: int, height: int) -> str:
    ratios = RATIOS.get(model, RATIOS["gen4_turbo"])
    return nearest_aspect(width, height, ratios)


class RunwayAnimator(HttpProvider):
    name = NAME
    default_model = "gen4_turbo"
    refusal = staticmethod(_refusal)

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        super().__init__(model, settings)
        self.poll_interval_s = settings.poll_interval_s
        key = settings.runway_api_key

        def auth() -> dict[str, str]:  # every call, polls and cancels too, names the version
            secret = key.get_secret_value()
            bearer = {"Authorization": f"Bearer {secret}"} if secret else {}
            return {**bearer, "X-Runway-Version": API_VERSION}

        self.service = Service(NAME, settings, auth=auth,
                               secrets=lambda: [key.get_secret_value()], refusal=_refusal)
        self.service.limit = min(JOB_LIMIT, settings.provider_concurrency)

    @staticmethod
    def endpoint(settings: ProviderSettings) -> tuple[str, SecretStr]:
        return settings.runway_base_url, settings.runway_api_key

    async def check(self) -> Probe:
        """``GET /v1/organization``: the credit balance, free."""
        return await probe(self.service, f"{self.base_url}/v1/organization")

    async def submit(self, request: AnimateRequest) -> str:
        """Start a task; returns its id (credits are spent from here on)."""
        body: dict[str, Any] = {
            "model": self.model,
            "promptImage": data_uri(request.image),
            "promptText": motion_prompt(request)[:1000],
            "ratio": clip_ratio(self.model, request.width, request.height),
            "duration": clip_duration(request.duration_s),
            "seed": request.seed % 4294967295,
        }
        task = await self.service.json("POST", f"{self.base_url}/v1/image_to_video", json=body,
                                       kind="upload", what="task")
        return str(field_of(NAME, task, "id"))

    def _cancel(self, url: str) -> Cancel:
        async def cancel(state: Any) -> bool:
            """DELETE a task: confirmed only while it has not started (not yet charged)."""
            await self.service.request("DELETE", url, kind="poll", what="cancel")
            return bool(state.get("status") in ("PENDING", "THROTTLED"))

        return cancel

    async def resume(self, task_id: str, duration_s: float) -> ClipResult:
        """Poll a started task to its end, then download the clip and price its seconds."""
        url = f"{self.base_url}/v1/tasks/{task_id}"
        task: Any = await poll_job(
            self.service, url, done=DONE, pending=PENDING, cancel=self._cancel(url),
            deadline_s=self.settings.video_deadline_s, interval_s=self.poll_interval_s,
            what=f"task {task_id}",
        )
        status = task["status"]
        if status != "SUCCEEDED":
            code = str(task.get("failureCode") or "")
            reason = str(task.get("failure") or code or status)[:300]
            if code.startswith("SAFETY"):
                raise ContentRefused(NAME, reason)
            raise ProviderUnavailable(NAME, f"task {status.lower()}: {reason}")
        output = task.get("output")
        if not isinstance(output, list) or not output or not isinstance(output[0], str):
            raise ProviderBadResponse(NAME, "task succeeded without a video URL")
        clip = await self.service.download(output[0], "video")
        seconds = float(clip_duration(duration_s))
        usage = self.prices.usage(NAME, self.model, "second", seconds)
        return ClipResult(clip=clip, duration_s=seconds, usage=usage)

    async def animate(self, request: AnimateRequest) -> ClipResult:
        return await run_clip_job(self.service, self.model, request,
                                  lambda: self.submit(request),
                                  lambda task: self.resume(task, request.duration_s))
