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
import colorsys
import hashlib
import importlib.util
import io
import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from providers.base import CharacterRef, ImageRequest, ImageResult, Media, Usage
from providers.config import ProviderSettings

RGB = tuple[int, int, int]
TimeOfDay = Literal["dawn", "day", "dusk", "night"]
FloatImage = NDArray[np.float32]

COLOURS: dict[str, RGB] = {
    "red": (200, 48, 44),
    "crimson": (170, 28, 52),
    "scarlet": (214, 40, 30),
    "rose": (224, 120, 140),
    "orange": (232, 126, 38),
    "amber": (236, 160, 40),
    "yellow": (242, 196, 40),
    "mustard": (212, 168, 40),
    "gold": (222, 176, 60),
    "golden": (222, 176, 60),
    "green": (62, 150, 74),
    "olive": (120, 128, 56),
    "emerald": (30, 150, 100),
    "teal": (30, 140, 140),
    "turquoise": (48, 190, 190),
    "blue": (48, 100, 200),
    "navy": (36, 50, 104),
    "indigo": (72, 60, 150),
    "purple": (130, 60, 160),
    "violet": (140, 80, 190),
    "lilac": (186, 150, 214),
    "lavender": (170, 150, 210),
    "pink": (236, 130, 170),
    "magenta": (210, 40, 150),
    "brown": (120, 78, 46),
    "chestnut": (140, 70, 40),
    "tan": (196, 156, 110),
    "khaki": (170, 150, 100),
    "beige": (220, 200, 170),
    "cream": (240, 230, 200),
    "white": (240, 240, 236),
    "grey": (140, 140, 146),
    "gray": (140, 140, 146),
    "silver": (190, 194, 200),
    "black": (36, 36, 42),
    "charcoal": (60, 62, 68),
    "ginger": (214, 110, 40),
    "copper": (184, 100, 60),
    "auburn": (140, 60, 40),
    "blonde": (230, 200, 120),
    "slate": (100, 116, 136),
    "rust": (170, 80, 40),
}
HAIR_WORDS = ("hair", "beard", "bun", "mane", "braid", "braids", "curls", "moustache")
BELLY_WORDS = ("belly", "chest", "tip", "tipped", "underside")
SKIN_TONES: list[RGB] = [
    (246, 214, 186),
    (234, 192, 156),
    (214, 164, 124),
    (176, 124, 88),
    (128, 86, 58),
]
NEUTRALS: list[RGB] = [(54, 62, 92), (92, 70, 52), (66, 70, 78), (86, 96, 60), (110, 60, 60)]
KIND_WORDS: dict[str, str] = {
    "whale": "whale",
    "dolphin": "whale",
    "fish": "fish",
    "shark": "fish",
    "cat": "cat",
    "kitten": "cat",
    "dog": "dog",
    "puppy": "dog",
    "wolf": "fox",
    "fox": "fox",
    "bird": "bird",
    "owl": "bird",
    "crow": "bird",
    "raven": "bird",
    "parrot": "bird",
    "penguin": "bird",
    "duck": "bird",
    "horse": "horse",
    "pony": "horse",
    "unicorn": "horse",
    "dragon": "dragon",
    "robot": "robot",
    "android": "robot",
    "bear": "bear",
    "rabbit": "cat",
    "mouse": "cat",
    "person": "person",
    "girl": "person",
    "boy": "person",
    "man": "person",
    "woman": "person",
    "keeper": "person",
    "child": "person",
    "kid": "person",
    "kids": "person",
    "king": "person",
    "queen": "person",
    "knight": "person",
    "grandma": "person",
    "grandpa": "person",
    "sailor": "person",
    "witch": "person",
    "wizard": "person",
    "hero": "person",
}
# Every other animal the script writer knows gets the nearest silhouette.
SILHOUETTES: dict[str, str] = {
    "cat": "bunny hare mice rat squirrel hedgehog badger otter frog toad monkey ant beetle "
    "spider snail",
    "bear": "lion tiger deer goat sheep cow pig camel giraffe elephant cub yeti",
    "bird": "sparrow robin goose swan chicken hen bat bee moth butterfly",
    "fish": "seal octopus turtle crab",
    "horse": "donkey",
    "dragon": "dinosaur lizard snake",
}
for _kind, _words in SILHOUETTES.items():
    KIND_WORDS.update(dict.fromkeys(_words.split(), _kind))

