"""Checks behind ``storyloom providers``: is each configured service reachable, is its key
accepted. Every check uses a call the service does not bill (a model list, an account page, the
status of a request that does not exist), and none of them raises.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from providers.base import Capability
from providers.config import ProviderSettings
from providers.http import Probe
from providers.pricing import PriceTable
from providers.registry import UnknownProvider, build_provider, parse_chain

CAPABILITIES: tuple[Capability, ...] = ("script", "image", "video", "speech", "music")

# provider name -> the settings field holding its key; a blank key fails without a network call.
KEY_FIELDS = {
    "openai": "openai_api_key",
    "fal": "fal_key",
    "replicate": "replicate_api_token",
    "elevenlabs": "elevenlabs_api_key",
    "runway": "runway_api_key",
}


class CheckResult(BaseModel):
    capability: str
    provider: str
    model: str = ""
    ok: bool
    reachable: bool | None = None
    key_accepted: bool | None = None
    detail: str


def _key_missing(name: str, settings: ProviderSettings) -> str | None:
    field = KEY_FIELDS.get(name)
    if field is None:
        return None
    if getattr(settings, field).get_secret_value():
        return None
    if name == "openai" and "api.openai.com" not in settings.openai_base_url:
        return None  # local OpenAI-compatible servers (Ollama, vLLM, LM Studio) need no key
    return f"no key set (STORYLOOM_{field.upper()})"


async def check_chains(settings: ProviderSettings) -> list[CheckResult]:
    """One result per entry of every chain, in chain order; each service probed once."""
    results: list[CheckResult] = []
    probes: dict[tuple[str, str], asyncio.Task[Probe]] = {}
    pending: list[tuple[int, asyncio.Task[Probe]]] = []
    try:
        PriceTable(settings.price_overrides)
    except ValueError as err:
        results.append(CheckResult(capability="pricing", provider="-", ok=False, detail=str(err)))
    for capability in CAPABILITIES:
        entries = parse_chain(getattr(settings, capability)) or [("offline", "")]
        for name, model in entries:
            base = {"capability": capability, "provider": name, "model": model}
            if name == "offline":
                results.append(CheckResult(**base, ok=True, reachable=True,
                                           detail="built in, no key needed"))
                continue
            missing = _key_missing(name, settings)
            if missing:
                results.append(CheckResult(**base, ok=False, key_accepted=False, detail=missing))
                continue
            try:
                provider: Any = build_provider(capability, name, model, settings)
            except UnknownProvider as err:
                results.append(CheckResult(**base, ok=False, detail=str(err)))
                continue
            except Exception as err:  # a bad setting must not hide the other checks
                results.append(CheckResult(**base, ok=False, detail=f"cannot build: {err}"))
                continue
            key = (name, repr(provider) if name == "comfyui" else "")
            if key not in probes:
                probes[key] = asyncio.create_task(provider.check())
            results.append(CheckResult(**base, ok=False, detail="checking"))
            pending.append((len(results) - 1, probes[key]))
    for index, task in pending:
        try:
            found = await task
        except Exception as err:
            found = Probe(False, None, f"check failed: {type(err).__name__}")
        results[index] = results[index].model_copy(update={
            "ok": found.reachable and found.key_accepted is True,
            "reachable": found.reachable,
            "key_accepted": found.key_accepted,
            "detail": found.detail,
        })
    return results
