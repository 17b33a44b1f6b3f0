"""Storyloom settings: environment variables with the ``STORYLOOM_`` prefix and a ``.env`` file.

Every field here is one line in ``.env.example`` (a test keeps the two in step). A bad or unknown
setting fails at start-up with :class:`SettingsError`, naming the variable and what it expects.
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from pipeline.errors import SettingsError
from providers.config import ProviderSettings

PREFIX = "STORYLOOM_"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "storyloom"


class Settings(ProviderSettings):
    """All configuration of a Storyloom process (bot, worker or CLI)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        env_ignore_empty=True,
    )

    # --- where things live
    redis_url: SecretStr = Field(
        SecretStr(""), description="Redis URL; empty starts an embedded Valkey under data_dir"
    )
    data_dir: Path = Field(default_factory=_default_data_dir, description="State and media folder")
    media_store: Literal["local", "s3"] = Field(
        "local", description="Media store: local (a folder) or s3 (S3-compatible bucket)"
    )
    media_dir: Path | None = Field(None, description="Local media folder (default data_dir/media)")
    media_public_url: str = Field("", description="Public base URL of the media store, for links")
    media_bucket: str = Field("", description="S3 bucket of the media store (media_store=s3)")
    media_prefix: str = Field("", description="Key prefix inside the S3 bucket")
    media_endpoint_url: str = Field(
        "", description="S3 endpoint URL (MinIO, R2...); empty means AWS (or AWS_ENDPOINT_URL)"
    )
    media_region: str = Field("", description="S3 region; empty means AWS_REGION or us-east-1")
    media_cache_mb: float = Field(
        2048, ge=16, description="Local cache of S3 media on each worker, in MB (LRU)"
    )
    media_link_hours: float = Field(
        72, gt=0, le=168, description="How long a presigned link to a large video stays valid"
    )

    # --- chat platforms
    telegram_token: SecretStr = Field(SecretStr(""), description="Telegram bot token")
    telegram_base_url: str = Field("https://api.telegram.org", description="Bot API server URL")
    telegram_webhook_url: str = Field("", description="Public webhook URL; empty uses polling")
    telegram_webhook_secret: SecretStr = Field(SecretStr(""), description="Webhook secret token")
    discord_token: SecretStr = Field(SecretStr(""), description="Discord bot token")
    discord_api_base: str = Field("", description="Discord REST base URL (a REST proxy)")
    discord_sharded: bool = Field(False, description="Run the Discord bot with AutoShardedBot")
    discord_moderator_role: str = Field("", description="Role that may decide on any story")
    bot_worker: bool = Field(False, description="Run a worker inside the bot process")
    bot_secret: SecretStr = Field(
        SecretStr(""), description="Key that signs chat buttons; empty keeps a random one in Redis"
    )
    bot_voices: str = Field("joe", description="Voices offered in chat, comma-separated")
    telegram_upload_mb: float = Field(
        50, ge=1, le=2000, description="Telegram upload limit in MB (2000 with a local Bot API)"
    )
    telegram_webhook_listen: str = Field(
        "0.0.0.0:8443", description="host:port the webhook server listens on"
    )

    # --- story defaults and limits
    default_scenes: int = Field(6, ge=3, le=12, description="Scenes per story by default")
    default_aspect: Literal["9:16", "16:9", "1:1"] = Field("9:16", description="Aspect ratio")
    default_resolution: Literal["720p", "1080p"] = Field("720p", description="Video resolution")
    default_style: str = Field("storybook", description="Visual style preset")
    default_voice: str = Field("joe", description="Narration voice")
    candidates: int = Field(3, ge=1, le=4, description="Storyboard candidates per scene")
    max_idea_chars: int = Field(2000, ge=20, le=20000, description="Longest accepted idea")
    fps: int = Field(24, ge=12, le=60, description="Frames per second of the video")
    video_size_cap_mb: float = Field(0, ge=0, description="Default size cap in MB; 0 means none")
    story_budget_usd: float = Field(0, ge=0, description="Most one story may spend; 0 = no cap")

    # --- retention (storyloom gc, and hourly in the worker when either is set)
    retention_media_days: float = Field(
        0, ge=0, description="Delete finished stories' frames, clips, voices after N days; 0 = keep"
    )
    retention_story_days: float = Field(
        0, ge=0, description="Delete finished stories whole after N days; 0 = keep"
    )

    # --- queue
    worker_concurrency: int = Field(4, ge=1, le=64, description="Jobs one worker runs at once")
    job_retries: int = Field(3, ge=0, le=20, description="Attempts per step job")
    step_timeout_s: int = Field(900, ge=10, description="Timeout of one step job")
    encode_threads: int = Field(0, ge=0, le=64, description="Parallel encodes; 0 means cores")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value().strip()
        if raw and urlsplit(raw).scheme not in ("redis", "rediss", "unix", "valkey", "valkeys"):
            raise ValueError("expected a redis://, rediss:// or unix:// URL, or empty")
        return SecretStr(raw)

    @field_validator("script", "image", "video", "speech", "music")
    @classmethod
    def _check_chain(cls, v: str, info: ValidationInfo) -> str:
        """An unknown provider name fails at start-up, not when a story reaches that step."""
        from providers.registry import FACTORIES, parse_chain

        capability = str(info.field_name)
        known = sorted(n for (c, n) in FACTORIES if c == capability)
        for name, _model in parse_chain(v):
            if name not in known:
                raise ValueError(f"unknown {capability} provider {name!r}; known: "
                                 + ", ".join(known))
        return v

    def secret_values(self) -> list[str]:
        """Every secret configured (tokens, keys, a Redis password): kept out of log lines."""
        out = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
                password = urlsplit(value.get_secret_value()).password if "://" in \
                    value.get_secret_value() else None
                if password:
                    out.append(password)
        return out

    @property
    def log_file(self) -> Path:
        """Where the terminal commands (make, retry, regen) keep their detailed log."""
        return self.data_dir / "logs" / "storyloom.log"

    @field_validator("media_bucket")
    @classmethod
    def _check_media_bucket(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("media_store") == "s3" and not v.strip():
            raise ValueError("STORYLOOM_MEDIA_STORE=s3 needs a bucket name")
        return v.strip()

    @property
    def media_path(self) -> Path:
        return self.media_dir or self.data_dir / "media"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _known_env_names() -> set[str]:
    return {PREFIX + name.upper() for name in Settings.model_fields}


def _read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        out[key] = value.strip()
    return out


def _unknown_names(env_file: Path) -> list[str]:
    known = _known_env_names()
    seen = [k for k in os.environ if k.upper().startswith(PREFIX)]
    seen += [k for k in _read_env_file(env_file) if k.upper().startswith(PREFIX)]
    return sorted({k for k in seen if k.upper() not in known})


def _explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        name = PREFIX + str(e["loc"][0]).upper() if e["loc"] else "setting"
        given = e.get("input")
        shown = "" if name.endswith(("KEY", "TOKEN", "SECRET", "URL")) else f" (got {given!r})"
        lines.append(f"{name}: {e['msg']}{shown}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build settings, or raise :class:`SettingsError` with a message a person can act on."""
    env_path = Path(env_file) if env_file else Path("/nonexistent")
    unknown = _unknown_names(env_path)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name.upper(), sorted(_known_env_names()), n=1)
            hints.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise SettingsError("unknown setting: " + ", ".join(hints) + "; see .env.example")
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as err:
        raise SettingsError(_explain(err)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