ANIMAL_DEFAULTS: dict[str, tuple[RGB, RGB]] = {
    "whale": ((92, 112, 140), (214, 222, 226)),
    "fish": ((236, 130, 40), (250, 210, 150)),
    "cat": ((214, 110, 40), (246, 238, 226)),
    "dog": ((140, 96, 60), (232, 214, 190)),
    "fox": ((226, 116, 40), (246, 240, 230)),
    "bear": ((112, 76, 48), (186, 150, 110)),
    "horse": ((140, 70, 40), (230, 210, 190)),
    "bird": ((60, 120, 200), (240, 220, 160)),
    "dragon": ((60, 140, 80), (220, 200, 120)),
    "robot": ((40, 150, 150), (220, 226, 230)),
}

SETTINGS: list[tuple[str, tuple[str, ...]]] = [
    ("space", ("space", "stars", "planet", "galaxy", "orbit", "asteroid", "moon base")),
    (
        "interior",
        (
            "house",
            "room",
            "kitchen",
            "attic",
            "library",
            "interior",
            "bedroom",
            "home",
            "cottage",
            "bakery",
            "shop",
            "inside",
            "school",
            "museum",
        ),
    ),
    ("lighthouse", ("lighthouse",)),
    ("castle", ("castle", "palace", "tower", "kingdom")),
    ("city", ("city", "street", "town", "rooftop", "market", "village", "station", "cafe")),
    ("snow", ("snow", "ice", "arctic", "frozen", "winter", "tundra", "glacier")),
    ("desert", ("desert", "dune", "sand dune", "oasis", "canyon")),
    ("beach", ("beach", "shore", "coast", "island", "harbour", "harbor", "bay")),
    ("sea", ("sea", "ocean", "waves", "ship", "boat", "whale", "sail")),
    ("river", ("river", "lake", "pond", "stream", "bridge", "swamp")),
    ("forest", ("forest", "woods", "jungle", "tree", "grove", "wood")),
    ("mountains", ("mountain", "peak", "cliff", "valley", "hills")),
    ("meadow", ("field", "meadow", "farm", "garden", "park", "grass", "flowers")),
]

SKY: dict[str, tuple[RGB, RGB, RGB]] = {  # top, middle, horizon
    "dawn": ((64, 72, 138), (196, 150, 178), (252, 196, 160)),
    "day": ((78, 142, 214), (142, 192, 232), (214, 234, 244)),
    "dusk": ((52, 42, 104), (184, 92, 110), (252, 160, 84)),
    "night": ((8, 12, 34), (20, 30, 66), (44, 60, 100)),
}
LIGHT: dict[str, tuple[float, float, float]] = {  # multiplies the landscape
    "dawn": (0.98, 0.86, 0.86),
    "day": (1.0, 1.0, 1.0),
    "dusk": (0.95, 0.72, 0.62),
    "night": (0.34, 0.40, 0.62),
}
INK: RGB = (40, 34, 42)


# --------------------------------------------------------------------------- colour helpers


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        int(a[0] + (b[0] - a[0]) * t),
        int(a[1] + (b[1] - a[1]) * t),
        int(a[2] + (b[2] - a[2]) * t),
    )


def _shade(c: RGB, f: float) -> RGB:
    return (min(255, int(c[0] * f)), min(255, int(c[1] * f)), min(255, int(c[2] * f)))


