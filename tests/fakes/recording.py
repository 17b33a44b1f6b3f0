"""A recording wrapper around provider chains: counts every real provider call by its request."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from providers.registry import Chain, Providers

METHODS = {"script": "write", "image": "generate", "video": "animate", "speech": "speak",
           "music": "compose"}


def fingerprint(request: BaseModel) -> str:
    data = request.model_dump_json(exclude={"image", "characters"})
    return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass
class Recorder:
    calls: list[tuple[str, str, BaseModel]] = field(default_factory=list)

    def of(self, capability: str) -> list[BaseModel]:
        return [req for cap, _, req in self.calls if cap == capability]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cap, _, _ in self.calls:
            out[cap] = out.get(cap, 0) + 1
        return out

    def clear(self) -> None:
        self.calls.clear()


class _Proxy:
    def __init__(self, inner: Any, capability: str, recorder: Recorder) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "inner")
        self.capability = capability
        self.recorder = recorder
        setattr(self, METHODS[capability], self._call)

    async def _call(self, request: BaseModel) -> Any:
        self.recorder.calls.append((self.capability, fingerprint(request), request))
        return await getattr(self.inner, METHODS[self.capability])(request)


def recording(providers: Providers, recorder: Recorder) -> Providers:
    def wrap(cap: str) -> Chain[Any]:
        chain = providers.chain(cap)  # type: ignore[arg-type]
        return Chain(chain.capability, [_Proxy(p, cap, recorder) for p in chain.providers])

    return Providers(script=wrap("script"), image=wrap("image"), video=wrap("video"),
                     speech=wrap("speech"), music=wrap("music"))
