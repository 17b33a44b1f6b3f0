"""Colours for the offline painter: colour words, skin tones, skies and light by time of day,
and the kind and palette of a character, derived only from its name and description (so the
same character looks the same in every frame)."""

from __future__ import annotations

import colorsys
import random
import re
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from providers.offline import stable_hash

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
    "bear": "lion tiger deer goat sheep cow pig camel giraffe elephant cub yeti panda",
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
            "classroom",
            "tavern",
            "inn",
            "subway",
            "metro",
            "bedroom",
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
    rng = random.Random(stable_hash(f"{name}|{description}"))
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