def _lit(c: RGB, tod: str) -> RGB:
    m = LIGHT[tod]
    return (int(c[0] * m[0]), int(c[1] * m[1]), int(c[2] * m[2]))


def _colour_word(word: str) -> RGB | None:
    parts = [p for p in word.split("-") if p in COLOURS]
    if not parts:
        return None
    if len(parts) == 1:
        return COLOURS[parts[0]]
    return _mix(COLOURS[parts[0]], COLOURS[parts[-1]], 0.6)


def figure_kind(name: str, description: str) -> str:
    """person, whale, fish, cat, dog, fox, bear, horse, bird, dragon or robot: the earliest
    kind word of the description (then the name) wins, so "a girl in a fox hat" is a person."""
    for text in (description, name):
        words = re.findall(r"[a-z]+", text.lower())
        for w in words:
            if w in KIND_WORDS:
                return KIND_WORDS[w]
            if w.endswith("s") and w[:-1] in KIND_WORDS:
                return KIND_WORDS[w[:-1]]
    return "person"


def character_palette(name: str, description: str) -> list[RGB]:
    """[main, secondary, accent (hair, mane, fins), skin or belly]: colour words of the
    description where present, else stable choices hashed from the name and description."""
    rng = random.Random(_digest(f"{name}|{description}"))
    kind = figure_kind(name, description)
    words = re.findall(r"[a-z]+(?:-[a-z]+)*", description.lower())
    clothes: list[RGB] = []
    hair: RGB | None = None
    belly: RGB | None = None
    for i, w in enumerate(words):
        c = _colour_word(w)
        if c is None:
            continue
        after = words[i + 1 : i + 3]
        if any(a in HAIR_WORDS for a in after[:1]):
            hair = hair or c
        elif any(a in BELLY_WORDS for a in after[:1]) or (
            clothes and any(a in BELLY_WORDS for a in after)
        ):
            belly = belly or c
        else:
            clothes.append(c)
    if kind == "person":
        main = clothes[0] if clothes else _hashed_colour(rng)
        second = clothes[1] if len(clothes) > 1 else rng.choice(NEUTRALS)
        accent = hair or rng.choice([(52, 36, 28), (110, 70, 40), (200, 160, 90), (150, 60, 36)])
        skin = rng.choice(SKIN_TONES)
        return [main, second, accent, skin]
    base, light = ANIMAL_DEFAULTS.get(kind, ((140, 140, 140), (220, 220, 220)))
    main = clothes[0] if clothes else base
    second = clothes[1] if len(clothes) > 1 else _shade(main, 0.72)
    accent = hair or (_shade(main, 0.55) if kind != "robot" else (250, 200, 60))
    return [main, second, accent, belly or light]


def _hashed_colour(rng: random.Random) -> RGB:
    h = rng.random()
    r, g, b = colorsys.hsv_to_rgb(h, 0.62 + rng.random() * 0.2, 0.72 + rng.random() * 0.2)
    return (int(r * 255), int(g * 255), int(b * 255))


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    name: str
    kind: str
    palette: list[RGB]
    hat: bool
    beard: bool
    long_hair: bool
    scarf: bool
    ears: float

    @classmethod
    def of(cls, ref: CharacterRef) -> Figure:
        desc = ref.description.lower()
        rng = random.Random(_digest(f"{ref.name}|{ref.description}|shape"))
        return cls(
            name=ref.name,
            kind=figure_kind(ref.name, ref.description),
            palette=character_palette(ref.name, ref.description),
            hat=any(w in desc for w in ("hat", "cap", "hood", "crown", "helmet")),
            beard="beard" in desc,
            long_hair=("long hair" in desc or "braid" in desc or "bun" in desc)
            or (rng.random() < 0.4 and "beard" not in desc),
            scarf="scarf" in desc or rng.random() < 0.25,
            ears=0.8 + rng.random() * 0.5,
        )


def _ellipse(
    d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, fill: RGB, ow: int
) -> None:
    d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=INK, width=ow)


