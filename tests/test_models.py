"""The status machine and the domain models: pure, no I/O."""

from __future__ import annotations

import itertools

import pytest

from pipeline.errors import BadRequest, IllegalTransition
from pipeline.models import TRANSITIONS, Status, StoryOptions
from tests.factories import story

HAPPY_PATH = [
    Status.drafting,
    Status.casting,
    Status.storyboarding,
    Status.awaiting_approval,
    Status.animating,
    Status.voicing,
    Status.assembling,
    Status.done,
]


def test_happy_path_reaches_done() -> None:
    s = story()
    for target in HAPPY_PATH[1:]:
        s.transition(target)
    assert s.status == Status.done


@pytest.mark.parametrize(
    ("src", "dst"),
    [(a, b) for a, targets in TRANSITIONS.items() for b in targets],
)
def test_every_legal_transition_works(src: Status, dst: Status) -> None:
    s = story()
    s.status = src
    s.transition(dst)
    assert s.status == dst


ILLEGAL = [
    (a, b) for a, b in itertools.product(Status, Status) if b not in TRANSITIONS[a]
]


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_every_illegal_transition_raises(src: Status, dst: Status) -> None:
    s = story()
    s.status = src
    with pytest.raises(IllegalTransition) as info:
        s.transition(dst)
    assert s.status == src
    assert src.value in str(info.value) and dst.value in str(info.value)


def test_illegal_examples_that_matter() -> None:
    s = story()
    with pytest.raises(IllegalTransition):
        s.transition(Status.done)  # cannot skip the pipeline
    s.status = Status.cancelled
    for target in Status:
        with pytest.raises(IllegalTransition):
            s.transition(target)


def test_regeneration_after_done_re_enters_one_step() -> None:
    for target in (Status.storyboarding, Status.animating, Status.voicing):
        s = story()
        s.status = Status.done
        s.transition(target)
        assert s.status == target


@pytest.mark.parametrize(
    ("aspect", "res", "size"),
    [
        ("9:16", "720p", (720, 1280)),
        ("16:9", "720p", (1280, 720)),
        ("1:1", "720p", (720, 720)),
        ("9:16", "1080p", (1080, 1920)),
        ("16:9", "1080p", (1920, 1080)),
    ],
)
def test_frame_sizes(aspect: str, res: str, size: tuple[int, int]) -> None:
    assert StoryOptions(aspect=aspect, resolution=res).frame_size() == size  # type: ignore[arg-type]


def test_scene_lookup_names_the_valid_range() -> None:
    s = story()
    with pytest.raises(BadRequest, match="scenes 1 to 0"):
        s.scene(3)
