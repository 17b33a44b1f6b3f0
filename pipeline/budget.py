"""The budget check that runs before a step spends: estimate, compare, refuse with a reason.

Estimates use the price table of the first provider in each chain (the one that will answer
unless it fails), in the units that model bills (Kling clips of 5 or 10 seconds, images,
characters of speech, seconds of music), and the work the step has left to do. Offline
providers cost nothing, and a step that costs nothing is never refused, even once a story has
spent its budget.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import BudgetExceeded
from pipeline.models import Scene, Story
from providers.http import music_seconds
from providers.pricing import PriceTable, Unit, clip_seconds

SCRIPT_TOKENS = 6000  # prompt plus answer of a script call, generously


def clip_length(scene: Scene) -> float:
    """The clip asked for a scene: its length plus a second to cross-fade, at most 30 s."""
    return min(30.0, scene.duration_s + 1.0)


def _price(prices: PriceTable, provider: Any, unit: Unit) -> float:
    name = getattr(provider, "name", "offline")
    if name == "offline":
        return 0.0
    price = prices.price(name, getattr(provider, "model", ""), unit)
    return price.usd + price.usd_output if unit == "mtok" else price.usd


def estimate_step(story: Story, step: str, providers: Any, prices: PriceTable) -> float:
    """Estimated USD the step will spend on the story as it stands."""
    first = {cap: providers.chain(cap).providers[0] for cap in
             ("script", "image", "video", "speech", "music")}
    if step == "script":
        return SCRIPT_TOKENS / 1e6 * _price(prices, first["script"], "mtok")
    if step == "cast":
        todo = sum(1 for c in story.characters if c.reference is None)
        return todo * _price(prices, first["image"], "image")
    if step == "storyboard":
        todo = sum(1 for s in story.scenes if not s.candidates)
        return todo * story.options.candidates * _price(prices, first["image"], "image")
    if step == "animate":
        model = str(getattr(first["video"], "model", ""))
        seconds = sum(clip_seconds(model, clip_length(s)) for s in story.scenes if s.needs_clip)
        return seconds * _price(prices, first["video"], "second")
    if step == "voice":
        chars = sum(len(s.narration) for s in story.scenes if s.needs_voice)
        return chars * _price(prices, first["speech"], "character")
    if step == "assemble" and story.options.music:  # the music bed, the one thing it buys
        music = first["music"]
        story_s = sum(s.voice.duration_s if s.voice else s.duration_s for s in story.scenes) + 2
        seconds = music_seconds(story_s, getattr(music, "MIN_S", 1), getattr(music, "MAX_S", 900))
        return seconds * _price(prices, music, "second")
    return 0.0


def check_budget(story: Story, step: str, providers: Any, prices: PriceTable) -> float:
    """Raise :class:`BudgetExceeded` if the step would take the story over its budget. A step
    that costs nothing goes ahead whatever the story has spent."""
    estimate = estimate_step(story, step, providers, prices)
    budget = story.options.budget_usd
    if budget is not None and estimate > 0 and story.cost_usd + estimate > budget + 1e-9:
        left = budget - story.cost_usd
        has = (f"${left:.2f} of its ${budget:.2f} budget left" if left >= 0 else
               f"already spent ${story.cost_usd:.2f} of its ${budget:.2f} budget")
        raise BudgetExceeded(
            f"the {step} step would spend about ${estimate:.2f} more, and this story has {has}"
        )
    return estimate
