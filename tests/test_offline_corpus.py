"""The offline story of every idea in tests/data/ideas.yaml, judged as the person who typed it:
its language is detected, its characters are the idea's (places are settings), the scenery is the
idea's, every sentence is whole, and the narration is spoken, never silent."""

from __future__ import annotations

import io
import re
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipeline.language import detect_language, story_language
from providers.base import Script, ScriptRequest, SpeechRequest
from providers.offline.lexicon import CONJUNCTIONS, DETERMINERS, PREPOSITIONS
from providers.offline.script import StorySpineWriter
from providers.offline.voice import PiperNarrator

CORPUS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "ideas.yaml").read_text(encoding="utf-8")
)
SCENES = 4
RMS_FLOOR = 0.02  # speech normalised to -1 dBFS peak sits near 0.08-0.15 RMS
DANGLING = DETERMINERS | PREPOSITIONS | CONJUNCTIONS | {"named", "called"}


def ids(entry: dict[str, Any]) -> str:
    return str(entry["idea"])[:40]


def write(entry: dict[str, Any]) -> Script:
    language = story_language(entry["idea"], None)
    return StorySpineWriter().compose(
        ScriptRequest(idea=entry["idea"], scenes=SCENES, language=language)
    )


def test_the_corpus_is_big_and_varied_enough() -> None:
    assert len(CORPUS) >= 40
    assert len({e["language"] for e in CORPUS}) >= 6


@pytest.mark.parametrize("entry", CORPUS, ids=ids)
def test_the_story_follows_the_idea(entry: dict[str, Any]) -> None:
    idea: str = entry["idea"]
    assert story_language(idea, None) == entry["language"]
    script = write(entry)
    names = [c.name for c in script.characters]
    if "cast" in entry:
        assert names == entry["cast"]
    assert len(names) >= len(entry.get("cast_has", [])), names
    for name, word in zip(names, entry.get("cast_has", []), strict=False):
        assert word.lower() in name.lower(), names
    for word in entry.get("not_cast", []):
        assert not any(word.lower() in n.lower().split() for n in names), (word, names)
    settings = [s.setting.lower() for s in script.scenes]
    if "setting" in entry:
        assert entry["setting"] in settings[0], settings
    for word in entry.get("settings", []):
        assert any(word in s for s in settings), (word, settings)
    if "time" in entry:
        assert entry["time"] in [s.time_of_day for s in script.scenes]
    for name, word in entry.get("together", {}).items():
        scenes = [s for s in script.scenes if word in s.narration.lower()]
        assert scenes and all(name in s.characters for s in scenes), (name, script.scenes)
    narrations = [s.narration for s in script.scenes]
    assert len(set(narrations)) == len(narrations), "a line is repeated"
    if "literal" in entry:
        assert any(entry["literal"] in n for n in narrations)
        assert all(" b " not in n.lower() for n in narrations)
    if entry["language"] == "en" and any(ch.isalpha() for ch in idea):
        for line in narrations:
            assert line[-1] in ".!?", line
            last = re.findall(r"[A-Za-z']+", line)[-1].lower()
            assert last not in DANGLING, f"broken sentence: {line}"
        title_words = {w.lower() for w in re.findall(r"[A-Za-z]+", script.title)}
        idea_words = {w.lower() for w in re.findall(r"[A-Za-z]+", idea)}
        assert title_words - {"the", "and", "of", "in", "on", "at"} <= idea_words, script.title
    elif entry["language"] != "en":
        # Told in the idea's own words, in order, each piece once.
        flat = re.sub(r"\s+", "", idea)
        pos = 0
        for line in narrations:
            piece = re.sub(r"\s+", "", line)
            at = flat.find(piece, pos)
            assert at >= pos, f"{line!r} is not the idea's next words"
            pos = at + len(piece)
        assert detect_language(" ".join(narrations)) == entry["language"]


def rms(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768.0
    return float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.get("voice")], ids=ids)
async def test_every_scene_is_narrated_aloud(entry: dict[str, Any]) -> None:
    script = write(entry)
    language = story_language(entry["idea"], None)
    narrator = PiperNarrator()
    for scene in script.scenes:
        result = await narrator.speak(SpeechRequest(text=scene.narration, language=language))
        assert rms(result.audio.data) > RMS_FLOOR, scene.narration
        assert result.note == ""
        if language != "en":
            assert result.usage.model.startswith("espeak-ng:")
