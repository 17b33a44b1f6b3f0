"""Fakes of OpenAI's video API (Sora) and Runway's API, from each service's API reference:
their request validation, job states, error bodies and moderation failures."""

from __future__ import annotations

import io
import uuid
from typing import Any

from aiohttp import web
from PIL import Image

from tests.fakes.base import RECORDED, load, mp4
from tests.fakes.services import GOOD_KEY, _Keyed

SORA_SIZES = {
    "sora-2": {"720x1280", "1280x720"},
    "sora-2-pro": {"720x1280", "1280x720", "1024x1792", "1792x1024"},
}
RUNWAY_RATIOS = {
    "gen4_turbo": {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"},
    "gen3a_turbo": {"1280:768", "768:1280"},
}


class FakeSora(_Keyed):
    """``/v1/videos`` create (multipart), retrieve, content, delete; ``/v1/models/{id}``."""

    def __init__(self, key: str = GOOD_KEY) -> None:
        self.videos: dict[str, dict[str, Any]] = {}
        self.statuses = ["queued", "in_progress", "completed"]
        self.refuse_words: set[str] = set()  # blocked when the video is created
        self.fail_with = ""  # a failed job: "moderation" or "internal"
        self.deleted: list[str] = []
        self.active: set[str] = set()  # created and not yet downloaded
        self.peak_active = 0
        super().__init__(key)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/videos", self.create)
        router.add_get("/v1/videos/{id}", self.retrieve)
        router.add_get("/v1/videos/{id}/content", self.content)
        router.add_delete("/v1/videos/{id}", self.delete)
        router.add_get("/v1/models/{model}", self.model)

    def _bad(self, name: str, status: int = 400) -> web.Response:
        return web.json_response(load(name), status=status)

    async def create(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        rec = request[RECORDED]
        model = rec.form.get("model", "sora-2")
        size = rec.form.get("size", "720x1280")
        seconds = rec.form.get("seconds", "4")
        if model not in SORA_SIZES or size not in SORA_SIZES[model] \
                or seconds not in {"4", "8", "12"}:
            return web.json_response({"error": {
                "message": f"Invalid value for model, size or seconds: {model} {size} {seconds}",
                "type": "invalid_request_error", "param": "size", "code": None}}, status=400)
        refs = [f for f in rec.files if f[0] == "input_reference"]
        if refs:
            with Image.open(io.BytesIO(refs[0][2])) as img:
                if "x".join(str(v) for v in img.size) != size:
                    return self._bad("sora_error_400_size.json")
        if any(w in rec.form.get("prompt", "").lower() for w in self.refuse_words):
            return self._bad("sora_error_400_moderation.json")
        video_id = f"video_{uuid.uuid4().hex}"
        self.videos[video_id] = {"model": model, "size": size, "seconds": seconds,
                                 "statuses": list(self.statuses)}
        self.active.add(video_id)
        self.peak_active = max(self.peak_active, len(self.active))
        return web.json_response(self._object(video_id, "queued"))

    def _object(self, video_id: str, status: str) -> Any:
        v = self.videos[video_id]
        name = f"sora_video_{status}.json"
        if status == "failed":
            name = f"sora_video_failed_{self.fail_with or 'internal'}.json"
        return load(name, id=video_id, model=v["model"], size=v["size"], seconds=v["seconds"])

    async def retrieve(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        video_id = request.match_info["id"]
        v = self.videos.get(video_id)
        if v is None:
            return web.json_response({"error": {"message": "Video not found",
                                                "type": "invalid_request_error", "param": None,
                                                "code": "not_found"}}, status=404)
        status = v["statuses"].pop(0) if len(v["statuses"]) > 1 else v["statuses"][0]
        if status == "completed" and self.fail_with:
            status = "failed"
        return web.json_response(self._object(video_id, status))

    async def content(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        if request.match_info["id"] not in self.videos:
            return web.json_response({"error": {"message": "Video not found"}}, status=404)
        self.active.discard(request.match_info["id"])
        return web.Response(body=mp4(), content_type="video/mp4")

    async def delete(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        self.deleted.append(request.match_info["id"])
        return web.json_response({"id": request.match_info["id"], "object": "video.deleted",
                                  "deleted": True})

    async def model(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        name = request.match_info["model"]
        if name not in SORA_SIZES:
            return web.json_response({"error": {"message": f"The model '{name}' does not exist",
                                                "type": "invalid_request_error", "param": None,
                                                "code": "model_not_found"}}, status=404)
        return web.json_response(load("openai_model_sora.json", model=name))


class FakeRunway(_Keyed):
    """``/v1/image_to_video``, ``/v1/tasks/{id}`` (GET, DELETE), ``/v1/organization``, and the
    CDN its task output points at. Every API call needs ``X-Runway-Version``."""

    error_401 = "runway_error_401.json"
    version = "2024-11-06"

    def __init__(self, key: str = GOOD_KEY) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.statuses = ["PENDING", "THROTTLED", "RUNNING", "SUCCEEDED"]
        self.fail_with = ""  # "safety" or "internal"
        self.cancelled: list[str] = []
        self.active: set[str] = set()
        self.peak_active = 0
        super().__init__(key)

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/image_to_video", self.create)
        router.add_get("/v1/tasks/{id}", self.task)
        router.add_delete("/v1/tasks/{id}", self.cancel)
        router.add_get("/v1/organization", self.organization)
        router.add_get("/cdn/{name}", self.cdn)

    def denied(self, request: web.Request) -> web.Response | None:
        refused = super().denied(request)
        if refused is not None:
            return refused
        if request.headers.get("X-Runway-Version") != self.version:
            return web.json_response(load("runway_error_400_version.json"), status=400)
        return None

    async def create(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        body = request[RECORDED].json or {}
        model = body.get("model")
        image = str(body.get("promptImage", ""))
        if model not in RUNWAY_RATIOS or body.get("ratio") not in RUNWAY_RATIOS[model] \
                or body.get("duration") not in (5, 10) \
                or not image.startswith(("https://", "data:image/")):
            return web.json_response(load("runway_error_400.json"), status=400)
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = {"body": body, "statuses": list(self.statuses)}
        self.active.add(task_id)
        self.peak_active = max(self.peak_active, len(self.active))
        return web.json_response(load("runway_task_created.json", id=task_id))

    async def task(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        task_id = request.match_info["id"]
        t = self.tasks.get(task_id)
        if t is None:
            return web.json_response({"error": "Task not found"}, status=404)
        status = t["statuses"].pop(0) if len(t["statuses"]) > 1 else t["statuses"][0]
        if status == "SUCCEEDED" and self.fail_with:
            return web.json_response(load(f"runway_task_failed_{self.fail_with}.json",
                                          id=task_id))
        return web.json_response(load(f"runway_task_{status.lower()}.json", id=task_id,
                                      url=f"{self.url}/cdn/{task_id}.mp4?sig=abc"))

    async def cancel(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        self.cancelled.append(request.match_info["id"])
        return web.Response(status=204)

    async def organization(self, request: web.Request) -> web.Response:
        if (denied := self.denied(request)) is not None:
            return denied
        return web.json_response(load("runway_organization.json"))

    async def cdn(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:  # a signed URL: a key sent here would leak
            return web.Response(status=400, text="unexpected Authorization header")
        self.active.discard(request.match_info["name"].removesuffix(".mp4"))
        return web.Response(body=mp4(), content_type="video/mp4")
