"""OpenAI-compatible services: one base URL and key for OpenAI, OpenRouter, Ollama, vLLM, LM Studio.

- :class:`OpenAIScriptWriter`: ``POST /chat/completions`` with a JSON-schema ``response_format``
  (``json_object`` for servers that reject schemas), validated into :class:`Script`; an answer
  that does not validate is sent back with its errors, at most twice.
- :class:`OpenAIImageGenerator`: ``POST /images/generations``, or ``POST /images/edits``
  (multipart, one ``image[]`` part per character reference sheet) when references exist.
- :class:`OpenAINarrator`: ``POST /audio/speech`` as WAV; word timings are estimated, since the
  endpoint returns none.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from typing import Any

from pydantic import SecretStr, ValidationError

from providers.base import (
    ContentRefused,
    ImageRequest,
    ImageResult,
    Media,
    ProviderBadRequest,
    ProviderBadResponse,
    Script,
    ScriptRequest,
    SpeechRequest,
    SpeechResult,
    Usage,
    WordTiming,
    language_name,
)
from providers.config import ProviderSettings
from providers.http import (
    HttpProvider,
    Probe,
    check_media,
    compose_prompt,
    field_of,
    normalise_wav,
    probe,
)
from providers.pricing import add_usage

log = logging.getLogger(__name__)

NAME = "openai"
REFUSAL_CODES = {"content_policy_violation", "moderation_blocked", "content_filter"}
MAX_REPAIRS = 2


def _refusal(response: Any, payload: Any) -> str | None:
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return None
    code = str(err.get("code") or err.get("type") or "")
    message = str(err.get("message") or "")
    if code in REFUSAL_CODES or "safety system" in message.lower():
        return message or code
    return None


class _OpenAIBase(HttpProvider):
    name = NAME
    refusal = staticmethod(_refusal)

    @staticmethod
    def endpoint(settings: ProviderSettings) -> tuple[str, SecretStr]:
        return settings.openai_base_url, settings.openai_api_key

    async def check(self) -> Probe:
        """``GET /models``: free, and answers 401 to a bad key."""
        return await probe(self.service, f"{self.base_url}/models")


# --------------------------------------------------------------------------- script

_SYSTEM = """You write scripts for short narrated storyboard videos.
Answer with one JSON object and nothing else, matching this JSON schema:
{schema}
Rules: exactly {scenes} scenes; every name in a scene's "characters" is a cast member's "name";
each character's "description" is a fixed visual description (face, hair, clothes, colours) that
an illustrator can repeat in every frame; "shot" says what the camera sees; "narration" is one or
two sentences spoken over it. Write the title, logline and every narration in {language}, the
language the idea was written in; keep "shot" and "description" in English for the illustrator."""


def _strip_fences(text: str) -> str:
    text = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, flags=re.DOTALL)
    return fence.group(1) if fence else text


def validate_script(text: str, request: ScriptRequest) -> tuple[Script | None, list[str]]:
    """Parse and validate a model's answer. Returns the script, or the errors to send back."""
    try:
        raw = json.loads(_strip_fences(text))
    except ValueError as err:
        return None, [f"the answer is not valid JSON ({err})"]
    try:
        script = Script.model_validate(raw)
    except ValidationError as err:
        return None, [
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
        ][:20]
    problems: list[str] = []
    if len(script.scenes) != request.scenes:
        problems.append(f"scenes: expected exactly {request.scenes}, got {len(script.scenes)}")
    cast = {c.name for c in script.characters}
    for i, scene in enumerate(script.scenes):
        unknown = [n for n in scene.characters if n not in cast]
        if unknown:
            problems.append(f"scenes.{i}.characters: {unknown} are not in the cast {sorted(cast)}")
    return (None, problems) if problems else (script, [])