def _poly(d: ImageDraw.ImageDraw, pts: list[tuple[float, float]], fill: RGB, ow: int) -> None:
    d.polygon(pts, fill=fill, outline=INK, width=ow)


def draw_figure(
    d: ImageDraw.ImageDraw,
    fig: Figure,
    x: float,
    feet: float,
    h: float,
    facing: int,
    side: bool = False,
    ground: RGB | None = None,
) -> None:
    """Draws ``fig`` standing at (x, feet), ``h`` tall, looking left (-1) or right (+1)."""
    ow = max(1, round(h / 90))
    if ground is not None:
        span = h * (0.22 if fig.kind not in ("whale", "horse", "dragon") else 0.6)
        d.ellipse((x - span, feet - h * 0.03, x + span, feet + h * 0.03), fill=_shade(ground, 0.7))
    kind = fig.kind
    if kind == "person":
        _person(d, fig, x, feet, h, facing, ow, side)
    elif kind == "robot":
        _robot(d, fig, x, feet, h, facing, ow)
    elif kind in ("whale", "fish"):
        _whale(d, fig, x, feet, h, facing, ow, fish=kind == "fish")
    elif kind == "bird":
        _bird(d, fig, x, feet, h, facing, ow)
    else:
        _quadruped(d, fig, x, feet, h, facing, ow)


