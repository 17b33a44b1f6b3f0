"""What each call costs, estimated from a price table the operator can override.

Prices are per billing unit: ``image``, ``second`` (of video or music), ``character`` (of speech),
``mtok`` (a million tokens, with a separate output rate) or ``request``. They are estimates for
the cost ledger and the budget check, not invoices. ``STORYLOOM_PRICE_OVERRIDES`` is JSON keyed by
``provider:model`` (or a bare ``provider`` for all its models of that unit); a value is a number
(USD per unit) or ``{"per": "image", "usd": 0.03, "usd_output": 0}``.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ValidationError

from providers.base import Usage

Unit = Literal["image", "second", "character", "mtok", "request"]


class Price(BaseModel):
    per: Unit
    usd: float
    usd_output: float = 0.0


def _p(per: Unit, usd: float, usd_output: float = 0.0) -> Price:
    return Price(per=per, usd=usd, usd_output=usd_output)


# List prices at the time of writing; operators correct them with STORYLOOM_PRICE_OVERRIDES.
DEFAULT_PRICES: dict[str, Price] = {
    "openai:gpt-4o-mini": _p("mtok", 0.15, 0.60),
    "openai:gpt-4o": _p("mtok", 2.50, 10.00),
    "openai:gpt-4.1-mini": _p("mtok", 0.40, 1.60),
    "openai:gpt-4.1": _p("mtok", 2.00, 8.00),
    "openai:gpt-image-1": _p("image", 0.042),
    "openai:dall-e-3": _p("image", 0.040),
    "openai:tts-1": _p("character", 15.0 / 1e6),
    "openai:tts-1-hd": _p("character", 30.0 / 1e6),
    "openai:gpt-4o-mini-tts": _p("character", 12.0 / 1e6),
    "fal:fal-ai/flux/dev": _p("image", 0.025),
    "fal:fal-ai/flux/schnell": _p("image", 0.003),
    "fal:fal-ai/flux-pulid": _p("image", 0.033),
    "fal:fal-ai/flux-pro/kontext": _p("image", 0.04),
    "fal:fal-ai/kling-video/v1.6/standard/image-to-video": _p("second", 0.05),
    "fal:fal-ai/kling-video/v2.1/standard/image-to-video": _p("second", 0.05),
    "fal:fal-ai/wan-i2v": _p("second", 0.08),
    "replicate:black-forest-labs/flux-schnell": _p("image", 0.003),
    "replicate:black-forest-labs/flux-dev": _p("image", 0.025),
    "replicate:black-forest-labs/flux-kontext-pro": _p("image", 0.04),
    "elevenlabs:eleven_multilingual_v2": _p("character", 0.30 / 1000),
    "elevenlabs:eleven_flash_v2_5": _p("character", 0.15 / 1000),
    # music, per second of audio made
    "replicate:meta/musicgen": _p("second", 0.0035),
    "fal:fal-ai/stable-audio": _p("second", 0.0025),
    "elevenlabs:music_v1": _p("second", 0.0115),
    # image-to-video labs, per second of video (Runway: 5 credits a second at $0.01 each)
    "openai:sora-2": _p("second", 0.10),
    "openai:sora-2-pro": _p("second", 0.30),
    "runway:gen4_turbo": _p("second", 0.05),
    "runway:gen3a_turbo": _p("second", 0.05),
}

# Fallbacks per (provider, unit) for models not in the table: a cautious middle of the market.
DEFAULT_UNIT_PRICES: dict[tuple[str, str], Price] = {
    ("openai", "mtok"): _p("mtok", 2.50, 10.00),
    ("openai", "image"): _p("image", 0.04),
    ("openai", "character"): _p("character", 15.0 / 1e6),
    ("fal", "image"): _p("image", 0.03),
    ("fal", "second"): _p("second", 0.10),
    ("replicate", "image"): _p("image", 0.03),
    ("replicate", "second"): _p("second", 0.10),
    ("elevenlabs", "character"): _p("character", 0.30 / 1000),
    ("elevenlabs", "second"): _p("second", 0.0115),
    ("comfyui", "image"): _p("image", 0.0),
    ("openai", "second"): _p("second", 0.30),
    ("runway", "second"): _p("second", 0.05),
}


# Video model families that make, and bill, clips of fixed lengths only: Kling 5 s or 10 s,
# Wan 5 s. Any other model makes (and bills) the length it is asked for.
CLIP_LENGTHS: dict[str, tuple[float, ...]] = {"kling": (5.0, 10.0), "wan": (5.0,)}


def clip_seconds(model: str, requested: float) -> float:
    """The seconds of video a model makes and bills for a clip of ``requested`` seconds: the
    nearest of its family's fixed lengths (the shorter on a tie), or ``requested`` itself."""
    m = model.lower()
    for family, lengths in CLIP_LENGTHS.items():
        if family in m:
            return min(lengths, key=lambda length: (abs(length - requested), length))
    return requested


class PriceTable:
    """Default prices with the operator's overrides on top."""

    def __init__(self, overrides_json: str = "") -> None:
        self.overrides: dict[str, Price | float] = {}
        if overrides_json.strip():
            try:
                raw = json.loads(overrides_json)
            except ValueError as err:
                raise ValueError(f"STORYLOOM_PRICE_OVERRIDES is not JSON: {err}") from err
            if not isinstance(raw, dict):
                raise ValueError("STORYLOOM_PRICE_OVERRIDES must be a JSON object")
            for key, value in raw.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.overrides[str(key)] = float(value)
                    continue
                try:
                    self.overrides[str(key)] = Price.model_validate(value)
                except ValidationError as err:
                    raise ValueError(f"STORYLOOM_PRICE_OVERRIDES[{key!r}]: {err}") from err

    def price(self, provider: str, model: str, per: Unit) -> Price:
        for key in (f"{provider}:{model}", provider):
            found = self.overrides.get(key)
            if isinstance(found, float):
                return _p(per, found)
            if found is not None and found.per == per:
                return found
        listed = DEFAULT_PRICES.get(f"{provider}:{model}")
        if listed is not None and listed.per == per:
            return listed
        return DEFAULT_UNIT_PRICES.get((provider, per), _p(per, 0.0))

    def usage(
        self, provider: str, model: str, per: Unit, units: float, output_units: float = 0.0
    ) -> Usage:
        """A :class:`Usage` for ``units`` (input tokens for ``mtok``) and ``output_units``."""
        price = self.price(provider, model, per)
        if per == "mtok":
            usd = units / 1e6 * price.usd + output_units / 1e6 * price.usd_output
            return Usage(
                provider=provider, model=model, units=units + output_units, unit="token",
                usd=round(usd, 8),
            )
        return Usage(
            provider=provider, model=model, units=units, unit=per, usd=round(units * price.usd, 8)
        )


def add_usage(a: Usage, b: Usage) -> Usage:
    return a.model_copy(update={"units": a.units + b.units, "usd": round(a.usd + b.usd, 8)})
