"""Builds one provider chain per capability from settings.

A chain setting is a comma-separated list of ``name`` or ``name:model`` entries, for example
``STORYLOOM_IMAGE=fal:fal-ai/flux/dev,openai:gpt-image-1,offline``. Adding a model service is one
module plus one line in :data:`FACTORIES`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from providers.base import (
    Animator,
    Capability,
    ImageGenerator,
    JobStopped,
    MusicMaker,
    Narrator,
    ProviderError,
    ProviderUnavailable,
    ScriptWriter,
)
from providers.config import ProviderSettings

log = logging.getLogger(__name__)

P = TypeVar("P")
T = TypeVar("T")

# (capability, provider name) -> "module:factory". The factory is called as
# factory(model: str, settings: ProviderSettings) and returns the provider object.
FACTORIES: dict[tuple[Capability, str], str] = {
    ("script", "offline"): "providers.offline.script:StorySpineWriter.from_settings",
    ("image", "offline"): "providers.offline.painter:ProceduralPainter.from_settings",
    ("video", "offline"): "providers.offline.motion:PanZoomAnimator.from_settings",
    ("speech", "offline"): "providers.offline.voice:PiperNarrator.from_settings",
    ("music", "offline"): "providers.offline.music:AmbientBed.from_settings",
    ("script", "openai"): "providers.openai:OpenAIScriptWriter.from_settings",
    ("image", "openai"): "providers.openai:OpenAIImageGenerator.from_settings",
    ("speech", "openai"): "providers.openai:OpenAINarrator.from_settings",
    ("image", "fal"): "providers.fal:FalImageGenerator.from_settings",
    ("video", "fal"): "providers.fal:FalAnimator.from_settings",
    ("image", "replicate"): "providers.replicate:ReplicateImageGenerator.from_settings",
    ("video", "replicate"): "providers.replicate:ReplicateAnimator.from_settings",
    ("speech", "elevenlabs"): "providers.elevenlabs:ElevenLabsNarrator.from_settings",
    ("image", "comfyui"): "providers.comfyui:ComfyUIImageGenerator.from_settings",
    ("music", "replicate"): "providers.replicate:ReplicateMusicMaker.from_settings",
    ("music", "fal"): "providers.fal:FalMusicMaker.from_settings",
    ("music", "elevenlabs"): "providers.elevenlabs:ElevenLabsMusicMaker.from_settings",
    ("video", "openai"): "providers.sora:SoraAnimator.from_settings",
    ("video", "runway"): "providers.runway:RunwayAnimator.from_settings",
}


class UnknownProvider(ValueError):
    pass


class ChainFailed(ProviderError):
    """Every provider of a chain failed; ``errors`` holds each one's reason, in order."""

    def __init__(self, capability: str, errors: list[ProviderError]) -> None:
        reasons = "; ".join(str(e) for e in errors) or "no provider configured"
        super().__init__(capability, f"every provider failed ({reasons})")
        self.errors = errors
        self.retryable = any(e.retryable for e in errors)


def parse_chain(spec: str) -> list[tuple[str, str]]:
    """``"fal:fal-ai/flux/dev, offline"`` -> ``[("fal", "fal-ai/flux/dev"), ("offline", "")]``."""
    out: list[tuple[str, str]] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, model = part.partition(":")
        out.append((name.strip().lower(), model.strip()))
    return out


def _load(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for piece in attr.split("."):
        obj = getattr(obj, piece)
    return obj  # type: ignore[no-any-return]


def build_provider(
    capability: Capability, name: str, model: str, settings: ProviderSettings
) -> Any:
    target = FACTORIES.get((capability, name))
    if target is None:
        known = sorted(n for (c, n) in FACTORIES if c == capability)
        raise UnknownProvider(f"unknown {capability} provider {name!r}; known: {', '.join(known)}")
    return _load(target)(model, settings)


@dataclass
class Chain(Generic[P]):
    """Providers of one capability, tried in order until one succeeds."""

    capability: Capability
    providers: list[P]

    async def run(self, call: Callable[[P], Awaitable[T]]) -> T:
        errors: list[ProviderError] = []
        for provider in self.providers:
            name = getattr(provider, "name", type(provider).__name__)
            try:
                return await call(provider)
            except JobStopped:
                raise  # the caller gave up on this work: no other provider should take it up
            except ProviderError as err:
                log.warning(
                    "provider failed, trying the next",
                    extra={"capability": self.capability, "provider": name, "reason": str(err)},
                )
                errors.append(err)
            except (TimeoutError, OSError) as err:
                errors.append(ProviderUnavailable(name, f"{type(err).__name__}: {err}"))
        raise ChainFailed(self.capability, errors)

    @property
    def names(self) -> list[str]:
        return [getattr(p, "name", type(p).__name__) for p in self.providers]


@dataclass
class Providers:
    script: Chain[ScriptWriter]
    image: Chain[ImageGenerator]
    video: Chain[Animator]
    speech: Chain[Narrator]
    music: Chain[MusicMaker]
    extra: dict[str, Any] = field(default_factory=dict)

    def chain(self, capability: Capability) -> Chain[Any]:
        return getattr(self, capability)  # type: ignore[no-any-return]


def build_chain(capability: Capability, spec: str, settings: ProviderSettings) -> Chain[Any]:
    entries = parse_chain(spec) or [("offline", "")]
    return Chain(capability, [build_provider(capability, n, m, settings) for n, m in entries])


def build_providers(settings: ProviderSettings) -> Providers:
    return Providers(
        script=build_chain("script", settings.script, settings),
        image=build_chain("image", settings.image, settings),
        video=build_chain("video", settings.video, settings),
        speech=build_chain("speech", settings.speech, settings),
        music=build_chain("music", settings.music, settings),
    )