class OpenAIScriptWriter(_OpenAIBase):
    default_model = "gpt-4o-mini"

    def __init__(self, model: str, settings: ProviderSettings) -> None:
        super().__init__(model, settings)
        self.json_mode = "json_schema"

    def _response_format(self) -> dict[str, Any]:
        if self.json_mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {
                    "name": "script",
                    "schema": Script.model_json_schema(),
                    "strict": False,
                },
            }
        return {"type": "json_object"}

    async def _complete(self, messages: list[dict[str, str]]) -> tuple[str, Usage]:
        body = {
            "model": self.model,
            "messages": messages,
            "response_format": self._response_format(),
            "temperature": 0.8,
        }
        try:
            payload = await self.service.json(
                "POST", f"{self.base_url}/chat/completions", json=body, what="chat completion"
            )
        except ProviderBadRequest as err:
            text = err.message.lower()
            if self.json_mode == "json_schema" and ("response_format" in text or "schema" in text):
                log.info("server rejects json_schema; using json_object", extra={"provider": NAME})
                self.json_mode = "json_object"
                return await self._complete(messages)
            raise
        choice = field_of(NAME, payload, "choices", 0)
        message = field_of(NAME, choice, "message")
        if not isinstance(message, dict):
            raise ProviderBadResponse(NAME, "choices[0].message is not an object")
        usage = self._usage(payload.get("usage"), messages, message.get("content") or "")
        if message.get("refusal"):
            raise ContentRefused(NAME, f"the model refused: {str(message['refusal'])[:200]}")
        if choice.get("finish_reason") == "content_filter":
            raise ContentRefused(NAME, "the answer was stopped by the content filter")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ProviderBadResponse(NAME, "the answer has no content")
        return content, usage

    def _usage(self, raw: Any, messages: list[dict[str, str]], answer: str) -> Usage:
        if isinstance(raw, dict) and isinstance(raw.get("prompt_tokens"), int):
            prompt, completion = raw["prompt_tokens"], int(raw.get("completion_tokens") or 0)
        else:  # some compatible servers omit usage: about four characters a token
            prompt = sum(len(m["content"]) for m in messages) // 4
            completion = len(answer) // 4
        return self.prices.usage(NAME, self.model, "mtok", prompt, completion)

    async def write(self, request: ScriptRequest) -> tuple[Script, Usage]:
        schema = json.dumps(Script.model_json_schema(), separators=(",", ":"))
        messages = [
            {
                "role": "system",
                "content": _SYSTEM.format(
                    schema=schema, scenes=request.scenes, language=language_name(request.language)
                ),
            },
            {
                "role": "user",
                "content": f"Story idea: {request.idea}\nVisual style: {request.style}\n"
                f"Scenes: {request.scenes}",
            },
        ]
        total = Usage(provider=NAME, model=self.model, unit="token")
        errors: list[str] = []
        for attempt in range(MAX_REPAIRS + 1):
            content, usage = await self._complete(messages)
            total = add_usage(total, usage)
            script, errors = validate_script(content, request)
            if script is not None:
                return script, total
            log.info(
                "script answer did not validate",
                extra={"provider": NAME, "attempt": attempt + 1, "errors": errors[:5]},
            )
            messages = [
                *messages,
                {"role": "assistant", "content": content},
                {
                    "role": "user",
                    "content": "That answer is not a valid script. Fix these problems and answer "
                    "with the corrected JSON object only:\n- " + "\n- ".join(errors),
                },
            ]
        raise ProviderBadResponse(
            NAME, f"script still invalid after {MAX_REPAIRS} repairs: {'; '.join(errors[:3])}"
        )


# --------------------------------------------------------------------------- images

_SIZES: dict[str, list[tuple[int, int]]] = {
    "gpt-image": [(1024, 1024), (1536, 1024), (1024, 1536)],
    "dall-e-3": [(1024, 1024), (1792, 1024), (1024, 1792)],
    "dall-e-2": [(1024, 1024)],
}


def image_size(model: str, width: int, height: int) -> str:
    """The model's supported size nearest in aspect ratio; any size for unknown models."""
    for prefix, sizes in _SIZES.items():
        if model.startswith(prefix):
            w, h = min(sizes, key=lambda s: abs(s[0] / s[1] - width / height))
            return f"{w}x{h}"
    return f"{width}x{height}"


