"""The budget check before a step spends, and the cost ledger."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.api import StoryAPI
from pipeline.budget import check_budget, estimate_step
from pipeline.errors import BudgetExceeded
from pipeline.models import Character, Scene, Status
from pipeline.runtime import Runtime
from providers.base import ImageRequest, ImageResult
from providers.pricing import PriceTable
from providers.registry import Chain, Providers
from tests.factories import ALICE, ROOM, story
from tests.pipeline_helpers import finished


class PricedImages:
    """Stands where a paid image service would; must never be called over budget."""

    name = "fal"
    model = "fal-ai/flux/dev"

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: ImageRequest) -> ImageResult:
        self.calls += 1
        raise AssertionError("called over budget")


def _providers(rt: Runtime, image: Any) -> Providers:
    base = rt.providers
    return Providers(script=base.script, image=Chain("image", [image]), video=base.video,
                     speech=base.speech, music=base.music)


def test_estimates_follow_the_price_table_and_the_work_left() -> None:
    s = story(candidates=3)
    s.characters = [Character(id="a", name="A", description="d"),
                    Character(id="b", name="B", description="d")]
    s.scenes = [Scene(index=i, shot="x", narration="y") for i in range(4)]

    class Fake:
        def chain(self, cap: str) -> Chain[Any]:
            return Chain(cap, [PricedImages()])  # type: ignore[arg-type]

    prices = PriceTable()
    assert estimate_step(s, "cast", Fake(), prices) == pytest.approx(2 * 0.025)
    assert estimate_step(s, "storyboard", Fake(), prices) == pytest.approx(4 * 3 * 0.025)
    cheaper = PriceTable('{"fal:fal-ai/flux/dev": 0.01}')
    assert estimate_step(s, "storyboard", Fake(), cheaper) == pytest.approx(4 * 3 * 0.01)
    s.options.budget_usd = 0.2
    with pytest.raises(BudgetExceeded, match=r"\$0.30 more"):
        check_budget(s, "storyboard", Fake(), prices)
    s.options.budget_usd = None
    assert check_budget(s, "storyboard", Fake(), prices) == pytest.approx(0.3)


@pytest.mark.slow
async def test_a_step_over_budget_fails_the_story_before_spending(rt: Runtime) -> None:
    paid = PricedImages()
    rt.providers = _providers(rt, paid)
    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=2, pick="auto", budget_usd=0.01)
    s = await finished(rt, await api.start_story("A robot learns to paint", ALICE, ROOM, options))
    assert s.status == Status.failed and s.failed_step == "cast"
    assert "budget" in (s.error or "")
    assert paid.calls == 0
    assert s.cost_usd == 0.0 and [c.step for c in s.costs] == ["script"]


def test_assemble_estimates_the_music_bed_within_the_models_clip_limits() -> None:
    from providers.base import MusicRequest, MusicResult

    class PricedMusic:
        name, model, MIN_S, MAX_S = "replicate", "meta/musicgen", 1, 30

        async def compose(self, request: MusicRequest) -> MusicResult:
            raise AssertionError("never called here")

    class Fake:
        def chain(self, cap: str) -> Chain[Any]:
            return Chain(cap, [PricedMusic() if cap == "music" else PricedImages()])  # type: ignore[arg-type]

    s = story()
    s.scenes = [Scene(index=i, shot="x", narration="y", duration_s=4.0) for i in range(3)]
    prices = PriceTable()
    assert estimate_step(s, "assemble", Fake(), prices) == pytest.approx((12 + 2) * 0.0035)
    s.scenes += [Scene(index=i, shot="x", narration="y", duration_s=9.0) for i in range(3, 6)]
    assert estimate_step(s, "assemble", Fake(), prices) == pytest.approx(30 * 0.0035)  # capped
    s.options.music = False
    assert estimate_step(s, "assemble", Fake(), prices) == 0.0
    s.options.music, s.options.budget_usd = True, 0.05
    with pytest.raises(BudgetExceeded, match="assemble"):
        check_budget(s, "assemble", Fake(), prices)
