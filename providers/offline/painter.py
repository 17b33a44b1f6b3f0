"""Offline image provider: procedural storyboard frames that need no model.

A frame is composed from keyword-driven parts: a sky for the time of day, a setting built from
layered silhouettes (sea, forest, city, mountains, interior...), and the cast drawn as stylised
figures. A character's kind, palette and silhouette come only from its name and description, so
the same character looks the same in every frame; the seed moves the camera, the figures, the
weather and the props. Drawing happens at half size and is upscaled, then a cached paper texture
and vignette are applied, which keeps a 720x1280 frame well under a third of a second.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from providers.base import CharacterRef, ImageRequest, ImageResult, Media, Usage
from providers.config import ProviderSettings
from providers.offline.figures import (
    Figure,
    stamp_figure,
)
from providers.offline.palette import (
    INK,
    SKY,
    FloatImage,
)
from providers.offline.scenery import (
    Stage,
    _clouds,
    _landscape,
    _setting_of,
    _sky,
    _stars,
    _sun,
    _weather,
)

# --------------------------------------------------------------------------- finishing


@lru_cache(maxsize=8)
def _finish_map(w: int, h: int, strength: float) -> FloatImage:
    """Vignette times paper texture for a size: the same paper under every frame."""
    rng = np.random.default_rng(20240601)
    small = rng.standard_normal((max(2, h // 6), max(2, w // 6))).astype(np.float32)
    coarse = Image.fromarray(((small * 0.5 + 0.5).clip(0, 1) * 255).astype(np.uint8))
    coarse = coarse.filter(ImageFilter.GaussianBlur(1.2)).resize((w, h), Image.Resampling.BICUBIC)
    paper = (np.asarray(coarse, dtype=np.float32) / 255.0 - 0.5) * 0.06
    grain = rng.standard_normal((h, w)).astype(np.float32) * 0.006
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    r2 = xx * xx * 0.85 + yy * yy
    vignette = 1.0 - strength * np.clip(r2 - 0.45, 0, None) ** 1.2
    return ((vignette * (1.0 + paper + grain))[..., None]).astype(np.float32)


def _finish(img: Image.Image, w: int, h: int, vignette: float = 0.2) -> Image.Image:
    up = img if img.size == (w, h) else img.resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(up, dtype=np.float32) * _finish_map(w, h, vignette)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --------------------------------------------------------------------------- frames


def _work_size(w: int, h: int) -> tuple[int, int]:
    scale = 2 if min(w, h) >= 256 else 1
    return max(32, w // scale), max(32, h // scale)


_TOLD_WEATHER = (("storm", "rain"), ("rain", "rain"), ("fog", "mist"), ("mist", "mist"),
                 ("snow", "snow"))


def _weather_of(request: ImageRequest) -> str:
    """The weather the scene's setting names ("the bakery in the storm" rains)."""
    words = re.findall(r"[a-z]+", request.setting.lower())
    return next((kind for key, kind in _TOLD_WEATHER if any(w.startswith(key) for w in words)),
                "")


