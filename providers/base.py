"""One small protocol per capability, with the requests and answers that cross it.

Providers know nothing about stories, chats or the queue: a request carries everything a model
needs (prompt, seed, size, reference images), and an answer carries bytes plus what made them.
Long-running services (video models that take minutes) are hidden behind the same awaitable: the
provider submits, polls until its deadline and returns, or raises a :class:`ProviderError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Capability = Literal["script", "image", "video", "speech", "music"]


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """A provider could not answer. ``retryable`` tells the chain whether trying again may help."""

    retryable: bool = False
    status: int | None = None  # the HTTP status that said so, where one did

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message


class ProviderUnavailable(ProviderError):
    """Timeouts, 429s and 5xx that outlived the retries: the next provider in the chain may work."""

    retryable = True


class ProviderAuthError(ProviderError):
    """Bad or missing key (401/403): skip this provider until the operator fixes it."""


class ProviderBadRequest(ProviderError):
    """The service rejected the request (4xx other than 429)."""


class ProviderBadResponse(ProviderError):
    """The service answered something that is not what its API documents (malformed JSON, bytes
    that are not an image, a script that does not validate after repair)."""

    retryable = True


class ContentRefused(ProviderError):
    """The service refused the prompt on content-policy grounds."""


class JobStopped(ProviderError):
    """The caller gave up on this job (another part of its work failed) and the service
    confirmed the cancellation: nothing was made and, by the service's rules, nothing billed."""


# --------------------------------------------------------------------------- paid jobs


class JobRef(BaseModel):
    """A job a service accepted (fal ``request_id``, Replicate prediction id, ComfyUI prompt id)
    and the URLs it gave to follow it: enough for another process to find it again."""

    service: str
    id: str
    urls: dict[str, str] = Field(default_factory=dict)


class JobLog(Protocol):
    """Where a caller keeps the jobs its provider calls started, durably, so that a call made
    again (after a crash, or by a retry) resumes its job instead of paying for a second one.

    Entries are named by the provider (service, model and a hash of what was submitted); the
    caller scopes them (by the call's input key). ``stopping`` is true once the caller has given
    up on the work: a provider then cancels its job instead of waiting for it.
    """

    async def recall(self, entry: str) -> JobRef | None: ...

    async def record(self, entry: str, job: JobRef) -> None: ...

    async def forget(self, entry: str) -> None: ...

    @property
    def stopping(self) -> bool: ...

    async def until_stopping(self) -> None:
        """Return once ``stopping`` is true (a provider waits on it between status checks)."""
        ...


_job_log: ContextVar[JobLog | None] = ContextVar("storyloom_job_log", default=None)


def current_job_log() -> JobLog | None:
    """The job log the caller set for the provider calls it is making, if any."""
    return _job_log.get()


@contextmanager
def job_log(journal: JobLog | None) -> Iterator[None]:
    """Make ``journal`` the job log of the provider calls made inside the block (and of the
    tasks they start). Request types stay free of it, so every provider keeps its signature."""
    token = _job_log.set(journal)
    try:
        yield
    finally:
        _job_log.reset(token)


# --------------------------------------------------------------------------- shared shapes


EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "application/json": "json",
}


def ext_for(mime: str) -> str:
    """The file extension for a media type (``bin`` when unknown)."""
    return EXTENSIONS.get(mime, "bin")


class Media(BaseModel):
    """Bytes with their type. Small enough to pass around: frames, audio, short clips."""

    model_config = ConfigDict(frozen=True)

    data: bytes = Field(repr=False)
    mime: str

    @property
    def ext(self) -> str:
        return ext_for(self.mime)


class Usage(BaseModel):
    """What one call consumed, for the cost ledger. ``units`` is in the provider's billing unit
    (images, seconds of video, characters of speech, tokens)."""

    provider: str
    model: str = ""
    units: float = 0.0
    unit: str = ""
    usd: float = 0.0


# --------------------------------------------------------------------------- script


class CharacterSpec(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=600, description="Fixed visual description")


class SceneSpec(BaseModel):
    shot: str = Field(min_length=1, max_length=600, description="What the camera sees")
    narration: str = Field(min_length=1, max_length=600, description="The line spoken over it")
    setting: str = Field("", max_length=200, description="Where it happens")
    time_of_day: Literal["dawn", "day", "dusk", "night"] = "day"
    framing: Literal["wide", "medium", "close"] = "medium"
    characters: list[str] = Field(default_factory=list, description="Names from the cast")
    duration_s: float = Field(5.0, ge=2.0, le=20.0, description="Target length of the scene")


LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian",
    "fi": "Finnish", "pl": "Polish", "cs": "Czech", "sk": "Slovak", "sl": "Slovenian",
    "hr": "Croatian", "sr": "Serbian", "bg": "Bulgarian", "ru": "Russian", "uk": "Ukrainian",
    "be": "Belarusian", "lt": "Lithuanian", "lv": "Latvian", "et": "Estonian", "hu": "Hungarian",
    "ro": "Romanian", "el": "Greek", "tr": "Turkish", "ar": "Arabic", "fa": "Persian",
    "ur": "Urdu", "he": "Hebrew", "hi": "Hindi", "bn": "Bengali", "ta": "Tamil", "te": "Telugu",
    "mr": "Marathi", "ne": "Nepali", "id": "Indonesian", "ms": "Malay", "vi": "Vietnamese",
    "th": "Thai", "ja": "Japanese", "ko": "Korean", "zh": "Chinese", "sw": "Swahili",
    "af": "Afrikaans", "ca": "Catalan", "eu": "Basque", "gl": "Galician", "is": "Icelandic",
    "ga": "Irish", "cy": "Welsh", "ka": "Georgian", "hy": "Armenian", "az": "Azerbaijani",
    "kk": "Kazakh",
}


def language_name(code: str) -> str:
    """ "zh" -> "Chinese (zh)": what a model is told to write or speak in."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    name = LANGUAGE_NAMES.get(base)
    return f"{name} ({code})" if name else f"the language with code {code!r}"


class ScriptRequest(BaseModel):
    idea: str
    scenes: int = Field(6, ge=3, le=12)
    style: str = "storybook"
    language: str = Field("en", description="ISO 639-1 code: the script is written in it")


class Script(BaseModel):
    """A validated script. Models that answer something else are repaired or retried."""

    title: str = Field(min_length=1, max_length=120)
    logline: str = Field(min_length=1, max_length=400)
    characters: list[CharacterSpec] = Field(min_length=1, max_length=8)
    scenes: list[SceneSpec] = Field(min_length=3, max_length=12)


@runtime_checkable
class ScriptWriter(Protocol):
    name: str

    async def write(self, request: ScriptRequest) -> tuple[Script, Usage]: ...


# --------------------------------------------------------------------------- images


class CharacterRef(BaseModel):
    """A character as an image request sees it: canonical text plus an optional reference sheet."""

    name: str
    description: str
    reference: Media | None = None


class ImageRequest(BaseModel):
    prompt: str
    negative_prompt: str = ""
    width: int = Field(ge=64, le=4096)
    height: int = Field(ge=64, le=4096)
    seed: int = Field(ge=0, lt=2**32)
    count: int = Field(1, ge=1, le=8)
    style: str = "storybook"
    characters: list[CharacterRef] = Field(default_factory=list)
    # Structured hints: a model that reads only text gets them inside ``prompt`` too.
    setting: str = ""
    time_of_day: Literal["dawn", "day", "dusk", "night"] = "day"
    framing: Literal["wide", "medium", "close"] = "medium"
    kind: Literal["frame", "character_sheet"] = "frame"


class ImageResult(BaseModel):
    images: list[Media]
    seeds: list[int]
    usage: Usage


@runtime_checkable
class ImageGenerator(Protocol):
    name: str

    async def generate(self, request: ImageRequest) -> ImageResult: ...


# --------------------------------------------------------------------------- video


class AnimateRequest(BaseModel):
    image: Media
    prompt: str = ""
    motion: Literal["push_in", "pull_out", "pan_left", "pan_right", "rise", "still"] = "push_in"
    duration_s: float = Field(ge=1.0, le=30.0)
    width: int
    height: int
    fps: int = 24
    seed: int = 0
    # Media types the caller can use, best first. Every animator can answer ``video/mp4``; one
    # that has a cheaper form the caller also reads (the offline pan-and-zoom's move description,
    # rendered straight into the final video) may answer with that instead.
    accept: list[str] = Field(default_factory=lambda: ["video/mp4"])


class ClipResult(BaseModel):
    clip: Media  # video/mp4 (H.264), or another type the request accepted
    duration_s: float
    usage: Usage


@runtime_checkable
class Animator(Protocol):
    name: str

    async def animate(self, request: AnimateRequest) -> ClipResult: ...


# --------------------------------------------------------------------------- speech


class WordTiming(BaseModel):
    text: str
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)


class SpeechRequest(BaseModel):
    text: str = Field(min_length=1)
    voice: str = "joe"
    language: str = "en"
    speed: float = Field(1.0, gt=0.25, le=4.0)


class SpeechResult(BaseModel):
    audio: Media  # audio/wav, mono PCM16
    duration_s: float
    words: list[WordTiming] = Field(description="Word (or sentence) timings, in order")
    usage: Usage
    note: str = Field("", description="For the chat: no voice speaks the requested language "
                                      "and which one narrated instead")


@runtime_checkable
class Narrator(Protocol):
    name: str

    async def speak(self, request: SpeechRequest) -> SpeechResult: ...


# --------------------------------------------------------------------------- music


class MusicRequest(BaseModel):
    duration_s: float = Field(gt=0, le=900)
    mood: str = "calm"
    seed: int = 0


class MusicResult(BaseModel):
    audio: Media  # any audio type ffmpeg reads (wav, mp3, flac, ogg); looped to length
    duration_s: float
    usage: Usage


@runtime_checkable
class MusicMaker(Protocol):
    name: str

    async def compose(self, request: MusicRequest) -> MusicResult: ...
