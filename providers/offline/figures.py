"""Stylised figures for the offline painter: people, robots, whales and fish, birds, dragons
and four-legged animals, drawn in a character's fixed palette."""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from providers.base import CharacterRef
from providers.offline import stable_hash
from providers.offline.palette import (
    INK,
    RGB,
    _shade,
    character_palette,
    figure_kind,
)

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
    headgear: str = ""  # "helmet" (knights), "pointed" (witches, wizards), or ""

    @classmethod
    def of(cls, ref: CharacterRef) -> Figure:
        desc = ref.description.lower()
        rng = random.Random(stable_hash(f"{ref.name}|{ref.description}|shape"))
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
            headgear=_headgear(f"{ref.name} {desc}".lower()),
        )


def _headgear(text: str) -> str:
    words = set(text.replace(",", " ").split())
    if words & {"knight", "knights", "armour", "armor", "helmet", "soldier"}:
        return "helmet"
    if words & {"witch", "witches", "wizard", "wizards", "mage", "sorcerer"}:
        return "pointed"
    return ""


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
    if f.hat and not f.headgear:
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
    if f.headgear == "helmet":
        steel, plume = (176, 184, 196), main
        d.ellipse((x - r * 0.3, head_y - r * 1.9, x + r * 0.3, head_y - r * 0.9), fill=plume,
                  outline=INK, width=ow)
        d.chord((x - r * 1.12, head_y - r * 1.25, x + r * 1.12, head_y + r * 0.95), 180, 360,
                fill=steel, outline=INK, width=ow)
        d.rectangle((x - r * 1.12, head_y - r * 0.2, x + r * 1.12, head_y + r * 0.05), fill=steel,
                    outline=INK, width=ow)
        d.line([(x + s * r * 0.2, head_y - r * 0.2), (x + s * r * 0.2, head_y + r * 0.45)],
               fill=_shade(steel, 0.6), width=max(2, ow * 2))
    elif f.headgear == "pointed":
        hat = _shade(main, 0.55)
        _poly(d, [(x - r * 1.1, head_y - r * 0.55), (x + r * 1.1, head_y - r * 0.55),
                  (x - s * r * 0.5, head_y - r * 2.2)], hat, ow)
        d.rounded_rectangle((x - r * 1.55, head_y - r * 0.7, x + r * 1.55, head_y - r * 0.45),
                            radius=r * 0.1, fill=hat, outline=INK, width=ow)
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
