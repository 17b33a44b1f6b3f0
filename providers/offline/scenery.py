"""Settings for the offline painter: skies, clouds and stars for the time of day, and layered
silhouettes for the sea, forests, cities, mountains, interiors and the rest; weather on top."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from providers.base import ImageRequest
from providers.offline.palette import (
    INK,
    RGB,
    SETTINGS,
    SKY,
    FloatImage,
    _lit,
    _mix,
    _shade,
)

# --------------------------------------------------------------------------- background


@dataclass
class Stage:
    """A frame being drawn: the half-size canvas, its geometry and the light."""

    img: Image.Image
    d: ImageDraw.ImageDraw
    w: int
    h: int
    horizon: float
    tod: str
    rng: random.Random
    haze: RGB

    def far(self, c: RGB, depth: float) -> RGB:
        """A landscape colour lit for the time of day and hazed by distance (0 near, 1 far)."""
        return _mix(_lit(c, self.tod), self.haze, depth)


def _setting_of(request: ImageRequest) -> str:
    text = f"{request.setting} {request.setting} {request.prompt}".lower()
    best, pos = "generic", len(text) + 1
    for key, words in SETTINGS:
        for w in words:
            m = re.search(rf"\b{re.escape(w)}", text)
            if m and m.start() < pos:
                best, pos = key, m.start()
    return best


def _sky(w: int, h: int, tod: str, horizon: float, sun: tuple[float, float]) -> FloatImage:
    top, mid, low = (np.array(c, dtype=np.float32) for c in SKY[tod])
    t = np.clip(np.linspace(0.0, 1.0, h, dtype=np.float32) / max(horizon / h, 0.05), 0, 1)
    t = t[:, None]
    upper = top + (mid - top) * np.clip(t * 1.6, 0, 1)
    sky = upper + (low - upper) * np.clip((t - 0.45) / 0.55, 0, 1) ** 1.4
    img = np.broadcast_to(sky[:, None, :], (h, w, 3)).copy()
    yy, xx = np.ogrid[0:h, 0:w]
    dist2 = ((xx - sun[0]) ** 2 + (yy - sun[1]) ** 2).astype(np.float32) / float(w * w)
    glow_col = {
        "dawn": (255, 210, 170),
        "day": (255, 250, 230),
        "dusk": (255, 170, 90),
        "night": (150, 170, 220),
    }[tod]
    strength = {"dawn": 0.55, "day": 0.35, "dusk": 0.65, "night": 0.25}[tod]
    glow = np.exp(-dist2 / 0.03)[..., None] * strength
    out: FloatImage = (img + (np.array(glow_col, dtype=np.float32) - img) * glow).astype(np.float32)
    return out


def _clouds(st: Stage, n: int, dark: bool) -> None:
    mask = Image.new("L", (st.w // 4, st.h // 4), 0)
    md = ImageDraw.Draw(mask)
    for _ in range(n):
        cx = st.rng.uniform(-0.1, 1.1) * mask.width
        cy = st.rng.uniform(0.05, 0.75) * st.horizon / 4
        size = st.rng.uniform(0.08, 0.2) * mask.width
        for k in range(5):
            ox = (k - 2) * size * 0.45
            r = size * (0.55 + 0.3 * math.cos(k))
            md.ellipse((cx + ox - r, cy - r * 0.55, cx + ox + r, cy + r * 0.45), fill=200)
    mask = mask.filter(ImageFilter.GaussianBlur(2)).resize((st.w, st.h), Image.Resampling.BILINEAR)
    col = {
        "dawn": (250, 214, 214),
        "day": (250, 252, 255),
        "dusk": (240, 160, 140),
        "night": (70, 80, 120),
    }[st.tod]
    if dark:
        col = _shade(col, 0.7)
    st.img.paste(col, (0, 0), mask.point(lambda v: int(v * 0.8)))


def _stars(st: Stage) -> None:
    for _ in range(int(st.w * st.h / 900)):
        x, y = st.rng.uniform(0, st.w), st.rng.uniform(0, st.horizon * 0.9)
        b = st.rng.randint(150, 255)
        r = st.rng.choice((0.6, 0.8, 1.2))
        st.d.ellipse((x - r, y - r, x + r, y + r), fill=(b, b, min(255, b + 20)))


def _sun(st: Stage, sx: float, sy: float) -> None:
    r = st.w * (0.05 if st.tod != "night" else 0.045)
    col = {
        "dawn": (255, 226, 190),
        "day": (255, 250, 226),
        "dusk": (255, 196, 120),
        "night": (240, 240, 226),
    }[st.tod]
    px = st.img.getpixel((int(min(max(sx + r, 0), st.w - 1)), int(min(max(sy - r, 0), st.h - 1))))
    sky = (px[0], px[1], px[2]) if isinstance(px, tuple) else SKY["night"][1]
    st.d.ellipse((sx - r, sy - r, sx + r, sy + r), fill=col)
    if st.tod == "night":
        st.d.ellipse((sx - r * 0.55, sy - r * 1.15, sx + r * 1.35, sy + r * 0.75), fill=sky)


def _ridge(
    st: Stage, base: float, amp: float, col: RGB, freq: float, jag: float, snow: bool = False
) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = [(0, st.h)]
    phase = st.rng.uniform(0, 10)
    steps = 48
    for i in range(steps + 1):
        x = st.w * i / steps
        u = x / st.w * freq + phase
        y = base - amp * (0.55 + 0.3 * math.sin(u) + 0.15 * math.sin(u * 2.7 + 1.3))
        y -= amp * jag * (abs(((u * 3.1) % 2) - 1) - 0.5)
        pts.append((x, y))
    pts.append((st.w, st.h))
    st.d.polygon(pts, fill=col)
    if snow:
        cap = _mix(col, (250, 250, 255), 0.75)
        ridge = pts[1:-1]
        for i in range(1, len(ridge) - 1):
            x, y = ridge[i]
            if y < ridge[i - 1][1] and y < ridge[i + 1][1] and y < base - amp * 0.75:
                st.d.polygon(
                    [(x - amp * 0.18, y + amp * 0.16), (x, y), (x + amp * 0.18, y + amp * 0.16)],
                    fill=cap,
                )
    return pts


def _pine(d: ImageDraw.ImageDraw, x: float, base: float, h: float, col: RGB, trunk: RGB) -> None:
    d.rectangle((x - h * 0.03, base - h * 0.15, x + h * 0.03, base), fill=trunk)
    for k in range(3):
        top = base - h * (1.0 - k * 0.22)
        half = h * (0.16 + k * 0.06)
        d.polygon([(x, top), (x + half, top + h * 0.42), (x - half, top + h * 0.42)], fill=col)


def _round_tree(
    d: ImageDraw.ImageDraw, x: float, base: float, h: float, col: RGB, trunk: RGB
) -> None:
    d.rectangle((x - h * 0.04, base - h * 0.45, x + h * 0.04, base), fill=trunk)
    r = h * 0.3
    for ox, oy, k in ((0, -0.72, 1.0), (-0.18, -0.55, 0.8), (0.18, -0.58, 0.85)):
        rr = r * k
        d.ellipse(
            (x + ox * h - rr, base + oy * h - rr, x + ox * h + rr, base + oy * h + rr), fill=col
        )
    hl = _shade(col, 1.18)
    d.ellipse((x - r * 0.5, base - h * 0.9, x + r * 0.2, base - h * 0.72), fill=hl)


def _treeline(st: Stage, base: float, h: float, col: RGB, pine: bool, density: float) -> None:
    x = -st.rng.uniform(0, h * 0.3)
    trunk = _shade(col, 0.7)
    while x < st.w + h * 0.3:
        th = h * st.rng.uniform(0.7, 1.15)
        if pine:
            _pine(st.d, x, base + st.rng.uniform(0, h * 0.08), th, col, trunk)
        else:
            _round_tree(st.d, x, base + st.rng.uniform(0, h * 0.08), th, col, trunk)
        x += h * st.rng.uniform(0.18, 0.45) / density


def _ground(st: Stage, top: float, near: RGB, far: RGB) -> None:
    a = np.linspace(0, 1, max(1, int(st.h - top)), dtype=np.float32)[:, None, None]
    grad = (
        np.array(far, dtype=np.float32)
        + (np.array(near, dtype=np.float32) - np.array(far, dtype=np.float32)) * a
    )
    band = np.broadcast_to(grad, (grad.shape[0], st.w, 3)).astype(np.uint8)
    st.img.paste(Image.fromarray(band), (0, int(top)))


def _water(st: Stage, top: float, bottom: float, sun_x: float) -> None:
    deep = st.far((40, 90, 140), 0.0)
    near = _mix(st.far((60, 130, 170), 0.0), st.haze, 0.15)
    horizon_col = _mix(st.haze, deep, 0.35)
    a = np.linspace(0, 1, max(1, int(bottom - top)), dtype=np.float32)[:, None, None] ** 0.7
    grad = (
        np.array(horizon_col, dtype=np.float32)
        + (np.array(near, dtype=np.float32) - np.array(horizon_col, dtype=np.float32)) * a
    )
    band = np.broadcast_to(grad, (grad.shape[0], st.w, 3)).astype(np.uint8)
    st.img.paste(Image.fromarray(band), (0, int(top)))
    glint = _mix(SKY[st.tod][2], (255, 255, 255), 0.3)
    for k in range(int((bottom - top) / 5)):
        y = top + (k + st.rng.random()) * 5
        depth = (y - top) / max(1.0, bottom - top)
        span = st.w * (0.04 + depth * 0.12)
        x = sun_x + st.rng.gauss(0, st.w * (0.05 + depth * 0.1))
        col = _mix(glint, near, min(1.0, 0.2 + depth * 0.9))
        st.d.line([(x - span / 2, y), (x + span / 2, y)], fill=col, width=1)
        wx = st.rng.uniform(0, st.w)
        st.d.line([(wx, y), (wx + span * 0.6, y)], fill=_shade(near, 1.12), width=1)


def _lighthouse(st: Stage, x: float, base: float, h: float) -> None:
    w0, w1 = h * 0.11, h * 0.075
    red = st.far((200, 56, 50), 0.1)
    white = st.far((240, 236, 226), 0.1)
    if st.tod in ("dusk", "night"):
        beam = Image.new("L", (st.w, st.h), 0)
        bd = ImageDraw.Draw(beam)
        side = -1 if x > st.w / 2 else 1
        ly = base - h * 1.02
        bd.polygon(
            [
                (x, ly),
                (x + side * st.w * 1.2, ly - h * 0.5),
                (x + side * st.w * 1.2, ly + h * 0.25),
            ],
            fill=70 if st.tod == "night" else 40,
        )
        st.img.paste((255, 240, 190), (0, 0), beam.filter(ImageFilter.GaussianBlur(4)))
    bands = 6
    for i in range(bands):
        y0 = base - h * 0.85 * i / bands
        y1 = base - h * 0.85 * (i + 1) / bands
        t0, t1 = i / bands, (i + 1) / bands
        st.d.polygon(
            [
                (x - w0 + (w0 - w1) * t0, y0),
                (x + w0 - (w0 - w1) * t0, y0),
                (x + w0 - (w0 - w1) * t1, y1),
                (x - w0 + (w0 - w1) * t1, y1),
            ],
            fill=red if i % 2 else white,
        )
    top = base - h * 0.85
    st.d.rectangle((x - w1 * 1.3, top - h * 0.02, x + w1 * 1.3, top), fill=st.far(INK, 0.1))
    lamp = (255, 236, 160) if st.tod in ("dusk", "night") else st.far((230, 230, 210), 0.1)
    st.d.rectangle((x - w1 * 0.8, top - h * 0.12, x + w1 * 0.8, top - h * 0.02), fill=lamp)
    st.d.polygon(
        [(x - w1 * 1.1, top - h * 0.12), (x, top - h * 0.2), (x + w1 * 1.1, top - h * 0.12)],
        fill=red,
    )


def _castle(st: Stage, x: float, base: float, h: float, col: RGB) -> None:
    d = st.d
    w = h * 0.9
    d.rectangle((x - w / 2, base - h * 0.45, x + w / 2, base), fill=col)
    for k in range(-2, 3):
        d.rectangle(
            (
                x + k * w * 0.2 - w * 0.05,
                base - h * 0.5,
                x + k * w * 0.2 + w * 0.05,
                base - h * 0.45,
            ),
            fill=col,
        )
    for tx in (-0.5, 0.5, 0.0):
        th = h * (1.0 if tx == 0 else 0.75)
        tw = w * 0.14
        d.rectangle((x + tx * w - tw, base - th, x + tx * w + tw, base), fill=col)
        d.polygon(
            [
                (x + tx * w - tw * 1.25, base - th),
                (x + tx * w, base - th - h * 0.25),
                (x + tx * w + tw * 1.25, base - th),
            ],
            fill=_shade(col, 0.8),
        )
    window = (255, 210, 120) if st.tod in ("dusk", "night") else _shade(col, 0.6)
    for wx in (-0.5, 0.0, 0.5):
        d.rounded_rectangle(
            (x + wx * w - h * 0.025, base - h * 0.62, x + wx * w + h * 0.025, base - h * 0.52),
            radius=h * 0.02,
            fill=window,
        )


def _city(st: Stage, base: float, h: float, col: RGB, lit_windows: bool) -> None:
    x = -st.rng.uniform(0, 20)
    while x < st.w:
        bw = st.rng.uniform(0.08, 0.18) * st.w
        bh = h * st.rng.uniform(0.45, 1.0)
        c = _shade(col, st.rng.uniform(0.9, 1.1))
        st.d.rectangle((x, base - bh, x + bw, base), fill=c)
        if st.rng.random() < 0.3:
            st.d.polygon(
                [(x, base - bh), (x + bw / 2, base - bh - bw * 0.4), (x + bw, base - bh)], fill=c
            )
        win = (255, 214, 130) if lit_windows else _shade(c, 1.25)
        for wy in np.arange(base - bh + 8, base - 6, 9):
            for wx in np.arange(x + 4, x + bw - 4, 7):
                if st.rng.random() < (0.45 if lit_windows else 0.7):
                    st.d.rectangle((wx, wy, wx + 3, wy + 4), fill=win)
        x += bw + st.rng.uniform(1, 6)


def _house(st: Stage, x: float, base: float, h: float) -> None:
    wall = st.far((230, 210, 180), 0.05)
    roof = st.far((170, 70, 60), 0.05)
    st.d.rectangle((x - h * 0.5, base - h * 0.6, x + h * 0.5, base), fill=wall)
    st.d.polygon(
        [(x - h * 0.62, base - h * 0.58), (x, base - h * 1.05), (x + h * 0.62, base - h * 0.58)],
        fill=roof,
    )
    win = (255, 214, 130) if st.tod in ("dusk", "night") else st.far((120, 160, 190), 0.05)
    st.d.rectangle((x - h * 0.3, base - h * 0.45, x - h * 0.1, base - h * 0.25), fill=win)
    st.d.rectangle((x + h * 0.08, base - h * 0.4, x + h * 0.28, base), fill=_shade(roof, 0.8))


def _interior(st: Stage, cam: float) -> float:
    """A room: wall, window onto the sky of the hour, floor, lamp and a table. Returns the
    floor line."""
    w, h = st.w, st.h
    floor = h * st.rng.uniform(0.7, 0.78)
    wall = _lit((214, 196, 170), st.tod if st.tod != "night" else "dusk")
    if st.tod == "night":
        wall = _shade(wall, 0.75)
    st.d.rectangle((0, 0, w, floor), fill=wall)
    for k in range(0, w, 14):
        st.d.line([(k + cam * 40, 0), (k + cam * 40, floor)], fill=_shade(wall, 0.96), width=5)
    wx = w * (0.5 + cam * 0.6)
    ww, wh = w * 0.34, h * 0.3
    top = h * 0.16
    sky = SKY[st.tod]
    for i in range(int(wh)):
        st.d.line(
            [(wx - ww / 2, top + i), (wx + ww / 2, top + i)], fill=_mix(sky[0], sky[2], i / wh)
        )
    if st.tod == "night":
        for _ in range(12):
            sx, sy = st.rng.uniform(wx - ww / 2, wx + ww / 2), st.rng.uniform(top, top + wh * 0.7)
            st.d.point((sx, sy), fill=(240, 240, 255))
    frame = _shade(wall, 0.55)
    st.d.rectangle((wx - ww / 2, top, wx + ww / 2, top + wh), outline=frame, width=4)
    st.d.line([(wx, top), (wx, top + wh)], fill=frame, width=3)
    st.d.line([(wx - ww / 2, top + wh / 2), (wx + ww / 2, top + wh / 2)], fill=frame, width=3)
    curtain = _lit((170, 70, 70), "day" if st.tod != "night" else "dusk")
    st.d.polygon(
        [
            (wx - ww / 2 - 12, top - 6),
            (wx - ww / 2 + 18, top - 6),
            (wx - ww / 2 - 4, top + wh + 20),
            (wx - ww / 2 - 16, top + wh + 20),
        ],
        fill=curtain,
    )
    st.d.polygon(
        [
            (wx + ww / 2 + 12, top - 6),
            (wx + ww / 2 - 18, top - 6),
            (wx + ww / 2 + 4, top + wh + 20),
            (wx + ww / 2 + 16, top + wh + 20),
        ],
        fill=curtain,
    )
    floor_col = _lit((150, 100, 64), st.tod if st.tod != "night" else "dusk")
    _ground_plain(st, floor, _shade(floor_col, 0.8), floor_col)
    for k in range(-8, 9):
        st.d.line(
            [(w / 2 + k * w * 0.06, floor), (w / 2 + k * w * 0.2, h)],
            fill=_shade(floor_col, 0.85),
            width=1,
        )
    st.d.rectangle((0, floor - 6, w, floor), fill=_shade(wall, 0.7))
    px = w * (0.15 if cam > 0 else 0.85)
    st.d.rectangle(
        (px - 18, top + 10, px + 18, top + 50), fill=(230, 220, 200), outline=frame, width=3
    )
    lamp_x = w * (0.82 if cam < 0.0 else 0.18)
    if st.tod in ("dusk", "night"):
        glow = Image.new("L", (w, h), 0)
        ImageDraw.Draw(glow).ellipse(
            (lamp_x - w * 0.3, floor - h * 0.45, lamp_x + w * 0.3, floor + h * 0.05), fill=90
        )
        st.img.paste((255, 214, 150), (0, 0), glow.filter(ImageFilter.GaussianBlur(20)))
    st.d.line([(lamp_x, floor), (lamp_x, floor - h * 0.25)], fill=(60, 50, 50), width=3)
    st.d.polygon(
        [
            (lamp_x - 22, floor - h * 0.25),
            (lamp_x + 22, floor - h * 0.25),
            (lamp_x + 14, floor - h * 0.31),
            (lamp_x - 14, floor - h * 0.31),
        ],
        fill=(240, 200, 120),
    )
    return floor


def _ground_plain(st: Stage, top: float, far: RGB, near: RGB) -> None:
    _ground(st, top, near, far)


def _flowers(st: Stage, top: float, n: int) -> None:
    cols = [(240, 120, 140), (250, 220, 90), (250, 250, 250), (180, 140, 230)]
    for _ in range(n):
        y = st.rng.uniform(top + 5, st.h)
        x = st.rng.uniform(0, st.w)
        r = 0.8 + (y - top) / max(1.0, st.h - top) * 2.5
        st.d.ellipse((x - r, y - r, x + r, y + r), fill=_lit(st.rng.choice(cols), st.tod))


def _grass(st: Stage, top: float, col: RGB, n: int) -> None:
    dark = _shade(col, 0.75)
    for _ in range(n):
        y = st.rng.uniform(top + 4, st.h)
        x = st.rng.uniform(0, st.w)
        hgt = 2 + (y - top) / max(1.0, st.h - top) * 9
        st.d.line([(x, y), (x + st.rng.uniform(-2, 2), y - hgt)], fill=dark, width=1)


def _landscape(st: Stage, setting: str, cam: float) -> float:
    """Draws the setting's layers back to front; returns the y where figures stand."""
    w, h, hz, rng = st.w, st.h, st.horizon, st.rng
    if setting == "interior":
        return _interior(st, cam) + (h - _interior_floor(st)) * 0.0
    if setting == "space":
        planet_x = w * (0.75 - cam)
        pr = w * rng.uniform(0.16, 0.26)
        st.d.ellipse(
            (planet_x - pr, hz * 0.45 - pr, planet_x + pr, hz * 0.45 + pr), fill=(200, 120, 90)
        )
        st.d.chord(
            (planet_x - pr, hz * 0.45 - pr, planet_x + pr, hz * 0.45 + pr),
            300,
            120,
            fill=(150, 80, 70),
        )
        st.d.arc(
            (
                planet_x - pr * 1.7,
                hz * 0.45 - pr * 0.35,
                planet_x + pr * 1.7,
                hz * 0.45 + pr * 0.35,
            ),
            160,
            380,
            fill=(230, 200, 170),
            width=3,
        )
        _ridge(st, hz + h * 0.04, h * 0.05, (120, 120, 136), 5, 0.2)
        _ground(st, hz + h * 0.05, (150, 150, 160), (110, 110, 126))
        for _ in range(14):
            cx, cy = rng.uniform(0, w), rng.uniform(hz + h * 0.08, h)
            r = rng.uniform(4, 14) * (cy / h)
            st.d.ellipse((cx - r, cy - r * 0.35, cx + r, cy + r * 0.35), fill=(96, 96, 110))
        return hz + (h - hz) * 0.55
    grass = (96, 150, 80)
    if setting in ("mountains", "snow", "generic", "castle", "meadow", "river", "forest"):
        snow = setting == "snow" or (setting == "mountains" and rng.random() < 0.6)
        _ridge(st, hz - h * 0.02, h * 0.22, st.far((110, 120, 150), 0.6), 3.0, 0.45, snow=snow)
        _ridge(
            st,
            hz + h * 0.01,
            h * 0.12,
            st.far((90, 110, 120), 0.4),
            4.5,
            0.25,
            snow=setting == "snow",
        )
    if setting == "desert":
        sand = (226, 184, 120)
        _ridge(st, hz, h * 0.06, st.far((200, 150, 110), 0.5), 2.0, 0.0)
        _ridge(st, hz + h * 0.06, h * 0.08, st.far(sand, 0.25), 2.6, 0.0)
        _ground(st, hz + h * 0.1, st.far(_shade(sand, 1.05), 0.0), st.far(sand, 0.15))
        for _ in range(rng.randint(1, 3)):
            cx, cb = rng.uniform(0, w), hz + h * rng.uniform(0.07, 0.12)
            cc = st.far((70, 120, 70), 0.3)
            st.d.rounded_rectangle((cx - 4, cb - 30, cx + 4, cb), radius=4, fill=cc)
            st.d.rounded_rectangle((cx - 14, cb - 20, cx - 8, cb - 8), radius=3, fill=cc)
        return hz + (h - hz) * 0.62
    if setting in ("sea", "beach", "lighthouse"):
        sun_x = w * (0.5 + cam * 0.6)
        _water(st, hz, h, sun_x)
        if setting == "lighthouse":
            cliff_side = 1 if cam < 0 else -1
            cx = w * (0.82 if cliff_side > 0 else 0.18)
            cliff = st.far((96, 92, 88), 0.15)
            top_y = hz - h * 0.02
            pts = [
                (cx - cliff_side * w * 0.5, h),
                (cx - cliff_side * w * 0.22, top_y + h * 0.04),
                (cx - cliff_side * w * 0.08, top_y),
                (cx + cliff_side * w * 0.6, top_y),
                (cx + cliff_side * w * 0.6, h),
            ]
            st.d.polygon(pts, fill=cliff)
            st.d.polygon(
                [(p[0], p[1] - 3) for p in pts[1:4]]
                + [(pts[3][0], top_y + 8), (pts[1][0], top_y + h * 0.05)],
                fill=st.far((90, 130, 70), 0.1),
            )
            _lighthouse(st, cx, top_y + 2, h * rng.uniform(0.3, 0.38))
        sand = (232, 206, 150)
        shore = hz + (h - hz) * rng.uniform(0.35, 0.5)
        pts = [(0, h), (0, shore)]
        for i in range(1, 13):
            pts.append((w * i / 12, shore + math.sin(i * 0.9 + cam * 5) * 6))
        pts.append((w, h))
        if setting != "sea":
            st.d.polygon(pts, fill=st.far(sand, 0.05))
            foam = _mix(st.far((250, 250, 250), 0.0), st.far(sand, 0.0), 0.3)
            st.d.line(pts[1:-1], fill=foam, width=2)
            return shore + (h - shore) * 0.5
        rock = st.far((70, 76, 84), 0.0)
        st.d.polygon(pts, fill=_mix(st.far(sand, 0.05), rock, 0.45))
        return shore + (h - shore) * 0.5
    if setting == "city":
        _city(st, hz, h * 0.3, st.far((110, 110, 140), 0.55), st.tod in ("dusk", "night"))
        _city(st, hz + h * 0.04, h * 0.22, st.far((86, 80, 100), 0.25), st.tod in ("dusk", "night"))
        street = st.far((120, 116, 120), 0.0)
        _ground(st, hz + h * 0.04, street, st.far((150, 146, 150), 0.1))
        for k in range(-6, 7):
            st.d.line(
                [(w / 2 + k * w * 0.04, hz + h * 0.04), (w / 2 + k * w * 0.3, h)],
                fill=_shade(street, 0.9),
                width=1,
            )
        for lx in (w * (0.12 + cam * 0.3), w * (0.88 + cam * 0.3)):
            st.d.line([(lx, h * 0.98), (lx, hz - h * 0.12)], fill=(50, 50, 60), width=3)
            lamp = (255, 220, 140) if st.tod in ("dusk", "night") else (220, 220, 210)
            st.d.ellipse((lx - 6, hz - h * 0.14, lx + 6, hz - h * 0.11), fill=lamp)
        return hz + (h - hz) * 0.62
    if setting == "castle":
        _ridge(st, hz + h * 0.03, h * 0.08, st.far((88, 130, 80), 0.25), 2.0, 0.0)
        _castle(st, w * (0.5 + cam * 0.7), hz - h * 0.02, h * 0.22, st.far((150, 146, 160), 0.3))
    if setting == "forest":
        _treeline(st, hz + h * 0.01, h * 0.16, st.far((50, 100, 80), 0.55), True, 1.6)
        _treeline(st, hz + h * 0.06, h * 0.22, st.far((40, 96, 60), 0.3), rng.random() < 0.5, 1.2)
    if setting == "river":
        _ridge(st, hz + h * 0.03, h * 0.05, st.far((80, 130, 80), 0.3), 2.0, 0.0)
        _ground(st, hz + h * 0.03, st.far(grass, 0.0), st.far(grass, 0.2))
        band_top, band_bottom = hz + h * 0.07, hz + h * 0.15
        _water(st, band_top, band_bottom, w * (0.5 + cam))
        _grass(st, band_bottom, st.far(grass, 0.0), 300)
        return band_bottom + (h - band_bottom) * 0.5
    _ridge(st, hz + h * 0.05, h * 0.07, st.far(grass, 0.2), 2.2, 0.0)
    _ground(st, hz + h * 0.07, st.far(_shade(grass, 1.06), 0.0), st.far(grass, 0.15))
    if setting == "snow":
        _ground(st, hz + h * 0.04, st.far((242, 244, 250), 0.0), st.far((214, 222, 236), 0.2))
        _treeline(st, hz + h * 0.05, h * 0.1, st.far((60, 90, 90), 0.4), True, 0.5)
    elif setting == "meadow":
        _flowers(st, hz + h * 0.07, 160)
        _grass(st, hz + h * 0.07, st.far(grass, 0.0), 250)
        if rng.random() < 0.7:
            _house(st, w * (0.25 - cam), hz + h * 0.06, h * 0.1)
    else:
        _grass(st, hz + h * 0.07, st.far(grass, 0.0), 200)
        tree_x = w * (0.85 + cam * 0.8) if cam < 0 else w * (0.12 + cam * 0.5)
        _round_tree(
            st.d,
            tree_x,
            hz + h * 0.14,
            h * 0.25,
            st.far((60, 120, 70), 0.0),
            st.far((90, 64, 44), 0.0),
        )
    return hz + (h - hz) * 0.6


