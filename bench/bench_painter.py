"""Per-frame time of the procedural painter, against a plain numpy gradient of the same size.

Run: python bench/bench_painter.py
"""

from __future__ import annotations

import time

import numpy as np

from providers.base import CharacterRef, ImageRequest
from providers.offline.painter import render

CAST = [
    CharacterRef(name="Keeper", description="lighthouse keeper in a yellow oilskin coat, beard"),
    CharacterRef(name="Whale", description="slate-blue whale with a pale belly"),
]


def _gradient(width: int, height: int) -> float:
    start = time.perf_counter()
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = np.array([60, 90, 160], dtype=np.float32)
    low = np.array([250, 200, 160], dtype=np.float32)
    img = np.broadcast_to(top + (low - top) * t, (height, width, 3)).astype(np.uint8)
    assert img.shape == (height, width, 3)
    return time.perf_counter() - start


def _frame(width: int, height: int, rounds: int) -> float:
    times = []
    settings = ["the lighthouse", "the forest", "the city", "the house"]
    for i in range(rounds):
        request = ImageRequest(
            prompt="bench",
            width=width,
            height=height,
            seed=i,
            setting=settings[i % len(settings)],
            time_of_day=("dawn", "day", "dusk", "night")[i % 4],
            framing=("wide", "medium", "close")[i % 3],
            characters=CAST,
        )
        start = time.perf_counter()
        render(request)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    render(ImageRequest(prompt="warm-up", width=720, height=1280, seed=0, characters=CAST))
    for label, (w, h) in {"720p": (720, 1280), "1080p": (1080, 1920)}.items():
        frame = _frame(w, h, 8)
        base = float(np.median([_gradient(w, h) for _ in range(8)]))
        print(
            f"frame_{label}_s={frame:.3f} gradient_{label}_s={base:.4f} "
            f"ratio_vs_gradient={frame / base:.0f}"
        )


if __name__ == "__main__":
    main()
