"""The offline narrator: real Piper synthesis with the shipped voice."""

from __future__ import annotations

import io
import itertools
import wave

import numpy as np
import pytest

from providers.base import Narrator, SpeechRequest, SpeechResult, WordTiming
from providers.offline.voice import (
    PiperNarrator,
    glyph_clusters,
    group_spans,
    load_voice,
    speakable,
    split_sentences,
    word_spans,
)

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
async def test_text_the_english_voice_cannot_say_is_still_spoken(text: str) -> None:
    """Emoji are read by name, other scripts by espeak-ng's voice for them: never silence."""
    result = await speak(text)
    _, audio = decode(result)
    assert np.sqrt(np.mean(audio**2)) > 0.02, "narration is silent"
    check_timings(result.words, text, result.duration_s)
    assert result.words[-1].end_s <= result.duration_s + 0.05


@pytest.mark.parametrize(
    ("language", "text", "voice"),
    [("zh", "灯塔守护者和鲸鱼成为了朋友。", "espeak-ng:cmn"),
     ("ar", "قطة صغيرة تبحث عن القمر.", "espeak-ng:ar"),
     ("hi", "एक छोटा हाथी उड़ना सीखता है।", "espeak-ng:hi")],
)
async def test_each_language_gets_its_own_voice(language: str, text: str, voice: str) -> None:
    result = await speak(text, language=language)
    _, audio = decode(result)
    assert result.usage.model == voice
    assert result.note == ""
    assert np.sqrt(np.mean(audio**2)) > 0.02
    check_timings(result.words, text, result.duration_s)


async def test_a_language_without_a_voice_is_read_by_english_and_says_so() -> None:
    result = await speak("Ọmọ kékeré kan rí ẹja.", language="yo")
    _, audio = decode(result)
    assert np.sqrt(np.mean(audio**2)) > 0.02
    assert "yo" in result.note and "English" in result.note


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


def test_phoneme_groups_and_words_from_samples_per_phoneme_id() -> None:
    # BOS+pad, then each phoneme and its pad, then EOS: "ab c" is 4 phonemes, 11 ids
    phonemes = ["a", "b", " ", "c"]
    samples = np.array([100, 10, 20, 5, 30, 5, 40, 40, 50, 5, 60])
    assert group_spans(phonemes, samples) == [(110, 170), (250, 305)]
    assert group_spans(phonemes, samples[:-1]) is None  # not this phoneme list's ids
    spans = [(0, 10), (12, 20), (25, 30), (31, 40)]
    # "1999" is three groups; an emoji is none and stands as an instant where it is
    assert word_spans([1, 3], spans) == [(0, 10), (12, 40)]
    assert word_spans([1, 0, 3], spans) == [(0, 10), (10, 10), (12, 40)]
    assert word_spans([0, 4], spans) == [(0, 0), (0, 40)]
    assert word_spans([1, 1], spans) is None  # the words and the groups disagree


async def test_words_are_timed_by_the_models_own_alignment(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    voice = load_voice()
    seen: list[tuple[list[int], np.ndarray]] = []
    real = voice.phoneme_ids_to_audio

    def spy(ids: list[int], *args: object, **kwargs: object) -> object:
        out = real(ids, *args, **kwargs)  # type: ignore[arg-type]
        assert isinstance(out, tuple) and out[1] is not None, "the model reports alignment"
        seen.append((ids, out[1]))
        return out

    monkeypatch.setattr(voice, "phoneme_ids_to_audio", spy)
    text = "The keeper climbed the stairs in 1999."
    result = await speak(text)
    check_timings(result.words, text, result.duration_s)
    # Where each space-separated group of phoneme ids starts, from the samples the model gave
    [(ids, samples)] = seen
    id_of = {p: v[0] for p, v in voice.config.phoneme_id_map.items()}
    quiet = {id_of["_"], id_of["^"], id_of["$"]}
    starts, at, fresh = [], 0, True
    for i, n in zip(ids, samples, strict=True):
        if i == id_of[" "]:
            fresh = True
        elif i not in quiet and fresh:
            starts.append(at / voice.config.sample_rate)
            fresh = False
        at += int(n)
    ours = [w.start_s for w in result.words]
    assert len(starts) == len(ours) + 2  # "1999" is three groups: nineteen, ninety, nine
    assert ours[:6] == pytest.approx(starts[:6], abs=1e-6)
    assert ours[6] == pytest.approx(starts[6], abs=1e-6)
    last = result.words[-1]
    assert last.end_s - last.start_s > 3 * (result.words[3].end_s - result.words[3].start_s)


async def test_words_fall_back_to_an_estimate_when_groups_disagree(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import providers.offline.voice as voice_module

    monkeypatch.setattr(voice_module, "word_spans", lambda groups, spans: None)
    result = await speak(TWO_SENTENCES)
    check_timings(result.words, TWO_SENTENCES, result.duration_s)
    durations = {w.text: w.end_s - w.start_s for w in result.words}
    assert durations["lighthouse"] > durations["The"]


async def test_a_language_without_a_voice_is_read_by_a_close_one_and_says_so() -> None:
    result = await speak("O can e o gato viven na aldea.", language="gl")
    _, audio = decode(result)
    assert result.usage.model == "espeak-ng:pt"
    assert np.sqrt(np.mean(audio**2)) > 0.02
    assert "gl" in result.note and "pt" in result.note
