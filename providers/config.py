"""Provider configuration: the chains and the credentials of each model service.

Kept in ``providers/`` so that providers never import the pipeline; the process-wide
``pipeline.settings.Settings`` extends it with everything else.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORYLOOM_", extra="ignore", env_ignore_empty=True
    )

    # --- provider chains: comma-separated "name[:model]" entries, first that succeeds wins
    script: str = Field("offline", description="Script writer chain")
    image: str = Field("offline", description="Image generator chain")
    video: str = Field("offline", description="Animator (image to video) chain")
    speech: str = Field("offline", description="Narrator (text to speech) chain")
    music: str = Field("offline", description="Music chain (offline, fal, replicate, elevenlabs)")

    # --- provider credentials and endpoints
    openai_api_key: SecretStr = Field(SecretStr(""), description="OpenAI-compatible API key")
    openai_base_url: str = Field("https://api.openai.com/v1", description="OpenAI-compatible URL")
    fal_key: SecretStr = Field(SecretStr(""), description="fal.ai API key")
    fal_base_url: str = Field("https://queue.fal.run", description="fal.ai queue URL")
    replicate_api_token: SecretStr = Field(SecretStr(""), description="Replicate API token")
    replicate_base_url: str = Field("https://api.replicate.com/v1", description="Replicate URL")
    elevenlabs_api_key: SecretStr = Field(SecretStr(""), description="ElevenLabs API key")
    elevenlabs_base_url: str = Field("https://api.elevenlabs.io", description="ElevenLabs URL")
    runway_api_key: SecretStr = Field(SecretStr(""), description="Runway API key")
    runway_base_url: str = Field("https://api.dev.runwayml.com", description="Runway API URL")
    comfyui_url: str = Field("", description="Self-hosted ComfyUI base URL")
    comfyui_workflow: Path | None = Field(None, description="ComfyUI workflow JSON template")
    provider_concurrency: int = Field(
        4, ge=1, le=64, description="Jobs running at once per provider (submit to result)"
    )
    provider_timeout_s: float = Field(60.0, gt=0, description="Timeout of one provider call")
    video_deadline_s: float = Field(900.0, gt=0, description="How long to poll a video job")
    price_overrides: str = Field("", description="JSON price table overrides per provider:model")
    provider_concurrency_total: int = Field(
        0, ge=0, le=1024,
        description="Jobs running at once per provider across all workers (Redis); "
        "0 = provider_concurrency",
    )
    provider_retries: int = Field(3, ge=0, le=10, description="Retries on 429, 5xx and timeouts")
    image_deadline_s: float = Field(300.0, gt=0, description="How long to poll an image job")
    poll_interval_s: float = Field(2.0, gt=0, description="First wait between job status polls")
    max_download_mb: float = Field(200.0, gt=0, description="Largest media download accepted")
    elevenlabs_voice_id: str = Field(
        "21m00Tcm4TlvDq8ikWAM", description="ElevenLabs voice used when a request names none of its"
    )
