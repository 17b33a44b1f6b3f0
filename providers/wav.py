"""WAV files: 16-bit PCM, as every narrator and music maker here hands audio over."""

from __future__ import annotations

import io
import wave

import numpy as np
from numpy.typing import NDArray


def pcm16_wav(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    """A WAV file around little-endian 16-bit PCM (interleaved when several channels)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def float_wav(samples: NDArray[np.floating], rate: int) -> bytes:
    """A WAV file from float samples in [-1, 1]: shape ``(n,)`` for mono, ``(n, channels)``."""
    channels = 1 if samples.ndim == 1 else int(samples.shape[1])
    pcm = np.rint(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    return pcm16_wav(pcm.tobytes(), rate, channels)
