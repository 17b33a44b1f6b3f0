"""The offline narrator: real Piper synthesis with the shipped voice."""

from __future__ import annotations

import io
import itertools
import wave

import numpy as np
import pytest

from providers.base import Narrator, SpeechRequest, SpeechResult, WordTiming
from providers.offline.voice import PiperNarrator, glyph_clusters, speakable, split_sentences

TWO_SENTENCES = "The lighthouse keeper climbed the stairs, slowly. A whale sang below!"


async def speak(text: str, **kwargs: object) -> SpeechResult:
    return await PiperNarrator().speak(SpeechRequest(text=text, **kwargs))


def decode(result: SpeechResult) -> tuple[int, np.ndarray]:
    assert result.audio.mime == "audio/wav"
    with wave.open(io.BytesIO(result.audio.data)) as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert len(pcm) / rate == pytest.approx(result.duration_s, abs=0.05)
    return rate, pcm.astype(np.float64) / 32768


def check_timings(words: list[WordTiming], text: str, duration_s: float) -> None:
    assert [w.text for w in words] == text.split()
    for earlier, later in itertools.pairwise(words):
        assert earlier.end_s <= later.start_s + 1e-9
    for w in words:
        assert 0 <= w.start_s <= w.end_s <= duration_s + 1e-9


def test_is_a_narrator() -> None:
    assert isinstance(PiperNarrator(), Narrator)


async def test_two_sentences_are_spoken_and_timed() -> None:
    result = await speak(TWO_SENTENCES)
    rate, audio = decode(result)
    assert rate == 22050
    assert 2.0 < result.duration_s < 8.0
    assert np.sqrt(np.mean(audio**2)) > 0.02, "speech, not silence"
    check_timings(result.words, TWO_SENTENCES, result.duration_s)

    first_end = result.words[6].end_s  # "slowly."
    second_start = result.words[7].start_s  # "A"
    assert second_start - first_end >= 0.2, "a pause between sentences"
    gap = audio[int(first_end * rate) + 200 : int(second_start * rate) - 200]
    assert np.max(np.abs(gap)) < 0.1, "the pause between sentences is quiet"
    # Long words take longer than short ones.
    durations = {w.text: w.end_s - w.start_s for w in result.words}
    assert durations["lighthouse"] > durations["The"]
    assert result.usage.provider == "offline"
    assert result.usage.model == "piper:en_US-joe-medium"
    assert result.usage.units == len(TWO_SENTENCES)
    assert result.usage.unit == "char"


async def test_faster_speech_is_shorter() -> None:
    normal = await speak(TWO_SENTENCES, speed=1.0)
    fast = await speak(TWO_SENTENCES, speed=1.5)
    assert fast.duration_s < normal.duration_s * 0.85
    check_timings(fast.words, TWO_SENTENCES, fast.duration_s)


@pytest.mark.parametrize(
    "text", ["🐳🌊✨", "👨‍👩‍👧 🐋", "灯塔守护者和鲸鱼成为了朋友。", "こんにちは"]
)
async def test_unpronounceable_text_gives_timed_silence(text: str) -> None:
    result = await speak(text)
    _, audio = decode(result)
    assert result.duration_s >= 1.5
    assert np.max(np.abs(audio)) < 0.01, "silence, not the voice reading emoji names"
    check_timings(result.words, text, result.duration_s)
    assert result.words[-1].end_s == pytest.approx(result.duration_s, abs=0.05)


async def test_emoji_inside_a_sentence_keeps_its_place() -> None:
    text = "The whale 🐳 sang."
    result = await speak(text)
    decode(result)
    check_timings(result.words, text, result.duration_s)


async def test_cyrillic_is_spoken() -> None:
    text = "Кит поёт ночью."
    result = await speak(text, language="ru")
    _, audio = decode(result)
    assert np.sqrt(np.mean(audio**2)) > 0.02
    check_timings(result.words, text, result.duration_s)


def test_sentence_split_keeps_abbreviations() -> None:
    assert split_sentences('Mr. Smith waved. "Hello!" she said\nThen silence') == [
        ["Mr.", "Smith", "waved."],
        ['"Hello!"'],
        ["she", "said"],
        ["Then", "silence"],
    ]


def test_speakable_and_clusters() -> None:
    assert speakable("whale🐳,") == "whale,"
    assert speakable("🐳") == ""
    assert speakable("你好") == ""
    assert speakable("café") == "café"
    assert glyph_clusters("👨‍👩‍👧") == 1
    assert glyph_clusters("你好世界") == 4