def _interior_floor(st: Stage) -> float:
    return float(st.h)


def _weather(st: Stage, kind: str) -> None:
    if kind == "mist":
        mask = Image.new("L", (st.w, st.h), 0)
        md = ImageDraw.Draw(mask)
        md.rectangle((0, st.horizon - st.h * 0.03, st.w, st.horizon + st.h * 0.05), fill=120)
        st.img.paste(
            _mix(st.haze, (255, 255, 255), 0.3),
            (0, 0),
            mask.filter(ImageFilter.GaussianBlur(st.h * 0.03)),
        )
    elif kind == "rain":
        col = _mix(st.haze, (255, 255, 255), 0.4)
        for _ in range(int(st.w * st.h / 700)):
            x, y = st.rng.uniform(0, st.w), st.rng.uniform(0, st.h)
            st.d.line([(x, y), (x - 2, y + 7)], fill=col, width=1)
    elif kind == "snow":
        for _ in range(int(st.w * st.h / 500)):
            x, y = st.rng.uniform(0, st.w), st.rng.uniform(0, st.h)
            r = st.rng.choice((0.8, 1.2, 1.8))
            st.d.ellipse((x - r, y - r, x + r, y + r), fill=(245, 248, 255))
    elif kind == "fireflies":
        for _ in range(30):
            x, y = st.rng.uniform(0, st.w), st.rng.uniform(st.horizon, st.h)
            st.d.ellipse((x - 1.3, y - 1.3, x + 1.3, y + 1.3), fill=(255, 236, 140))
