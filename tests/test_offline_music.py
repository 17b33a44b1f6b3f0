"""The offline ambient bed: exact length, level bounds, deterministic per seed."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from providers.base import MusicMaker, MusicRequest
from providers.offline.music import AmbientBed, pick_mood


def decode(data: bytes) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(io.BytesIO(data)) as wav:
        params = wav.getparams()
        pcm = np.frombuffer(wav.readframes(params.nframes), dtype="<i2")
    return params, pcm.reshape(-1, params.nchannels).astype(np.float64) / 32768


async def compose(duration_s: float, mood: str = "calm", seed: int = 0) -> bytes:
    result = await AmbientBed().compose(MusicRequest(duration_s=duration_s, mood=mood, seed=seed))
    assert result.audio.mime == "audio/wav"
    assert result.usage.unit == "second"
    assert result.usage.units == pytest.approx(duration_s, abs=1 / 44100)
    assert result.duration_s == pytest.approx(duration_s, abs=1 / 44100)
    return result.audio.data


def test_is_a_music_maker() -> None:
    assert isinstance(AmbientBed(), MusicMaker)


@pytest.mark.parametrize("duration_s", [0.05, 7.3, 40.0])
async def test_length_is_exact_and_level_is_bounded(duration_s: float) -> None:
    params, audio = decode(await compose(duration_s, "calm", seed=3))
    assert params.framerate == 44100
    assert params.sampwidth == 2
    assert abs(params.nframes - duration_s * 44100) <= 1
    peak_db = 20 * np.log10(np.max(np.abs(audio)))
    assert peak_db <= -6.0
    if duration_s > 1:
        rms_db = 10 * np.log10(np.mean(audio**2))
        assert rms_db > -30, "the bed is audible"


async def test_fades_in_and_out() -> None:
    _, audio = decode(await compose(20, "happy", seed=1))
    first = np.abs(audio[:441]).max()
    middle = np.abs(audio[len(audio) // 2 - 22050 : len(audio) // 2 + 22050]).max()
    last = np.abs(audio[-441:]).max()
    assert first < middle / 20 and last < middle / 20


async def test_deterministic_per_seed_and_different_across_seeds() -> None:
    a = await compose(10, "mysterious", seed=7)
    b = await compose(10, "mysterious", seed=7)
    c = await compose(10, "mysterious", seed=8)
    assert a == b
    assert a != c


async def test_moods_sound_different() -> None:
    _, calm = decode(await compose(10, "calm", seed=5))
    _, tense = decode(await compose(10, "tense", seed=5))
    assert not np.allclose(calm, tense, atol=0.01)


@pytest.mark.parametrize(
    ("words", "mood"),
    [
        ("calm", "calm"),
        ("A Happy, bright morning", "happy"),
        ("sorrowful", "sad"),
        ("suspenseful chase", "tense"),
        ("magical forest", "mysterious"),
        ("purple", "calm"),
    ],
)
def test_mood_words(words: str, mood: str) -> None:
    assert pick_mood(words)[0] == mood
