"""The story-spine writer: valid, deterministic scripts built from the idea's own words."""

from __future__ import annotations

import re
import unicodedata

import pytest

from providers.base import Script, ScriptRequest
from providers.offline.script import StorySpineWriter

IDEAS = [
    "a lighthouse keeper befriends a stranded whale",
    "A robot who wants to learn to paint in a city of rain",
    "Grandma teaches her cat to cook",
    "Two kids find a secret door in the old forest, and a talking fox guides them home.",
    "a curious fox and a lonely owl explore the snowy mountains at night",
    "Mila, a brave little girl, sails across the ocean in a red boat to find her lost "
    "grandfather. She meets a giant octopus who knows the way. Together they face a terrible "
    "storm, and when the sea is calm again they sing all the way home under the stars.",
    "an old teapot dreams of seeing the world",
    "dragon",
]


async def _write(idea: str, scenes: int = 6) -> Script:
    script, usage = await StorySpineWriter().write(ScriptRequest(idea=idea, scenes=scenes))
    assert usage.provider == "offline" and usage.model == "story-spine"
    assert usage.units == 1 and usage.unit == "script"
    return Script.model_validate(script.model_dump())


@pytest.mark.parametrize("scenes", [3, 6, 12])
async def test_scene_count_is_honoured(scenes: int) -> None:
    script = await _write(IDEAS[0], scenes)
    assert len(script.scenes) == scenes
    narrations = [s.narration for s in script.scenes]
    assert len(set(narrations)) == scenes
    names = {c.name for c in script.characters}
    assert all(set(s.characters) <= names and s.characters for s in script.scenes)


async def test_narration_and_cast_come_from_the_idea() -> None:
    script = await _write(IDEAS[0])
    text = " ".join(s.narration for s in script.scenes).lower()
    assert "lighthouse keeper" in text and "whale" in text
    assert "befriended a stranded whale" in text
    names = [c.name.lower() for c in script.characters]
    assert names == ["lighthouse keeper", "whale"]
    keeper, whale = script.characters
    assert "lighthouse keeper" in keeper.description
    assert "whale" in whale.description and "stranded" in whale.description
    assert "lighthouse" in script.title.lower() and "whale" in script.title.lower()
    settings = {s.setting for s in script.scenes}
    assert "the lighthouse" in settings and "the sea" in settings


async def test_arc_framing_and_durations() -> None:
    script = await _write(IDEAS[1], 8)
    times = [s.time_of_day for s in script.scenes]
    order = ["dawn", "day", "dusk", "night"]
    assert times[0] == "dawn" and times[-1] == "night"
    assert [order.index(t) for t in times] == sorted(order.index(t) for t in times)
    assert len({s.framing for s in script.scenes}) == 3
    for scene in script.scenes:
        words = len(scene.narration.split())
        assert scene.duration_s == pytest.approx(min(20, max(2, words / 2.6 + 1)), abs=0.01)


async def test_same_request_same_script() -> None:
    assert (await _write(IDEAS[3], 7)) == (await _write(IDEAS[3], 7))
    assert (await _write(IDEAS[3], 7)) != (await _write(IDEAS[2], 7))


@pytest.mark.parametrize("idea", IDEAS)
@pytest.mark.parametrize("scenes", [3, 5, 9, 12])
async def test_english_lines_stay_in_bounds(idea: str, scenes: int) -> None:
    script = await _write(idea, scenes)
    assert len(script.scenes) == scenes
    assert len({s.narration for s in script.scenes}) == scenes
    for scene in script.scenes:
        assert 8 <= len(scene.narration.split()) <= 25, scene.narration
        assert 2.0 <= scene.duration_s <= 20.0
    assert len(script.title) <= 120 and len(script.logline) <= 400
    # The protagonist's own head noun reaches the narration.
    first = re.sub(r" \d+$", "", script.characters[0].name).split()[-1].lower()
    assert any(first in s.narration.lower() for s in script.scenes)


def _letters(text: str, script_prefix: str) -> int:
    return sum(1 for ch in text if unicodedata.name(ch, "").startswith(script_prefix))


