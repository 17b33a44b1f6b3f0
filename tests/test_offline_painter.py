"""The procedural painter: real PNGs whose pixels show the cast, the hour and the seed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from providers.base import CharacterRef, ImageRequest
from providers.offline.painter import ProceduralPainter
from providers.offline.palette import character_palette

MILA = CharacterRef(
    name="Mila", description="brave little girl in a red raincoat, brown hair, round glasses"
)
WHALE = CharacterRef(name="Whale", description="slate-blue whale with a pale belly")


def _frame(**kw: object) -> ImageRequest:
    base: dict[str, object] = {"prompt": "a story", "width": 360, "height": 640, "seed": 5}
    base.update(kw)
    return ImageRequest.model_validate(base)


async def _pixels(request: ImageRequest) -> list[np.ndarray]:
    result = await ProceduralPainter().generate(request)
    out = []
    for media in result.images:
        assert media.mime == "image/png"
        img = Image.open(io.BytesIO(media.data))
        assert img.format == "PNG"
        assert img.size == (request.width, request.height)
        out.append(np.asarray(img.convert("RGB"), dtype=np.int32))
    return out


def _near(arr: np.ndarray, colour: tuple[int, int, int], tol: float = 40.0) -> int:
    dist = np.sqrt(((arr - np.array(colour)) ** 2).sum(axis=2))
    return int((dist < tol).sum())


@pytest.mark.parametrize(("width", "height"), [(720, 1280), (1280, 720), (720, 720), (96, 64)])
async def test_frames_have_the_requested_size(width: int, height: int) -> None:
    request = _frame(width=width, height=height, count=2, characters=[MILA])
    result = await ProceduralPainter().generate(request)
    assert result.seeds == [5, 6]
    assert result.usage.units == 2 and result.usage.usd == 0
    for media in result.images:
        assert Image.open(io.BytesIO(media.data)).size == (width, height)


def test_palette_follows_the_description_and_is_stable() -> None:
    palette = character_palette(MILA.name, MILA.description)
    assert palette == character_palette(MILA.name, MILA.description)
    red = palette[0]
    assert red[0] > 150 and red[1] < 90 and red[2] < 90
    assert character_palette("Fox", "orange fox")[0] != character_palette("Owl", "blue owl")[0]


async def test_the_same_character_keeps_its_colours_in_every_frame() -> None:
    main = character_palette(MILA.name, MILA.description)[0]
    shots = [
        {"setting": "the forest", "time_of_day": "day", "framing": "wide"},
        {"setting": "the city", "time_of_day": "dusk", "framing": "medium"},
        {"setting": "the meadow", "time_of_day": "night", "framing": "close"},
        {"setting": "the sea", "time_of_day": "dawn", "framing": "wide"},
    ]
    for i, shot in enumerate(shots):
        with_her = (await _pixels(_frame(seed=20 + i, characters=[MILA, WHALE], **shot)))[0]
        without = (await _pixels(_frame(seed=20 + i, characters=[WHALE], **shot)))[0]
        assert _near(with_her, main) > 800, shot
        assert _near(without, main) < 60, shot


async def test_candidates_of_one_request_differ_visibly() -> None:
    frames = await _pixels(_frame(count=3, setting="the forest", characters=[MILA]))
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        assert np.abs(frames[a] - frames[b]).mean() > 8


async def test_same_request_gives_the_same_image() -> None:
    first = await ProceduralPainter().generate(_frame(characters=[MILA]))
    again = await ProceduralPainter().generate(_frame(characters=[MILA]))
    assert first.images[0].data == again.images[0].data


@pytest.mark.parametrize("setting", ["the sea", "the city", "the forest", "the house"])
async def test_night_is_darker_than_day(setting: str) -> None:
    day = (await _pixels(_frame(setting=setting, time_of_day="day", framing="wide")))[0]
    night = (await _pixels(_frame(setting=setting, time_of_day="night", framing="wide")))[0]
    top = slice(0, 640 // 3)
    assert night[top].mean() < day[top].mean() - 40
    assert night.mean() < day.mean()


async def test_character_sheet_shows_each_character_and_swatches() -> None:
    request = _frame(kind="character_sheet", characters=[MILA, WHALE], width=720, height=1280)
    sheet = (await _pixels(request))[0]
    assert _near(sheet, character_palette(MILA.name, MILA.description)[0]) > 2000
    whale_main = character_palette(WHALE.name, WHALE.description)[0]
    assert _near(sheet, whale_main, 30) > 2000
    # Plain paper background: the corners are light and nearly neutral.
    corner = sheet[:40, -40:].reshape(-1, 3).mean(axis=0)
    assert corner.min() > 190


def test_the_earliest_kind_word_wins() -> None:
    from providers.offline.palette import figure_kind

    assert figure_kind("Mia", "a girl in a fox hat") == "person"
    assert figure_kind("Rex", "a lion with a golden mane") != "person"


@pytest.mark.parametrize(
    ("name", "description"),
    [("Knight", "knight in dented silver armour and a red cloak"),
     ("Witch", "young witch in a purple cloak, black hair")],
)
def test_knights_wear_helmets_and_witches_pointed_hats(name: str, description: str) -> None:
    from providers.offline.figures import Figure, stamp_figure

    def drawn(desc: str, who: str) -> np.ndarray:
        img = Image.new("RGB", (200, 300), (200, 220, 200))
        stamp_figure(img, Figure.of(CharacterRef(name=who, description=desc)), 100, 280, 240, 1)
        return (np.asarray(img).astype(int) != (200, 220, 200)).any(axis=2)

    plain = drawn("girl in a purple cloak, black hair", "Girl")
    hatted = drawn(description, name)
    top = int(np.nonzero(plain.any(axis=1))[0].min())
    assert hatted[: top - 8].sum() > 150  # headgear rises above a bare head
