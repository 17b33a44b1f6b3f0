"""The language a story is told in: the chat's explicit choice, else the idea's own language.

Detection runs once, when a story is created, with ``py3langid`` (its model ships in the wheel;
bench/bench_language.py compares it with lingua on short ideas). Scripts that name their language
on their own (kana, Hangul, Han, Hebrew, Thai, Greek) are decided by script; the rest by the model,
restricted to the languages people write ideas in, which keeps short ideas from landing on a rare
neighbour (Spanish read as Galician). An idea with too few letters to tell (emoji) has no language
of its own and keeps the default.
"""

from __future__ import annotations

import threading
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

MIN_LETTERS = 3
MIN_WORDS = 3  # "Dragon" or "Hello World" say too little for a model to tell (Catalan, Italian)
# On a near tie, English (the default) wins: "Time machine" scores German 0.4 above it.
ENGLISH_MARGIN = 3.0

# ISO 639-1 codes the detector may answer: the widely written languages that the model knows and
# espeak-ng can voice.
LANGUAGES = frozenset(
    {"en", "es", "fr", "de", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "sk", "sl",
     "hr", "sr", "bg", "ru", "uk", "be", "lt", "lv", "et", "hu", "ro", "el", "tr", "ar", "fa",
     "ur", "he", "hi", "bn", "ta", "te", "mr", "ne", "id", "ms", "vi", "th", "ja", "ko", "zh",
     "sw", "af", "ca", "eu", "gl", "is", "ga", "cy", "ka", "hy", "az", "kk"}
)

# Scripts used by one language among LANGUAGES (Han without kana is Chinese).
_SCRIPTS = {"HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko", "HEBREW": "he", "THAI": "th",
            "GREEK": "el", "CJK": "zh"}

# Cyrillic ideas are Russian unless a letter only another language uses says otherwise (short
# Russian ideas without ы, э or ё read as Bulgarian to the model).
_CYRILLIC_MARKERS = {"uk": "іїєґ", "be": "ў", "sr": "ђћџљњј", "kk": "әғқңөұүһ"}

_identifier: LanguageIdentifier | None = None
_lock = threading.Lock()


def _model() -> LanguageIdentifier:
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
                identifier.set_languages(sorted(LANGUAGES))
                _identifier = identifier
    return _identifier


def warm() -> None:
    """Load the model now (about half a second), so the first story does not wait for it."""
    _model()


def _letters(text: str) -> list[str]:
    return [ch for ch in text if ch.isalpha()]


def script_language(text: str) -> str | None:
    """The language a script alone decides: Japanese as soon as kana appear, else the script most
    letters are in, when only one language writes it."""
    counts: dict[str, int] = {}
    for ch in _letters(text):
        script = unicodedata.name(ch, "").split(" ", 1)[0]
        if script in ("HIRAGANA", "KATAKANA"):
            return "ja"
        counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None
    main = max(counts, key=lambda s: counts[s])
    return _SCRIPTS.get(main)


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the idea's language, or None when there is too little text to tell.
    Blocking (the first call loads the model): call it from a thread in async code."""
    if len(_letters(text)) < MIN_LETTERS:
        return None
    by_script = script_language(text)
    if by_script is not None:
        return by_script
    letters = _letters(text)
    if all(unicodedata.name(ch, "").startswith("CYRILLIC") for ch in letters):
        low = text.lower()
        return next((k for k, marks in _CYRILLIC_MARKERS.items() if any(m in low for m in marks)),
                    "ru")
    if len(text.split()) < MIN_WORDS and all(ch.isascii() for ch in letters):
        return None
    ranked = _model().rank(text)
    best, best_score = ranked[0]
    english = next(score for lang, score in ranked if lang == "en")
    latin = all(ch.isascii() for ch in letters)
    if best != "en" and latin and english >= best_score - ENGLISH_MARGIN:
        return "en"
    return str(best)


def story_language(idea: str, chosen: str | None, default: str = "en") -> str:
    """The language a new story is told in: the chat's explicit setting wins, then the idea's
    detected language, then ``default``."""
    if chosen:
        return chosen
    return detect_language(idea) or default
