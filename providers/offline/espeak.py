"""espeak-ng's own voices, from the ``espeakng-loader`` wheel (libespeak-ng and its data).

The offline narrator speaks English with Piper; every other language espeak-ng knows (about a
hundred: Chinese, Arabic, Hindi, Russian, Hebrew, Thai ...) is spoken by espeak-ng's voice for it,
which is robotic but says the words. espeak-ng reports where each word starts in the audio, so
captions are timed from its own events. The library keeps global state: every call holds one lock.
"""

from __future__ import annotations

import ctypes
import threading
import unicodedata
from dataclasses import dataclass

import numpy as np

RATE_WPM = 165  # espeak-ng's words per minute at speed 1.0 (its default is 175)
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the audio is made
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_WORD = 1
_RATE = 1  # espeakRATE

# The espeak-ng voice for an ISO 639-1 code where the two differ.
VOICE_NAMES = {"zh": "cmn", "yue": "yue", "no": "nb", "fa": "fa", "ms": "ms"}

# The language a script is written in, for text whose own language has no voice.
SCRIPT_LANGUAGES = {
    "CJK": "zh", "HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko", "ARABIC": "ar",
    "HEBREW": "he", "DEVANAGARI": "hi", "THAI": "th", "CYRILLIC": "ru", "GREEK": "el",
    "BENGALI": "bn", "TAMIL": "ta", "TELUGU": "te", "GEORGIAN": "ka", "ARMENIAN": "hy",
    "GUJARATI": "gu", "GURMUKHI": "pa", "KANNADA": "kn", "MALAYALAM": "ml", "SINHALA": "si",
    "ETHIOPIC": "am", "MYANMAR": "my",
}


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class Spoken:
    audio: np.ndarray  # float32 mono
    rate: int
    words: list[tuple[int, int]]  # (character offset in the text, first sample) per word


class _Engine:
    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise RuntimeError("espeak-ng did not initialise")
        self.lib = lib
        self.rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []
        self._callback = _CALLBACK(self._receive)  # kept: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._known: dict[str, bool] = {}

    def _receive(self, wav: ctypes.Array[ctypes.c_short], n: int, events: ctypes.Array[_Event]
                 ) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768)
        i = 0
        while events[i].type != 0:
            if events[i].type == _EVENT_WORD:
                self._words.append((events[i].text_position - 1, events[i].sample))
            i += 1
        return 0

    def has_voice(self, voice: str) -> bool:
        if voice not in self._known:
            self._known[voice] = self.lib.espeak_SetVoiceByName(voice.encode()) == 0
        return self._known[voice]

    def speak(self, text: str, voice: str, speed: float) -> Spoken:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(_RATE, round(RATE_WPM * speed), 0)
        self._chunks, self._words = [], []
        data = text.encode()
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                       None, None)
        if status != 0:
            raise RuntimeError(f"espeak-ng could not speak (status {status})")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return Spoken(audio, self.rate, list(self._words))


_engine: _Engine | None = None
_lock = threading.Lock()


def _get() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def voice_name(language: str) -> str | None:
    """espeak-ng's voice for an ISO 639 code ("zh" -> "cmn"), or None if it has none."""
    lang = language.strip().lower().replace("_", "-")
    if not lang:
        return None
    candidates = [VOICE_NAMES.get(lang, lang), VOICE_NAMES.get(lang.split("-")[0],
                                                                 lang.split("-")[0])]
    with _lock:
        engine = _get()
        return next((v for v in candidates if engine.has_voice(v)), None)


def script_language(text: str) -> str | None:
    """The language of the first letter in a script espeak-ng voices by itself (Han -> zh)."""
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            script = unicodedata.name(ch, "").split(" ", 1)[0]
            if script in SCRIPT_LANGUAGES:
                return SCRIPT_LANGUAGES[script]
    return None


def speak(text: str, voice: str, speed: float = 1.0) -> Spoken:
    """Text to audio with espeak-ng's ``voice``. Blocking: call it from a thread."""
    with _lock:
        return _get().speak(text, voice, speed)
