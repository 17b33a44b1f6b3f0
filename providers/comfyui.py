"""A self-hosted ComfyUI server, driven by a workflow template in API format.

The template is the JSON that ComfyUI's "Save (API)" writes, with placeholders as string values:
``{{prompt}}``, ``{{negative}}``, ``{{seed}}``, ``{{width}}``, ``{{height}}``, ``{{batch}}`` and
``{{reference_image}}``. A value that is exactly one placeholder takes the placeholder's type (so
``"{{seed}}"`` becomes an integer); placeholders inside longer text are substituted as text.
The reference sheet is sent with ``POST /upload/image`` and the placeholder becomes its name.

The filled workflow goes to ``POST /prompt`` with a ``client_id``; progress is followed on
``/ws?clientId=`` (``executing`` with ``node: null`` means done, ``execution_error`` means failed),
falling back to polling ``/history/{prompt_id}`` if the socket drops; images come from ``/view``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from providers.base import (
    ImageRequest,
    ImageResult,
    JobRef,
    Media,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderUnavailable,
)
from providers.config import ProviderSettings
from providers.http import (
    Probe,
    Service,
    compose_prompt,
    field_of,
    poll_until,
    probe,
    run_job,
)
from providers.pricing import PriceTable

log = logging.getLogger(__name__)

NAME = "comfyui"
REFERENCE = "{{reference_image}}"


def fill(template: Any, values: dict[str, Any]) -> Any:
    """The template with every ``{{name}}`` placeholder replaced by ``values[name]``."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str) and "{{" in template:
        for name, value in values.items():
            token = "{{" + name + "}}"
            if template == token:
                return value
            template = template.replace(token, str(value))
    return template


def _error_text(data: Any) -> str:
    if not isinstance(data, dict):
        return "unknown error"
    node = data.get("node_type") or data.get("node_id") or "?"
    return f"{data.get('exception_type', 'error')} in {node}: {data.get('exception_message', '')}"


def _node_errors(errors: Any) -> str:
    """ComfyUI's ``node_errors`` (node id -> class and errors) as words."""
    parts = []
    for node in errors.values() if isinstance(errors, dict) else []:
        if not isinstance(node, dict):
            continue
        for e in node.get("errors") or []:
            if isinstance(e, dict):
                parts.append(f"{node.get('class_type', 'a node')}: {e.get('message', 'error')}")
    return "; ".join(parts)[:300] or "the workflow has errors"


class ComfyUIImageGenerator:
    name: str = NAME

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        self.base_url = settings.comfyui_url.rstrip("/")
        path = Path(model) if model else settings.comfyui_workflow
        self.workflow_path = path
        self.model = path.name if path else ""
        self.deadline_s = settings.image_deadline_s
        self.poll_interval_s = settings.poll_interval_s
        self.prices = PriceTable(settings.price_overrides)
        self.service = Service(NAME, settings)
        self._template: Any = None

    def __repr__(self) -> str:
        return f"ComfyUIImageGenerator(url={self.base_url!r}, workflow={self.model!r})"

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> ComfyUIImageGenerator:
        return cls(model, settings)

    def template(self) -> Any:
        if self._template is None:
            if not self.base_url:
                raise ProviderBadRequest(NAME, "STORYLOOM_COMFYUI_URL is not set")
            if self.workflow_path is None:
                raise ProviderBadRequest(NAME, "no workflow template (STORYLOOM_COMFYUI_WORKFLOW)")
            try:
                self._template = json.loads(self.workflow_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ProviderBadRequest(
                    NAME, f"workflow template {self.workflow_path.name} unreadable: {err}"
                ) from err
        return self._template

    async def check(self) -> Probe:
        """``GET /system_stats``, and the template must load."""
        try:
            self.template()
        except ProviderBadRequest as err:
            return Probe(False, None, err.message)
        return await probe(self.service, f"{self.base_url}/system_stats")

    async def _upload(self, media: Media, name: str) -> str:
        answer = await self.service.json(
            "POST",
            f"{self.base_url}/upload/image",
            files={"image": (f"storyloom-{name}.{media.ext}", media.data, media.mime)},
            data={"overwrite": "true", "type": "input"},
            kind="upload",
            what="upload reference",
        )
        uploaded = str(field_of(NAME, answer, "name"))
        subfolder = answer.get("subfolder") if isinstance(answer, dict) else ""
        return f"{subfolder}/{uploaded}" if subfolder else uploaded

    async def generate(self, request: ImageRequest) -> ImageResult:
        template = self.template()
        values: dict[str, Any] = {
            "prompt": compose_prompt(request),
            "negative": request.negative_prompt,
            "seed": request.seed,
            "width": request.width,
            "height": request.height,
            "batch": request.count,
        }
        if REFERENCE in json.dumps(template):
            ref = next((c for c in request.characters if c.reference is not None), None)
            if ref is None or ref.reference is None:
                raise ProviderBadRequest(NAME, "this workflow needs a character reference image")
            values["reference_image"] = await self._upload(ref.reference, ref.name)
        workflow = fill(template, values)
        client_id = uuid.uuid4().hex
        ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        async with aiohttp.ClientSession() as session:
            ws: aiohttp.ClientWebSocketResponse | None
            try:
                ws = await session.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
            except (aiohttp.ClientError, OSError) as err:
                log.info("ComfyUI websocket unavailable, polling", extra={"reason": str(err)})
                ws = None

            async def submit() -> JobRef:
                queued = await self.service.json(
                    "POST", f"{self.base_url}/prompt",
                    json={"prompt": workflow, "client_id": client_id}, what="queue prompt",
                )
                prompt_id = str(field_of(NAME, queued, "prompt_id"))
                if queued.get("node_errors"):
                    raise ProviderBadRequest(NAME, "workflow rejected: "
                                             + _node_errors(queued["node_errors"]))
                return JobRef(service=NAME, id=prompt_id, urls={"client": client_id})

            async def follow(job: JobRef) -> list[dict[str, Any]]:
                if ws is not None and job.urls.get("client") == client_id:
                    await self._follow(ws, job.id)  # a resumed prompt is followed by history
                return await self._outputs(job.id)

            try:
                outputs = await run_job(self.service, self.model, workflow, submit, follow)
            finally:
                if ws is not None:
                    await ws.close()
        images = [await self._view(item) for item in outputs]
        if not images:
            raise ProviderBadResponse(NAME, "the workflow produced no output images")
        usage = self.prices.usage(NAME, self.model, "image", len(images))
        return ImageResult(
            images=images, seeds=[request.seed + i for i in range(len(images))], usage=usage
        )

    async def _follow(self, ws: aiohttp.ClientWebSocketResponse, prompt_id: str) -> None:
        """Read socket messages until our prompt finishes; return early if the socket drops."""
        try:
            async with asyncio.timeout(self.deadline_s):
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue  # binary preview frames
                    try:
                        event = json.loads(msg.data)
                    except ValueError:
                        continue
                    kind, data = event.get("type"), event.get("data") or {}
                    if not isinstance(data, dict) or data.get("prompt_id") not in (None, prompt_id):
                        continue
                    if kind == "progress":
                        log.debug("comfyui progress", extra={"value": data.get("value"),
                                                              "max": data.get("max")})
                    elif kind == "execution_error" and data.get("prompt_id") == prompt_id:
                        raise ProviderUnavailable(NAME, _error_text(data))
                    elif kind == "execution_interrupted" and data.get("prompt_id") == prompt_id:
                        raise ProviderUnavailable(NAME, "execution interrupted")
                    elif kind in ("executing", "execution_success") and (
                        data.get("prompt_id") == prompt_id
                        and (kind == "execution_success" or data.get("node") is None)
                    ):
                        return
        except TimeoutError as err:
            raise ProviderUnavailable(
                NAME, f"prompt still running after {self.deadline_s:g}s"
            ) from err
        log.info("ComfyUI websocket closed early; polling history", extra={"provider": NAME})

    async def _outputs(self, prompt_id: str) -> list[dict[str, Any]]:
        async def fetch() -> Any:
            return await self.service.json(
                "GET", f"{self.base_url}/history/{prompt_id}", kind="poll", what="history"
            )

        def finished(history: Any) -> bool:
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if not isinstance(entry, dict):
                return False
            status = entry.get("status") or {}
            return bool(entry.get("outputs")) or bool(status.get("completed")) or (
                status.get("status_str") == "error"
            )

        history = await poll_until(
            self.service, fetch, finished, deadline_s=self.deadline_s,
            interval_s=self.poll_interval_s, what=f"prompt {prompt_id}",
        )
        entry = history[prompt_id]
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            messages = [m for m in status.get("messages") or [] if m and m[0] == "execution_error"]
            raise ProviderUnavailable(
                NAME, _error_text(messages[0][1]) if messages else "execution failed"
            )
        found: list[dict[str, Any]] = []
        outputs = entry.get("outputs")
        if not isinstance(outputs, dict):
            raise ProviderBadResponse(NAME, "history entry has no outputs")
        for node_output in outputs.values():
            for image in (node_output or {}).get("images") or []:
                if isinstance(image, dict) and image.get("type", "output") == "output":
                    found.append(image)
        return found

    async def _view(self, image: dict[str, Any]) -> Media:
        params = {
            "filename": str(field_of(NAME, image, "filename")),
            "subfolder": str(image.get("subfolder", "")),
            "type": str(image.get("type", "output")),
        }
        return await self.service.download(f"{self.base_url}/view?{urlencode(params)}", "image")