def render_frame(request: ImageRequest, seed: int) -> Image.Image:
    """One storyboard frame: the background at half size (soft, cheap), upscaled, then the
    figures and the weather at full size."""
    rng = random.Random(seed)
    w, h = _work_size(request.width, request.height)
    W, H = request.width, request.height
    tod = request.time_of_day
    framing = request.framing
    setting = _setting_of(request)
    cam = rng.uniform(-0.3, 0.3)
    base_hz = {"wide": 0.56, "medium": 0.6, "close": 0.64}[framing] + (0.02 if h > w else 0.0)
    horizon = h * (base_hz + rng.uniform(-0.07, 0.06))
    sun_x = w * (0.5 + cam * 1.4 + rng.uniform(-0.15, 0.15))
    sun_y = horizon * {"dawn": 0.82, "day": 0.25, "dusk": 0.75, "night": 0.3}[tod]
    sky = _sky(w, h, tod, horizon, (sun_x, sun_y))
    img = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    st = Stage(img, ImageDraw.Draw(img), w, h, horizon, tod, rng, SKY[tod][2])
    if tod == "night" or setting == "space":
        _stars(st)
    if setting != "interior":
        _sun(st, sun_x, sun_y)
        _clouds(st, rng.randint(2, 6), dark=rng.random() > 0.8)
    stand = _landscape(st, setting, cam)
    told = _weather_of(request)
    if setting in ("interior", "space"):
        weather = "none"
    elif told:
        weather = told
    elif setting == "snow" or (setting == "mountains" and rng.random() < 0.3):
        weather = "snow"
    else:
        weather = rng.choices(["none", "mist", "rain", "fireflies"], [5, 3, 1, 1])[0]
        if weather == "fireflies" and tod not in ("dusk", "night"):
            weather = "mist"
    if weather == "mist":
        _weather(st, weather)
    if framing == "close":
        st.img = st.img.filter(ImageFilter.GaussianBlur(max(2, w // 160)))
    big = st.img.filter(ImageFilter.GaussianBlur(0.7)).resize((W, H), Image.Resampling.BICUBIC)
    k = W / w
    full = Stage(big, ImageDraw.Draw(big), W, H, horizon * k, tod, rng, st.haze)
    figures = [Figure.of(c) for c in request.characters][:4]
    _place_figures(full, figures, framing, stand * (H / h), cam, rng)
    if weather in ("rain", "snow", "fireflies"):
        _weather(full, weather)
    return _finish(full.img, W, H)


def _place_figures(
    st: Stage, figures: list[Figure], framing: str, stand: float, cam: float, rng: random.Random
) -> None:
    if not figures:
        return
    w, h = st.w, st.h
    n = len(figures)
    short = min(w, h)
    if framing == "close":
        main = figures[rng.randrange(n)] if n > 1 and rng.random() < 0.3 else figures[0]
        others = [f for f in figures if f is not main][:1]
        for f in others:
            fh = _height_for(f, min(h * 0.5, w * 0.6))
            x = w * (0.82 if cam < 0 else 0.18)
            stamp_figure(st.img, f, x, h * 0.99, fh, -1 if x > w / 2 else 1)
        x = w * (0.45 + cam * 0.4)
        if main.kind == "person":
            fh = min(h * 1.25, w * 2.0)
            feet = h * 0.22 + fh
        else:
            fh = _height_for(main, min(h, w * 1.1)) * 1.6
            feet = h * 0.95 if main.kind not in ("whale", "fish") else h * 0.85
        stamp_figure(st.img, main, x, feet, fh, 1 if cam < 0 else -1)
        return
    size = {"wide": 0.2, "medium": 0.36}[framing]
    base_h = min(h * size, short * (0.55 if framing == "medium" else 0.36))
    spread = 0.52 if framing == "medium" else 0.45
    order = list(range(n))
    if rng.random() < 0.5:
        order.reverse()
    center = 0.5 + cam * 0.5 + rng.uniform(-0.08, 0.08)
    feet_base = stand + (h - stand) * (0.35 if framing == "medium" else 0.0)
    for slot, idx in enumerate(order):
        f = figures[idx]
        t = (slot - (n - 1) / 2) / max(1, n - 1) if n > 1 else 0.0
        x = min(max(w * (center + t * spread), w * 0.14), w * 0.86)
        feet = min(feet_base + rng.uniform(-0.02, 0.03) * h, h * 0.97)
        fh = _height_for(f, base_h)
        facing = 1 if x < w * center else -1
        if n == 1:
            facing = 1 if x < w / 2 else -1
        px = st.img.getpixel((int(min(max(x, 0), w - 1)), int(min(feet, h - 1))))
        ground = (px[0], px[1], px[2]) if isinstance(px, tuple) else None
        stamp_figure(st.img, f, x, feet, fh, facing, ground=ground)


def _height_for(f: Figure, person_h: float) -> float:
    return person_h * {
        "person": 1.0,
        "robot": 0.95,
        "whale": 0.55,
        "fish": 0.3,
        "cat": 0.42,
        "dog": 0.5,
        "fox": 0.45,
        "bird": 0.35,
        "bear": 0.75,
        "horse": 0.85,
        "dragon": 0.8,
    }.get(f.kind, 0.6)


# --------------------------------------------------------------------------- character sheet


def _font_path(text: str) -> str | None:
    for pkg, rel in (
        ("noto_cjk_sans_otc", "NotoSansCJK-Regular.ttc"),
        ("manimgx_fonts", "NotoSans[wght].ttf"),
    ):
        if pkg == "noto_cjk_sans_otc" and all(ord(ch) < 0x2E80 for ch in text):
            continue
        spec = importlib.util.find_spec(pkg)
        if spec and spec.origin:
            path = Path(spec.origin).parent / rel
            if path.exists():
                return str(path)
    return None


@lru_cache(maxsize=8)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    return ImageFont.load_default(size)


def render_sheet(request: ImageRequest, seed: int) -> Image.Image:
    """A reference sheet: each character front and side on plain paper, with swatches."""
    w, h = request.width, request.height
    paper = (244, 238, 226)
    img = Image.new("RGB", (w, h), paper)
    d = ImageDraw.Draw(img)
    step = max(8, min(w, h) // 24)
    for gx in range(0, w, step):
        d.line([(gx, 0), (gx, h)], fill=(234, 228, 214))
    for gy in range(0, h, step):
        d.line([(0, gy), (w, gy)], fill=(234, 228, 214))
    figures = [Figure.of(c) for c in request.characters][:4] or [
        Figure.of(CharacterRef(name="hero", description=request.prompt or "storybook hero"))
    ]
    rows = len(figures)
    row_h = h / rows
    for r, fig in enumerate(figures):
        top = r * row_h
        if r:
            d.line([(w * 0.05, top), (w * 0.95, top)], fill=(200, 190, 172), width=2)
        label_size = max(10, int(min(row_h * 0.06, w * 0.045)))
        font = _font(_font_path(fig.name), label_size)
        d.text((w * 0.05, top + row_h * 0.03), fig.name, fill=INK, font=font)
        fh = _height_for(fig, row_h * 0.62)
        wide = fig.kind in ("whale", "fish", "horse", "dragon")
        if wide:
            fh = min(fh, w * 0.13)
        fh = min(fh, w * 0.6)
        feet = top + row_h * (0.66 if wide else 0.8)
        stamp_figure(img, fig, w * 0.28, feet, fh, 1, ground=paper)
        stamp_figure(img, fig, w * 0.73, feet, fh, -1, side=True, ground=paper)
        sw = max(8, int(min(w * 0.09, row_h * 0.07)))
        for i, col in enumerate(fig.palette):
            x0 = w * 0.05 + i * sw * 1.4
            y0 = top + row_h * 0.88
            d.rectangle((x0, y0, x0 + sw, y0 + sw), fill=col, outline=INK, width=1)
    return _finish(img, w, h, vignette=0.06)


# --------------------------------------------------------------------------- provider


def render(request: ImageRequest) -> tuple[list[bytes], list[int]]:
    seeds = [(request.seed + i) % 2**32 for i in range(request.count)]
    draw = render_sheet if request.kind == "character_sheet" else render_frame
    return [_png(draw(request, s)) for s in seeds], seeds


class ProceduralPainter:
    """Paints storyboard frames and character sheets locally: free, instant and repeatable."""

    name = "offline"
    model = "procedural-painter"

    @classmethod
    def from_settings(cls, model: str, settings: ProviderSettings) -> Self:
        return cls()

    async def generate(self, request: ImageRequest) -> ImageResult:
        images, seeds = await asyncio.to_thread(render, request)
        return ImageResult(
            images=[Media(data=b, mime="image/png") for b in images],
            seeds=seeds,
            usage=Usage(
                provider=self.name, model=self.model, units=request.count, unit="image", usd=0.0
            ),
        )
