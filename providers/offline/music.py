"""A generated ambient bed: soft pad chords over a slow progression, a little air, a slow
tremolo, faded in and out. Deterministic per (seed, mood), numpy only, far faster than real time.

The mood picks the mode, the progression, the chord length and the brightness; the seed picks the
key and the voicing details, so two stories with the same mood still sound different.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

import numpy as np

from providers.base import Media, MusicRequest, MusicResult, Usage
from providers.config import ProviderSettings
from providers.wav import float_wav

NAME = "offline"
MODEL = "ambient-bed"
RATE = 44100
PEAK_DBFS = -6.5  # a bed sits under the voice; the quantised peak stays below -6 dBFS

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)


@dataclass(frozen=True)
class Mood:
    scale: tuple[int, ...]
    progressions: tuple[tuple[int, ...], ...]  # scale degrees, 0-based
    chord_s: float  # seconds per chord
    brightness: float  # weight of the upper partials, 0..1
    tremolo_hz: float
    air: float  # level of the filtered noise
    root_range: tuple[int, int]  # MIDI notes the key's root is picked from


MOODS: dict[str, Mood] = {
    "calm": Mood(MAJOR, ((0, 5, 3, 4), (0, 3, 5, 4), (0, 4, 5, 3)), 4.0, 0.35, 0.18, 0.5, (50, 57)),
    "happy": Mood(
        MAJOR, ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4)), 2.5, 0.55, 0.3, 0.35, (53, 60)
    ),
    "sad": Mood(MINOR, ((0, 5, 2, 6), (0, 3, 5, 4), (0, 5, 3, 4)), 5.0, 0.25, 0.12, 0.45, (48, 55)),
    "tense": Mood(PHRYGIAN, ((0, 1, 0, 6), (0, 5, 1, 4)), 3.0, 0.3, 0.45, 0.7, (45, 51)),
    "mysterious": Mood(DORIAN, ((0, 3, 6, 4), (0, 6, 3, 1)), 4.5, 0.4, 0.15, 0.8, (47, 54)),
}
SYNONYMS = {
    "peace": "calm", "gentle": "calm", "quiet": "calm", "serene": "calm", "warm": "calm",
    "joy": "happy", "cheer": "happy", "bright": "happy", "playful": "happy", "hope": "happy",
    "fun": "happy", "adventur": "happy", "triumph": "happy",
    "melanchol": "sad", "sorrow": "sad", "lonely": "sad", "grief": "sad", "wistful": "sad",
    "tear": "sad", "loss": "sad",
    "suspense": "tense", "danger": "tense", "fear": "tense", "scary": "tense", "dark": "tense",
    "storm": "tense", "urgent": "tense",
    "myster": "mysterious", "magic": "mysterious", "dream": "mysterious", "eerie": "mysterious",
    "wonder": "mysterious", "night": "mysterious", "strange": "mysterious",
}  # fmt: skip


def pick_mood(mood: str) -> tuple[str, Mood]:
    """The first mood word found in ``mood`` (a name or a synonym); calm if none is."""
    text = mood.lower()
    found = [(text.find(key), name) for key, name in (*((m, m) for m in MOODS), *SYNONYMS.items())]
    hits = sorted((pos, name) for pos, name in found if pos >= 0)
    name = hits[0][1] if hits else "calm"
    return name, MOODS[name]


def compose(duration_s: float, mood: str = "calm", seed: int = 0) -> bytes:
    """A stereo 16-bit WAV of exactly ``round(duration_s * RATE)`` frames."""
    name, m = pick_mood(mood)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(name.encode())])
    n = max(1, round(duration_s * RATE))
    t = np.arange(n, dtype=np.float32) / RATE

    root = int(rng.integers(m.root_range[0], m.root_range[1] + 1))
    progression = m.progressions[int(rng.integers(len(m.progressions)))]
    chord_n = max(1, round(m.chord_s * RATE))
    overlap = chord_n // 2  # each chord swells in while the last one fades
    detune = 1 + float(rng.uniform(0.0015, 0.004))  # left and right a few cents apart

    out = np.zeros((2, n), dtype=np.float32)
    partials = np.array([1.0, 0.5 * m.brightness, 0.25 * m.brightness**2], dtype=np.float32)
    for index, start in enumerate(range(0, n, chord_n)):
        length = min(chord_n + overlap, n - start)
        degree = progression[index % len(progression)]
        notes = _chord(m.scale, root, degree, add_ninth=bool(rng.random() < 0.4))
        env = _swell(length, chord_n + overlap, overlap)
        seg = t[:length]
        for k, note in enumerate(notes):
            freq = 440.0 * 2 ** ((note - 69) / 12)
            level = 0.55 if k == 0 else 0.32  # the bass note carries the chord
            phase = float(rng.uniform(0, 2 * np.pi))
            for channel, f in enumerate((freq / detune, freq * detune)):
                tone = np.zeros(length, dtype=np.float32)
                for h, weight in enumerate(partials, start=1):
                    if weight > 1e-3 and f * h < 8000:
                        tone += weight * np.sin(np.float32(2 * np.pi * f * h) * seg + phase * h)
                out[channel, start : start + length] += level * env * tone

    out += _air(n, rng, m.air)
    # Slow tremolo, the two channels a little out of step so the pad breathes across the stereo.
    for channel, offset in enumerate((0.0, 0.9)):
        out[channel] *= 1 - 0.18 * (0.5 + 0.5 * np.sin(2 * np.pi * m.tremolo_hz * t + offset))
    out *= _fades(n)

    peak = float(np.max(np.abs(out)))
    if peak > 0:
        out *= np.float32(10 ** (PEAK_DBFS / 20) / peak)
    return float_wav(out.T, RATE)


def _chord(scale: tuple[int, ...], root: int, degree: int, *, add_ninth: bool) -> list[int]:
    """Bass note an octave down, then a close triad (plus a ninth for some colour)."""

    def note(step: int) -> int:
        octave, index = divmod(degree + step, len(scale))
        return root + 12 * octave + scale[index]

    steps = [0, 2, 4] + ([8] if add_ninth else [])
    return [note(0) - 12, *(note(s) for s in steps)]


def _swell(length: int, full: int, overlap: int) -> np.ndarray:
    """A soft raised-cosine attack and release over ``overlap`` samples each."""
    i = np.arange(length, dtype=np.float32)
    attack = np.clip(i / max(overlap, 1), 0, 1)
    release = np.clip((full - i) / max(overlap, 1), 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(attack, release))).astype(np.float32)


def _air(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Breathy noise: random values every few milliseconds, joined smoothly (a cheap low-pass),
    with a slow swell of its own."""
    step = 48
    points = n // step + 2
    coarse = rng.standard_normal((2, points)).astype(np.float32)
    x = np.arange(n, dtype=np.float32) / step
    noise = np.stack([np.interp(x, np.arange(points), c) for c in coarse]).astype(np.float32)
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * x * step / RATE / 7.0 + float(rng.uniform(0, 6)))
    return (0.04 * level * swell * noise).astype(np.float32)


def _fades(n: int) -> np.ndarray:
    """Fade in over up to 2 s and out over up to 3 s (shorter for a short bed)."""
    fade_in = min(2 * RATE, n // 4)
    fade_out = min(3 * RATE, n // 4)
    env = np.ones(n, dtype=np.float32)
    if fade_in:
        env[:fade_in] = np.linspace(0, 1, fade_in, dtype=np.float32) ** 2
    if fade_out:
        env[n - fade_out :] = np.linspace(1, 0, fade_out, dtype=np.float32) ** 2
    return env


class AmbientBed:
    """The offline music provider."""

    name = NAME

    def __init__(self, model: str = "") -> None:
        self.model = model or MODEL

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> AmbientBed:
        return cls(model)

    async def compose(self, request: MusicRequest) -> MusicResult:
        data = await asyncio.to_thread(compose, request.duration_s, request.mood, request.seed)
        frames = max(1, round(request.duration_s * RATE))
        return MusicResult(
            audio=Media(data=data, mime="audio/wav"),
            duration_s=frames / RATE,
            usage=Usage(provider=NAME, model=self.model, units=frames / RATE, unit="second"),
        )
