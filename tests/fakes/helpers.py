"""Small test helpers for the provider tests."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from providers.config import ProviderSettings
from tests.fakes.base import png
from tests.fakes.services import GOOD_KEY


class SleepRecorder:
    """Stands in for asyncio.sleep in a RetryPolicy: records each requested wait, waits none."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def provider_settings(**overrides: Any) -> ProviderSettings:
    base: dict[str, Any] = {
        "openai_api_key": SecretStr(GOOD_KEY),
        "fal_key": SecretStr(GOOD_KEY),
        "replicate_api_token": SecretStr(GOOD_KEY),
        "elevenlabs_api_key": SecretStr(GOOD_KEY),
        "provider_timeout_s": 5.0,
        "poll_interval_s": 0.01,
        "image_deadline_s": 5.0,
        "video_deadline_s": 5.0,
        "provider_retries": 3,
    }
    base.update(overrides)
    return ProviderSettings(_env_file=None, **base)  # type: ignore[call-arg]


def fast(provider: Any) -> SleepRecorder:
    """Swap the provider's retry sleep for a recorder; return it."""
    rec = SleepRecorder()
    provider.service.retry.sleep = rec
    return rec


REF_A = png((255, 0, 0))
REF_B = png((0, 0, 255))