class OpenAIImageGenerator(_OpenAIBase):
    default_model = "gpt-image-1"

    @property
    def per_call(self) -> int:
        """Images one request may ask for: dall-e-3 draws one (n=1), the others up to 10."""
        return 1 if self.model.startswith("dall-e-3") else 10

    @property
    def takes_references(self) -> bool:
        """dall-e models cannot draw from reference sheets (dall-e-3 has no edits, dall-e-2's
        edits want one square mask image): their prompt carries the characters' descriptions."""
        return not self.model.startswith("dall-e")

    async def generate(self, request: ImageRequest) -> ImageResult:
        batches = [min(self.per_call, request.count - start)
                   for start in range(0, request.count, self.per_call)]
        drawn = await asyncio.gather(*(self._call(request, n) for n in batches))
        images = [image for batch in drawn for image in batch]
        usage = self.prices.usage(NAME, self.model, "image", len(images))
        return ImageResult(
            images=images, seeds=[request.seed + i for i in range(len(images))], usage=usage
        )

    async def _call(self, request: ImageRequest, n: int) -> list[Media]:
        prompt = compose_prompt(request)
        size = image_size(self.model, request.width, request.height)
        refs = [c for c in request.characters if c.reference is not None]
        fields: dict[str, Any] = {"model": self.model, "prompt": prompt, "n": n, "size": size}
        if self.model.startswith("dall-e"):
            fields["response_format"] = "b64_json"
        if refs and self.takes_references:
            files = [
                ("image[]", (f"{i}-{c.name}.{c.reference.ext}", c.reference.data, c.reference.mime))
                for i, c in enumerate(refs)
                if c.reference is not None
            ]
            data = {k: str(v) for k, v in fields.items()}
            payload = await self.service.json(
                "POST", f"{self.base_url}/images/edits", data=data, files=files,
                kind="upload", what="image edit",
            )
        else:
            payload = await self.service.json(
                "POST", f"{self.base_url}/images/generations", json=fields, what="image generation"
            )
        items = field_of(NAME, payload, "data")
        if not isinstance(items, list) or not items:
            raise ProviderBadResponse(NAME, "image answer has no data")
        return [await self._image(item) for item in items]

    async def _image(self, item: Any) -> Media:
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            try:
                raw = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError) as err:
                raise ProviderBadResponse(NAME, "b64_json is not valid base64") from err
            return check_media(NAME, raw, "image")
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            return await self.service.download(item["url"], "image")
        raise ProviderBadResponse(NAME, "image item has neither b64_json nor url")


# --------------------------------------------------------------------------- speech

VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
          "verse"}


def estimate_words(text: str, duration_s: float) -> list[WordTiming]:
    """Word timings spread over ``duration_s`` in proportion to each word's length."""
    words = text.split()
    if not words:
        return []
    weights = [len(w) + 1 for w in words]
    scale = duration_s / sum(weights)
    out, t = [], 0.0
    for word, weight in zip(words, weights, strict=True):
        end = t + weight * scale
        out.append(WordTiming(text=word, start_s=round(t, 3), end_s=round(end, 3)))
        t = end
    return out


class OpenAINarrator(_OpenAIBase):
    default_model = "tts-1"

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        voice = request.voice if request.voice in VOICES else "alloy"
        body: dict[str, Any] = {
            "model": self.model,
            "input": request.text,
            "voice": voice,
            "response_format": "wav",
            "speed": min(max(request.speed, 0.25), 4.0),
        }
        if not self.model.startswith("tts-1"):
            # Its voices are multilingual and follow the text; gpt-4o-mini-tts also takes
            # instructions (tts-1 does not), which keep a short or mixed line in the language.
            body["instructions"] = f"Speak in {language_name(request.language)}."
        response = await self.service.request(
            "POST", f"{self.base_url}/audio/speech", json=body, what="speech"
        )
        audio, duration = normalise_wav(NAME, response.content)
        usage = self.prices.usage(NAME, self.model, "character", len(request.text))
        return SpeechResult(
            audio=audio, duration_s=duration, words=estimate_words(request.text, duration),
            usage=usage,
        )