@pytest.mark.parametrize(
    ("idea", "script_prefix"),
    [
        ("Смотритель маяка подружился с выброшенным на берег китом.", "CYRILLIC"),
        ("灯塔看守人和一头搁浅的鲸鱼成了朋友。", "CJK"),
        ("حارس المنارة يصادق حوتاً عالقاً على الشاطئ", "ARABIC"),
        ("שומר המגדלור מתיידד עם לווייתן תקוע", "HEBREW"),
    ],
)
@pytest.mark.parametrize("scenes", [3, 6, 12])
async def test_other_scripts_keep_their_script(idea: str, script_prefix: str, scenes: int) -> None:
    script = await _write(idea, scenes)
    # One sentence is told across as many scenes as its words allow, never repeated.
    assert 3 <= len(script.scenes) <= scenes
    assert len({s.narration for s in script.scenes}) == len(script.scenes)
    told = "".join(s.narration for s in script.scenes).replace(" ", "")
    assert told == idea.replace(" ", "")
    for scene in script.scenes:
        assert _letters(scene.narration, script_prefix) > 0
        assert not re.search(r"[A-Za-z]", scene.narration)
    assert _letters(script.title, script_prefix) > 0
    assert script.title.split()[0] == idea.split()[0] or idea.startswith(script.title[:4])
    assert all(_letters(c.name, script_prefix) for c in script.characters)
    for scene in script.scenes:
        # Not translated: every run of letters is a piece of the idea itself.
        assert all(run in idea for run in re.findall(r"\w+", scene.narration))


async def test_the_whale_is_found_in_other_scripts() -> None:
    script = await _write("灯塔看守人和一头搁浅的鲸鱼成了朋友。")
    assert any("whale" in c.description for c in script.characters)
    assert script.scenes[0].setting == "the lighthouse"


@pytest.mark.parametrize("idea", ["🐋🏝️💡", "🐱", "👧🐉", "...", "猫"])
async def test_emoji_and_tiny_ideas_still_make_a_script(idea: str) -> None:
    script = await _write(idea, 6)
    assert 3 <= len(script.scenes) <= 6
    assert len({s.narration for s in script.scenes}) == len(script.scenes)
    if idea[0] in "🐋🐱👧":
        assert script.characters[0].name == idea[0]
        assert all(idea[0] in s.narration or s.narration.strip("…!? ") for s in script.scenes)


async def test_emoji_characters_are_named_from_the_emoji() -> None:
    script = await _write("👧🐉", 4)
    assert [c.name for c in script.characters] == ["👧", "🐉"]
    assert "dragon" in script.characters[1].description
    whale = await _write("🐋🏝️💡", 4)
    assert whale.characters[0].name == "🐋" and "whale" in whale.characters[0].description
    assert whale.scenes[0].setting == "the island"


async def test_very_long_idea_is_cut_to_the_bounds() -> None:
    idea = " ".join(["a lonely lighthouse keeper befriends a stranded whale by the sea."] * 40)
    script = await _write(idea, 12)
    assert len(script.logline) <= 400
    assert all(len(s.narration) <= 600 and len(s.shot) <= 600 for s in script.scenes)


async def test_russian_animals_become_animals_and_a_trailing_star_is_not_a_character() -> None:
    from providers.offline.palette import figure_kind

    writer = StorySpineWriter()
    script, _ = await writer.write(
        ScriptRequest(idea="Маленький ёжик ищет звезду в тумане 🌟", scenes=3)
    )
    names = [c.name for c in script.characters]
    assert "🌟" not in names
    hedgehog = script.characters[0]
    assert "hedgehog" in hedgehog.description
    assert figure_kind(hedgehog.name, hedgehog.description) != "person"
    # Everyday words that merely begin like an animal's name do not turn into animals.
    plain, _ = await writer.write(
        ScriptRequest(idea="Совсем ежедневно девочка рисует дом", scenes=3)
    )
    assert all("owl" not in c.description and "hedgehog" not in c.description
               for c in plain.characters)


def test_every_animal_the_writer_knows_has_an_animal_silhouette() -> None:
    from providers.offline.palette import figure_kind
    from providers.offline.script import ANIMALS

    drawn_as_people = [a for a in sorted(ANIMALS)
                       if figure_kind(a, f"a storybook {a}") == "person"]
    assert drawn_as_people == []
