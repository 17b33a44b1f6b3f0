"""The budget check before a step spends, and the cost ledger."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.api import StoryAPI
from pipeline.budget import check_budget, estimate_step
from pipeline.errors import BudgetExceeded
from pipeline.models import Character, CostEntry, Scene, Status
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


class PricedVideo:
    name, model = "fal", "fal-ai/kling-video/v1.6/standard/image-to-video"


class Offline:
    name, model = "offline", ""


def _chains(**by_cap: Any) -> Any:
    class Fake:
        def chain(self, cap: str) -> Chain[Any]:
            return Chain(cap, [by_cap.get(cap, Offline())])  # type: ignore[arg-type]

    return Fake()


def test_a_clip_is_estimated_in_the_models_billing_units() -> None:
    """Kling makes and bills 5 s or 10 s clips: a 7 s scene (an 8 s clip asked) is a 10 s bill,
    a 3 s scene a 5 s one."""
    s = story()
    s.scenes = [Scene(index=i, shot="x", narration="y", duration_s=d, picked="a")
                for i, d in enumerate((7.0, 3.0))]
    assert all(sc.needs_clip for sc in s.scenes)
    estimate = estimate_step(s, "animate", _chains(video=PricedVideo()), PriceTable())
    assert estimate == pytest.approx((10 + 5) * 0.05)


def test_a_step_that_costs_nothing_is_never_refused() -> None:
    """A story that overspent (a clip billed in a longer bucket) still gets its free voice."""
    s = story(budget_usd=0.05)
    s.scenes = [Scene(index=0, shot="x", narration="the whale sings")]
    s.costs = [CostEntry(step="animate", provider="fal", usd=0.25)]
    assert check_budget(s, "voice", _chains(), PriceTable()) == 0.0
    assert check_budget(s, "animate", _chains(video=PricedVideo()), PriceTable()) == 0.0
    s.scenes[0].picked = "1a1"  # a clip still to buy is refused
    with pytest.raises(BudgetExceeded, match=r"already spent \$0.25 of its \$0.05"):
        check_budget(s, "animate", _chains(video=PricedVideo()), PriceTable())


def test_a_providers_raw_answer_never_reaches_the_person() -> None:
    from pipeline.steps import explain
    from providers.base import ProviderBadRequest
    from providers.registry import ChainFailed

    raw = ('video rejected (HTTP 422): {"detail": [{"loc": ["body", "image_url"], '
           '"msg": "bad", "type": "value_error"}]}')
    said = explain(ChainFailed("video", [ProviderBadRequest("fal", raw)]))
    assert "{" not in said and "[" not in said and "video rejected (HTTP 422)" in said


class PricedScript:
    """A paid script writer (priced per token) that writes the offline spine."""

    name, model = "openai", "gpt-4o-mini"

    def __init__(self) -> None:
        from providers.offline.script import StorySpineWriter
        from providers.pricing import PriceTable

        self.calls = 0
        self.inner = StorySpineWriter.from_settings("", None)  # type: ignore[arg-type]
        self.prices = PriceTable()

    async def write(self, request: Any) -> Any:
        self.calls += 1
        script, _ = await self.inner.write(request)
        return script, self.prices.usage("openai", self.model, "mtok", 2000, 1000)


@pytest.mark.slow
async def test_a_reused_script_is_charged_to_the_story_that_paid_for_it_only(
    rt: Runtime,
) -> None:
    from pipeline.steps import step_script

    writer = PricedScript()
    base = rt.providers
    rt.providers = Providers(script=Chain("script", [writer]), image=base.image, video=base.video,
                             speech=base.speech, music=base.music)
    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto")
    first = await api.start_story("A robot learns to paint", ALICE, ROOM, options)
    second = await api.start_story("A robot learns to paint", ALICE, ROOM, options)
    await step_script(rt, first.id, {})
    await step_script(rt, second.id, {})
    # the first story's script step runs again (its worker stopped before the hand-off)
    await rt.store.update(first.id, lambda s: setattr(s, "status", Status.drafting))
    await step_script(rt, first.id, {})
    paid = await rt.store.get(first.id)
    reused = await rt.store.get(second.id)
    assert writer.calls == 1
    assert [c.step for c in paid.costs] == ["script"] and paid.cost_usd > 0
    assert reused.cost_usd == 0.0
