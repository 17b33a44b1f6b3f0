"""Turning story parts into provider requests: prompts, seeds, motion and timing.

Pure functions over the domain models; no I/O.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata

from pipeline.errors import BadIdea
from pipeline.models import Character, Motion, Scene, Story
from providers.base import SceneSpec

STYLES: dict[str, str] = {
    "storybook": "warm storybook illustration, soft painterly light, gentle textures",
    "anime": "clean anime key art, crisp line work, vivid cel shading",
    "watercolor": "loose watercolor painting, soft washes, paper grain",
    "comic": "bold comic book panel, inked outlines, flat colours, halftone",
    "cinematic": "cinematic film still, dramatic lighting, shallow depth of field",
    "pixel": "detailed pixel art, limited palette, crisp pixels",
}

NEGATIVE = (
    "text, watermark, signature, extra limbs, deformed hands, blurry, lowres, "
    "inconsistent character, duplicate character"
)

WORDS_PER_SECOND = 2.6


def seed_for(*parts: object) -> int:
    """A stable 32-bit seed from any parts (story id, scene, generation...)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def input_key(step: str, *parts: object) -> str:
    """The cache key of a step's outputs: a hash of everything that determines them."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"{step}:{digest[:40]}"


def clean_idea(raw: str, max_chars: int) -> str:
    """The idea as it will be used, or :class:`BadIdea` with the reason a person should read."""
    text = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in "\u200d" else ch
        for ch in raw
    )
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise BadIdea("the idea is empty: write a sentence about the story you want")
    if len(text) > max_chars:
        raise BadIdea(f"the idea is {len(text)} characters; keep it under {max_chars}")
    if not any(unicodedata.category(ch)[0] in "LNS" for ch in text):
        raise BadIdea("the idea has no words in it: write a sentence about the story you want")
    return text


def slug(text: str, fallback: str = "story") -> str:
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    s = re.sub(r"[^a-zA-Z0-9]+", "-", s).strip("-").lower()
    return s[:40] or fallback


def style_text(style: str) -> str:
    return STYLES.get(style, style)


def character_sheet_prompt(character: Character, style: str) -> str:
    return (
        f"character reference sheet of {character.name}: {character.description}. "
        f"Full body, front view and three-quarter view, neutral background. {style_text(style)}"
    )


def frame_prompt(story: Story, scene: Scene) -> str:
    cast = [c for c in (story.character(cid) for cid in scene.characters) if c is not None]
    who = "; ".join(f"{c.name}: {c.description}" for c in cast)
    parts = [
        f"{scene.framing} shot. {scene.shot}",
        f"Setting: {scene.setting}, {scene.time_of_day}." if scene.setting else "",
        f"Characters (keep exactly this look): {who}." if who else "",
        style_text(story.options.style),
    ]
    return " ".join(p for p in parts if p)


def motion_for(spec: SceneSpec, index: int) -> Motion:
    """Camera motion from the shot: close shots push in, wide ones pan, the ending pulls out."""
    shot = spec.shot.lower()
    if any(w in shot for w in ("rise", "rises", "sky", "up at", "climb", "tower", "mountain")):
        return "rise"
    if spec.framing == "close":
        return "push_in"
    if spec.framing == "wide":
        return "pan_left" if index % 2 == 0 else "pan_right"
    return "pull_out" if index % 3 == 2 else "push_in"


MOTIONS: tuple[Motion, ...] = ("push_in", "pan_left", "pull_out", "pan_right", "rise")


def motion_for_take(base: Motion, take: int) -> Motion:
    """The camera move of a clip's ``take``: a redone clip moves differently from the last."""
    if take == 0:
        return base
    start = MOTIONS.index(base) if base in MOTIONS else 0
    return MOTIONS[(start + take) % len(MOTIONS)]


def music_length(total_s: float, bucket_s: float = 15.0) -> float:
    """Music is asked for in whole buckets (the assembler trims it), so a small change in the
    narration's length reuses the bed instead of paying for a new one."""
    return float(max(bucket_s, math.ceil(total_s / bucket_s) * bucket_s))


def estimate_duration(narration: str) -> float:
    words = max(1, len(narration.split()))
    return round(min(20.0, max(3.0, words / WORDS_PER_SECOND + 1.0)), 2)
