"""The common part of every fake service: a real aiohttp server on 127.0.0.1 that records each
request, counts requests in flight (and their peak), and can be scripted to fail or hang."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

DATA = Path(__file__).resolve().parent.parent / "data" / "providers"


def load(name: str, /, **subs: Any) -> Any:
    """A documented example payload from tests/data/providers, with ``__NAME__`` filled in."""
    text = (DATA / name).read_text(encoding="utf-8")
    for key, value in subs.items():
        text = text.replace(f"__{key.upper()}__", str(value))
    return json.loads(text)


def png(color: tuple[int, int, int] = (200, 80, 40), size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def mp4() -> bytes:
    """Enough of an MP4 (ftyp + mdat boxes) for a type sniffer; never decoded in these tests."""
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomavc1"
    mdat = b"\x00\x00\x00\x10mdat" + b"\x00" * 8
    return ftyp + mdat


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str, bytes]] = field(default_factory=list)  # (field, filename, bytes)


@dataclass
class Scripted:
    method: str
    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0


RECORDED = web.RequestKey("recorded", Recorded)


class FakeService:
    """Subclasses add routes in :meth:`routes`. ``delay_s`` slows every answer (for the
    concurrency tests); ``script()`` queues one-off answers before the real handler runs."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.inflight = 0
        self.peak = 0
        self.delay_s = 0.0
        self.scripted: list[Scripted] = []
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 2**20)
        self.routes(self.app.router)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def script(self, method: str, path: str, status: int, body: Any = None,
               headers: dict[str, str] | None = None, hang_s: float = 0.0) -> None:
        self.scripted.append(Scripted(method, path, status, body, headers or {}, hang_s))

    def calls(self, method: str, path_prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    async def start(self) -> FakeService:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> Recorded:
        rec = Recorded(request.method, request.path, dict(request.query), dict(request.headers))
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    rec.files.append((name, value.filename, value.file.read()))
                else:
                    rec.form[name] = str(value)
        elif request.can_read_body:
            rec.body = await request.read()
            if "json" in ctype:
                try:
                    rec.json = json.loads(rec.body)
                except ValueError:
                    rec.json = None
        return rec

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            rec = await self._record(request)
            self.requests.append(rec)
            request[RECORDED] = rec
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            for i, s in enumerate(self.scripted):
                if s.method == request.method and request.path.startswith(s.path):
                    del self.scripted[i]
                    if s.hang_s:
                        await asyncio.sleep(s.hang_s)
                    if isinstance(s.body, bytes | str):
                        return web.Response(status=s.status, body=s.body, headers=s.headers)
                    return web.json_response(s.body, status=s.status, headers=s.headers)
            return await handler(request)
        finally:
            self.inflight -= 1


class FileHost(FakeService):
    """A CDN: serves whatever bytes were put at a path, with a chosen content type."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, bool]] = {}
        super().__init__()

    def put(self, path: str, data: bytes, content_type: str, *, chunked: bool = False) -> str:
        self.files[path] = (data, content_type, chunked)
        return f"{self.url}{path}"

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/{tail:.*}", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        found = self.files.get(request.path)
        if found is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        data, ctype, chunked = found
        if not chunked:
            return web.Response(body=data, content_type=ctype.split(";")[0])
        response = web.StreamResponse(headers={"Content-Type": ctype})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(data), 65536):
            await response.write(data[i : i + 65536])
        await response.write_eof()
        return response
