"""ElevenLabs text to speech with timestamps, so captions can be timed per word, and music.

``POST /v1/text-to-speech/{voice_id}/with-timestamps?output_format=pcm_24000`` answers
``audio_base64`` (raw 16-bit PCM at 24 kHz, wrapped here into a WAV) and an ``alignment`` with
``characters``, ``character_start_times_seconds`` and ``character_end_times_seconds``, which are
grouped into words. ``POST /v1/music`` with a prompt and ``music_length_ms`` answers the track's
bytes (MP3 by default). Auth is the ``xi-api-key`` header; errors come as
``{"detail": {"status": ..., "message": ...}}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pydantic import SecretStr

from providers.base import (
    Media,
    MusicRequest,
    MusicResult,
    ProviderBadResponse,
    SpeechRequest,
    SpeechResult,
    WordTiming,
)
from providers.config import ProviderSettings
from providers.http import (
    HttpProvider,
    Probe,
    check_media,
    field_of,
    music_prompt,
    music_seconds,
    probe,
)
from providers.wav import pcm16_wav

NAME = "elevenlabs"
RATE = 24000
_REFUSAL = re.compile(r"polic|moderat|terms of (service|use)|violat|prohibited", re.IGNORECASE)


def _refusal(response: Any, payload: Any) -> str | None:
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if not isinstance(detail, dict):
        return None
    text = f"{detail.get('status', '')} {detail.get('message', '')}"
    return str(detail.get("message") or detail.get("status")) if _REFUSAL.search(text) else None


def words_from_alignment(alignment: Any) -> list[WordTiming]:
    """Characters with times -> words with times (whitespace separates words)."""
    chars = field_of(NAME, alignment, "characters")
    starts = field_of(NAME, alignment, "character_start_times_seconds")
    ends = field_of(NAME, alignment, "character_end_times_seconds")
    if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(ends, list)):
        raise ProviderBadResponse(NAME, "alignment arrays missing")
    if not len(chars) == len(starts) == len(ends):
        raise ProviderBadResponse(NAME, "alignment arrays differ in length")
    words: list[WordTiming] = []
    current, start, end = "", 0.0, 0.0
    try:
        for ch, s, e in zip(chars, starts, ends, strict=True):
            if str(ch).isspace():
                if current:
                    words.append(WordTiming(text=current, start_s=start, end_s=max(end, start)))
                current = ""
                continue
            if not current:
                start = float(s)
            current += str(ch)
            end = float(e)
        if current:
            words.append(WordTiming(text=current, start_s=start, end_s=max(end, start)))
    except (TypeError, ValueError) as err:
        raise ProviderBadResponse(NAME, f"alignment times are not numbers ({err})") from err
    return words


class _ElevenLabsBase(HttpProvider):
    name = NAME
    refusal = staticmethod(_refusal)

    header = "xi-api-key"
    scheme = ""

    @staticmethod
    def endpoint(settings: ProviderSettings) -> tuple[str, SecretStr]:
        return settings.elevenlabs_base_url, settings.elevenlabs_api_key

    async def check(self) -> Probe:
        """``GET /v1/user``: the account and its quota, free."""
        return await probe(self.service, f"{self.base_url}/v1/user")


# Models that speak English only; a story in another language is spoken by the multilingual one.
ENGLISH_ONLY = frozenset({"eleven_monolingual_v1", "eleven_turbo_v2", "eleven_flash_v2"})
MULTILINGUAL = "eleven_multilingual_v2"


class ElevenLabsNarrator(_ElevenLabsBase):
    default_model = MULTILINGUAL

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        super().__init__(model, settings)
        self.default_voice = settings.elevenlabs_voice_id

    def voice_id(self, voice: str) -> str:
        """The request's voice if it is an ElevenLabs voice id, else the configured one."""
        return voice if re.fullmatch(r"[A-Za-z0-9]{20}", voice) else self.default_voice

    def model_for(self, language: str) -> str:
        """The configured model, unless it speaks English only and the story is not English."""
        english = language.lower().split("-")[0] in ("", "en")
        return MULTILINGUAL if self.model in ENGLISH_ONLY and not english else self.model

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        model = self.model_for(request.language)
        body: dict[str, Any] = {"text": request.text, "model_id": model}
        if request.speed != 1.0:
            body["voice_settings"] = {"speed": min(max(request.speed, 0.7), 1.2)}
        if "v2_5" in model and request.language:  # only these models take language_code
            body["language_code"] = request.language.split("-")[0].lower()
        payload = await self.service.json(
            "POST",
            f"{self.base_url}/v1/text-to-speech/{self.voice_id(request.voice)}/with-timestamps",
            params={"output_format": f"pcm_{RATE}"},
            json=body,
            what="speech",
        )
        encoded = field_of(NAME, payload, "audio_base64")
        try:
            pcm = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError) as err:
            raise ProviderBadResponse(NAME, "audio_base64 is not valid base64") from err
        if len(pcm) < 2 or len(pcm) % 2:
            raise ProviderBadResponse(NAME, f"PCM audio is truncated ({len(pcm)} bytes)")
        alignment = payload.get("alignment") or payload.get("normalized_alignment")
        words = words_from_alignment(alignment)
        duration = len(pcm) / 2 / RATE
        return SpeechResult(
            audio=Media(data=pcm16_wav(pcm, RATE), mime="audio/wav"),
            duration_s=duration,
            words=words,
            usage=self.prices.usage(NAME, model, "character", len(request.text)),
        )


class ElevenLabsMusicMaker(_ElevenLabsBase):
    """Instrumental music from a prompt: 10 s to 5 min a track, MP3 bytes in the answer."""

    default_model = "music_v1"
    MIN_S, MAX_S = 10, 300

    async def compose(self, request: MusicRequest) -> MusicResult:
        length_ms = music_seconds(request.duration_s, self.MIN_S, self.MAX_S) * 1000
        body: dict[str, Any] = {"prompt": music_prompt(request), "music_length_ms": length_ms,
                                "model_id": self.model, "force_instrumental": True}
        response = await self.service.request(
            "POST", f"{self.base_url}/v1/music", json=body, kind="download", what="music"
        )
        audio = check_media(NAME, response.content, "audio",
                            response.headers.get("content-type", ""))
        seconds = length_ms / 1000
        usage = self.prices.usage(NAME, self.model, "second", seconds)
        return MusicResult(audio=audio, duration_s=seconds, usage=usage)