def stamp_figure(
    img: Image.Image,
    fig: Figure,
    x: float,
    feet: float,
    h: float,
    facing: int,
    side: bool = False,
    ground: RGB | None = None,
) -> None:
    """Draws a figure onto ``img`` with 2x supersampling inside its own box (smooth edges)."""
    reach = h * (1.35 if fig.kind in ("whale", "fish", "horse", "dragon") else 0.75)
    x0, x1 = max(0, int(x - reach)), min(img.width, int(x + reach) + 1)
    y0, y1 = max(0, int(feet - h * 1.12)), min(img.height, int(feet + h * 0.06) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    k = 2 if (x1 - x0) * (y1 - y0) <= 700_000 else 1
    layer = Image.new("RGBA", ((x1 - x0) * k, (y1 - y0) * k), (0, 0, 0, 0))
    draw_figure(
        ImageDraw.Draw(layer), fig, (x - x0) * k, (feet - y0) * k, h * k, facing, side, ground
    )
    if k > 1:
        layer = layer.resize((x1 - x0, y1 - y0), Image.Resampling.BOX)
    img.paste(layer, (x0, y0), layer)


def _person(
    d: ImageDraw.ImageDraw, f: Figure, x: float, feet: float, h: float, s: int, ow: int, side: bool
) -> None:
    main, second, hair, skin = f.palette
    r = h * 0.105
    head_y = feet - h + r * 1.1
    neck = head_y + r
    hem = feet - h * 0.27
    sw = h * (0.13 if side else 0.17)
    hw = h * (0.17 if side else 0.21)
    leg_w = h * 0.055
    for lx in (-0.07, 0.07) if not side else (-0.02, 0.03):
        d.rectangle(
            (x + lx * h - leg_w / 2, hem - h * 0.02, x + lx * h + leg_w / 2, feet - h * 0.03),
            fill=second,
            outline=INK,
            width=ow,
        )
        d.ellipse(
            (
                x + lx * h - leg_w * 0.7 + s * leg_w * 0.4,
                feet - h * 0.05,
                x + lx * h + leg_w * 0.7 + s * leg_w * 0.4,
                feet,
            ),
            fill=INK,
        )
    arm_y = neck + h * 0.07
    back_arm = [(x - s * sw * 0.7, arm_y), (x - s * sw * 1.05, hem - h * 0.12)]
    d.line(back_arm, fill=INK, width=int(h * 0.075) + 2 * ow)
    d.line(back_arm, fill=_shade(main, 0.78), width=int(h * 0.075))
    coat = [
        (x - sw, neck + h * 0.03),
        (x + sw, neck + h * 0.03),
        (x + hw, hem),
        (x - hw, hem),
    ]
    _poly(d, coat, main, ow)
    _ellipse(d, x - sw * 0.55, neck + h * 0.06, sw * 0.5, h * 0.045, main, 0)
    _ellipse(d, x + sw * 0.55, neck + h * 0.06, sw * 0.5, h * 0.045, main, 0)
    d.polygon(
        [
            (x + s * sw * 0.15, neck + h * 0.05),
            (x + s * hw * 0.4, hem),
            (x + s * hw * 0.98, hem),
            (x + s * sw * 0.95, neck + h * 0.06),
        ],
        fill=_shade(main, 0.84),
    )
    d.line([(x, neck + h * 0.08), (x, hem - 2)], fill=_shade(main, 0.6), width=max(1, ow))
    for by in (0.14, 0.22, 0.30):
        d.ellipse(
            (
                x - h * 0.012 + h * 0.02,
                neck + h * by - h * 0.012,
                x + h * 0.012 + h * 0.02,
                neck + h * by + h * 0.012,
            ),
            fill=second,
        )
    front_arm = [(x + s * sw * 0.75, arm_y), (x + s * sw * 1.15, hem - h * 0.1)]
    d.line(front_arm, fill=INK, width=int(h * 0.08) + 2 * ow)
    d.line(front_arm, fill=main, width=int(h * 0.08))
    hx, hy = front_arm[1]
    _ellipse(d, hx, hy + h * 0.01, h * 0.035, h * 0.035, skin, ow)
    if f.scarf:
        d.rounded_rectangle(
            (x - sw * 0.9, neck - h * 0.005, x + sw * 0.9, neck + h * 0.05),
            radius=h * 0.02,
            fill=second,
            outline=INK,
            width=ow,
        )
    if f.long_hair:
        _ellipse(d, x - s * r * 0.15, head_y + r * 0.35, r * 1.12, r * 1.25, hair, ow)
    _ellipse(d, x, head_y, r, r * 1.05, skin, ow)
    if f.beard:
        box = (x - r * 0.97, head_y - r * 0.1, x + r * 0.97, head_y + r * 1.3)
        d.chord(box, 0, 180, fill=hair)
        d.arc(box, 0, 180, fill=INK, width=ow)
        d.ellipse(
            (
                x + s * r * 0.25 - r * 0.18,
                head_y + r * 0.35,
                x + s * r * 0.25 + r * 0.18,
                head_y + r * 0.5,
            ),
            fill=_shade(skin, 0.7),
        )
    d.chord((x - r, head_y - r * 1.05, x + r, head_y + r * 0.3), 180, 360, fill=hair)
    d.arc((x - r, head_y - r * 1.05, x + r, head_y + r * 1.05), 180, 360, fill=INK, width=ow)
    if f.hat:
        d.chord(
            (x - r * 1.05, head_y - r * 1.35, x + r * 1.05, head_y + r * 0.2),
            180,
            360,
            fill=second,
            outline=INK,
            width=ow,
        )
        d.rounded_rectangle(
            (x - r * 1.35, head_y - r * 0.62, x + r * 1.35, head_y - r * 0.4),
            radius=r * 0.1,
            fill=second,
            outline=INK,
            width=ow,
        )
    ex = x + s * r * (0.45 if side else 0.3)
    for dx in (0.0,) if side else (-0.42, 0.42):
        d.ellipse(
            (ex + dx * r - r * 0.1, head_y - r * 0.05, ex + dx * r + r * 0.1, head_y + r * 0.18),
            fill=INK,
        )
    d.ellipse(
        (ex + r * 0.05 - r * 0.22, head_y + r * 0.3, ex + r * 0.05 + r * 0.05, head_y + r * 0.5),
        fill=(232, 130, 120),
    )


def _robot(
    d: ImageDraw.ImageDraw, f: Figure, x: float, feet: float, h: float, s: int, ow: int
) -> None:
    main, second, accent, light = f.palette
    w = h * 0.2
    for lx in (-0.6, 0.6):
        d.rectangle(
            (x + lx * w - h * 0.03, feet - h * 0.3, x + lx * w + h * 0.03, feet),
            fill=second,
            outline=INK,
            width=ow,
        )
    d.rounded_rectangle(
        (x - w, feet - h * 0.68, x + w, feet - h * 0.28),
        radius=h * 0.04,
        fill=main,
        outline=INK,
        width=ow,
    )
    d.rounded_rectangle(
        (x - w * 0.55, feet - h * 0.6, x + w * 0.55, feet - h * 0.42),
        radius=h * 0.02,
        fill=light,
        outline=INK,
        width=ow,
    )
    for ax in (-1, 1):
        d.line(
            [(x + ax * w, feet - h * 0.62), (x + ax * w * 1.5, feet - h * 0.4)],
            fill=INK,
            width=int(h * 0.06) + 2 * ow,
        )
        d.line(
            [(x + ax * w, feet - h * 0.62), (x + ax * w * 1.5, feet - h * 0.4)],
            fill=second,
            width=int(h * 0.06),
        )
    d.rounded_rectangle(
        (x - w * 0.8, feet - h * 0.95, x + w * 0.8, feet - h * 0.7),
        radius=h * 0.05,
        fill=main,
        outline=INK,
        width=ow,
    )
    _ellipse(d, x + s * w * 0.25, feet - h * 0.83, h * 0.06, h * 0.06, accent, ow)
    d.line([(x, feet - h * 0.95), (x, feet - h * 1.02)], fill=INK, width=ow * 2)
    _ellipse(d, x, feet - h * 1.03, h * 0.025, h * 0.025, accent, ow)


def _whale(
    d: ImageDraw.ImageDraw, f: Figure, x: float, feet: float, h: float, s: int, ow: int, fish: bool
) -> None:
    main, second, accent, belly = f.palette
    L = h * (1.9 if not fish else 1.2)
    cy = feet - h * 0.42
    tail_x = x - s * L * 0.55
    _poly(
        d,
        [
            (tail_x + s * L * 0.1, cy),
            (tail_x - s * L * 0.16, cy - h * 0.36),
            (tail_x - s * L * 0.05, cy),
            (tail_x - s * L * 0.16, cy + h * 0.2),
        ],
        second,
        ow,
    )
    _ellipse(d, x, cy, L * 0.5, h * 0.4, main, ow)
    d.chord((x - L * 0.46, cy - h * 0.1, x + L * 0.46, cy + h * 0.38), 0, 180, fill=belly)
    for k in range(4):
        gx = x + s * L * (0.05 + k * 0.07)
        d.line(
            [(gx, cy + h * 0.2), (gx + s * h * 0.02, cy + h * 0.33)],
            fill=_shade(belly, 0.8),
            width=ow,
        )
    _poly(
        d,
        [
            (x - s * L * 0.02, cy + h * 0.12),
            (x - s * L * 0.2, cy + h * 0.36),
            (x + s * L * 0.08, cy + h * 0.2),
        ],
        accent,
        ow,
    )
    ex = x + s * L * 0.3
    _ellipse(d, ex, cy - h * 0.02, h * 0.05, h * 0.05, (250, 250, 246), ow)
    d.ellipse(
        (
            ex + s * h * 0.01 - h * 0.025,
            cy - h * 0.04,
            ex + s * h * 0.01 + h * 0.025,
            cy + h * 0.01,
        ),
        fill=INK,
    )
    if not fish:
        d.line(
            [(x + s * L * 0.18, cy - h * 0.4), (x + s * L * 0.16, cy - h * 0.62)],
            fill=(220, 236, 246),
            width=max(2, int(h * 0.03)),
        )
        for k in (-1, 1):
            d.line(
                [(x + s * L * 0.16, cy - h * 0.6), (x + s * L * 0.16 + k * h * 0.12, cy - h * 0.7)],
                fill=(220, 236, 246),
                width=max(2, int(h * 0.025)),
            )


def _bird(
    d: ImageDraw.ImageDraw, f: Figure, x: float, feet: float, h: float, s: int, ow: int
) -> None:
    main, second, _accent, belly = f.palette
    for lx in (-0.08, 0.08):
        d.line(
            [(x + lx * h, feet - h * 0.2), (x + lx * h, feet)],
            fill=(220, 150, 50),
            width=max(1, int(h * 0.03)),
        )
    _ellipse(d, x, feet - h * 0.48, h * 0.3, h * 0.34, main, ow)
    _ellipse(d, x + s * h * 0.05, feet - h * 0.42, h * 0.19, h * 0.24, belly, 0)
    _ellipse(d, x - s * h * 0.14, feet - h * 0.48, h * 0.14, h * 0.24, second, ow)
    _ellipse(d, x + s * h * 0.05, feet - h * 0.86, h * 0.2, h * 0.19, main, ow)
    for k in (-1, 1):
        ex = x + s * h * 0.1 + k * h * 0.07
        _ellipse(d, ex, feet - h * 0.88, h * 0.05, h * 0.05, (250, 246, 230), ow)
        d.ellipse((ex - h * 0.02, feet - h * 0.9, ex + h * 0.02, feet - h * 0.86), fill=INK)
    bx = x + s * h * 0.2
    _poly(
        d,
        [(bx, feet - h * 0.82), (bx + s * h * 0.14, feet - h * 0.78), (bx, feet - h * 0.74)],
        (240, 170, 50),
        ow,
    )


def _quadruped(
    d: ImageDraw.ImageDraw, f: Figure, x: float, feet: float, h: float, s: int, ow: int
) -> None:
    main, second, accent, belly = f.palette
    kind = f.kind
    L = h * (1.2 if kind in ("horse", "dragon") else 1.0)
    body_y = feet - h * (0.5 if kind == "horse" else 0.38)
    leg_top = body_y
    legs = (-0.32, -0.2, 0.2, 0.32)
    for i, lx in enumerate(legs):
        col = _shade(main, 0.8) if i in (1, 2) else main
        d.rounded_rectangle(
            (x + lx * L - h * 0.045, leg_top, x + lx * L + h * 0.045, feet),
            radius=h * 0.03,
            fill=col,
            outline=INK,
            width=ow,
        )
    tail_base = (x - s * L * 0.4, body_y - h * 0.05)
    if kind in ("fox", "cat", "dragon"):
        tip = (x - s * L * 0.75, body_y - h * (0.45 if kind == "cat" else 0.2))
        if kind == "fox":
            _ellipse(
                d,
                (tail_base[0] + tip[0]) / 2,
                (tail_base[1] + tip[1]) / 2,
                L * 0.22,
                h * 0.1,
                main,
                ow,
            )
            _ellipse(d, tip[0] + s * L * 0.04, tip[1], L * 0.07, h * 0.07, belly, ow)
        else:
            d.line([tail_base, tip], fill=INK, width=int(h * 0.07) + 2 * ow)
            d.line([tail_base, tip], fill=main, width=int(h * 0.07))
    elif kind == "horse":
        d.line([tail_base, (x - s * L * 0.55, body_y + h * 0.25)], fill=accent, width=int(h * 0.08))
    else:
        d.line([tail_base, (x - s * L * 0.5, body_y - h * 0.2)], fill=main, width=int(h * 0.06))
    if kind == "dragon":
        wing = [
            (x - s * L * 0.1, body_y - h * 0.12),
            (x - s * L * 0.45, body_y - h * 0.85),
            (x - s * L * 0.2, body_y - h * 0.6),
            (x + s * L * 0.05, body_y - h * 0.75),
            (x + s * L * 0.12, body_y - h * 0.12),
        ]
        _poly(d, wing, second, ow)
    _ellipse(d, x, body_y, L * 0.42, h * 0.22, main, ow)
    d.chord((x - L * 0.34, body_y - h * 0.02, x + L * 0.34, body_y + h * 0.22), 0, 180, fill=belly)
    if kind == "dragon":
        for k in range(5):
            sx = x - s * L * 0.25 + s * k * L * 0.12
            _poly(
                d,
                [
                    (sx - h * 0.04, body_y - h * 0.19),
                    (sx, body_y - h * 0.32),
                    (sx + h * 0.04, body_y - h * 0.19),
                ],
                accent,
                ow,
            )
    hx = x + s * L * (0.45 if kind != "horse" else 0.5)
    hy = body_y - h * (0.3 if kind != "horse" else 0.42)
    if kind in ("horse", "dragon"):
        d.line(
            [(x + s * L * 0.25, body_y - h * 0.05), (hx, hy)],
            fill=INK,
            width=int(h * 0.17) + 2 * ow,
        )
        d.line([(x + s * L * 0.25, body_y - h * 0.05), (hx, hy)], fill=main, width=int(h * 0.17))
        if kind == "horse":
            d.line(
                [(x + s * L * 0.22, body_y - h * 0.12), (hx - s * h * 0.04, hy - h * 0.1)],
                fill=accent,
                width=int(h * 0.06),
            )
    hr = h * (0.2 if kind != "bear" else 0.22) * (0.9 if kind == "horse" else 1.0)
    ear_h = hr * f.ears
    if kind in ("cat", "fox", "dragon", "horse"):
        for ex in (-0.55, 0.45):
            bx = hx + ex * hr
            _poly(
                d,
                [
                    (bx - hr * 0.3, hy - hr * 0.6),
                    (bx + hr * 0.05, hy - hr * 0.6 - ear_h),
                    (bx + hr * 0.4, hy - hr * 0.6),
                ],
                main if kind != "dragon" else accent,
                ow,
            )
    elif kind == "bear":
        for ex in (-0.7, 0.7):
            _ellipse(d, hx + ex * hr, hy - hr * 0.75, hr * 0.3, hr * 0.3, main, ow)
    if kind == "dog":
        _ellipse(d, hx - s * hr * 0.75, hy + hr * 0.1, hr * 0.28, hr * 0.6, second, ow)
    _ellipse(d, hx, hy, hr, hr * 0.92, main, ow)
    snout = hx + s * hr * 0.75
    snout_col = belly if kind in ("fox", "cat", "dog", "bear") else _shade(main, 1.12)
    _ellipse(
        d, snout, hy + hr * 0.25, hr * (0.45 if kind != "horse" else 0.55), hr * 0.35, snout_col, ow
    )
    d.ellipse(
        (
            snout + s * hr * 0.3 - hr * 0.1,
            hy + hr * 0.08,
            snout + s * hr * 0.3 + hr * 0.1,
            hy + hr * 0.26,
        ),
        fill=INK,
    )
    ex = hx + s * hr * 0.25
    d.ellipse((ex - hr * 0.12, hy - hr * 0.32, ex + hr * 0.12, hy - hr * 0.06), fill=INK)
    d.ellipse(
        (
            ex - hr * 0.04 + s * hr * 0.03,
            hy - hr * 0.28,
            ex + hr * 0.03 + s * hr * 0.03,
            hy - hr * 0.2,
        ),
        fill=(250, 250, 250),
    )
    if kind == "dog":
        _ellipse(d, hx + s * hr * 0.1, hy + hr * 0.95, hr * 0.55, hr * 0.12, (200, 40, 40), 0)


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
    if setting == "snow" or (setting == "mountains" and rng.random() < 0.3):
        weather = "snow"
    elif setting in ("interior", "space"):
        weather = "none"
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
