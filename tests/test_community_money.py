"""A community's money: a step over the cap or the month's budget waits for a moderator, two
moderators approving at once spend once, a budget raised while a story waits lets it go on, and
the spend lands in the community's ledger. Real Valkey, the real arq worker (in burst mode)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bots.core import intents as it
from bots.core.conversation import Conversation
from bots.core.views import Text
from pipeline.community import Communities, month_of
from pipeline.models import ChatRef, Platform, Status, Story, UserRef
from pipeline.runtime import Runtime
from pipeline.worker import run_until_idle
from providers.base import ImageRequest, ImageResult, Usage
from providers.registry import Chain, Providers

GINA = UserRef(platform=Platform.console, user_id="gina", display_name="Gina")
ANN = UserRef(platform=Platform.console, user_id="ann", display_name="Ann")
MO = UserRef(platform=Platform.console, user_id="mo", display_name="Mo")
BOB = UserRef(platform=Platform.console, user_id="bob", display_name="Bob")
ROOM = ChatRef(platform=Platform.console, chat_id="co-op", is_group=True)
PRICE = 0.025  # fal's flux/dev price per image in the price table


class PricedImages:
    """The offline painter, billed like a paid image service, counting what it is asked."""

    name = "fal"
    model = "fal-ai/flux/dev"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.images = 0

    async def generate(self, request: ImageRequest) -> ImageResult:
        result: ImageResult = await self.inner.generate(request)
        self.images += len(result.images)
        result.usage = Usage(provider=self.name, model=self.model, units=len(result.images),
                             unit="image", usd=PRICE * len(result.images))
        return result


def priced(rt: Runtime) -> PricedImages:
    base = rt.providers
    paid = PricedImages(base.chain("image").providers[0])
    rt.providers = Providers(script=base.script, image=Chain("image", [paid]), video=base.video,
                             speech=base.speech, music=base.music)
    return paid


async def community(rt: Runtime, **settings: str) -> Conversation:
    conv = await Conversation.create(rt, Platform.console)
    rt.settings = rt.settings.model_copy(update={"default_scenes": 3, "candidates": 2})
    c = Communities(rt.redis)
    await c.setup(ROOM.key, GINA)
    await c.set_moderator(ROOM.key, ANN, True)
    await c.set_moderator(ROOM.key, MO, True)
    settings = {"decides": "owner", **settings}  # no vote windows for the burst worker to wait on
    for name, value in settings.items():
        await c.set_setting(ROOM.key, name, value)
    return conv


async def start(conv: Conversation, rt: Runtime, idea: str) -> Story:
    assert await conv.handle(it.StartStory(idea=idea), GINA, ROOM) == []
    ids = await rt.store.by_chat(ROOM, 1)
    return await rt.store.get(ids[0])


def texts(views: list[Any]) -> list[str]:
    return [v.text for v in views if isinstance(v, Text)]


async def test_over_the_cap_waits_for_one_moderators_approval(rt: Runtime) -> None:
    paid = priced(rt)
    conv = await community(rt, cap="0.10")
    story = await start(conv, rt, "A lighthouse keeper befriends a stranded whale")
    await run_until_idle(rt)
    story = await rt.store.get(story.id)
    cast_images = paid.images
    assert cast_images == len(story.characters) >= 1
    # the storyboard (3 scenes x 2 candidates) would bring the story over its cap: it waits
    assert story.status == Status.storyboarding and story.spend_hold is not None
    assert story.spend_hold.step == "storyboard"
    assert story.spend_hold.estimate_usd == 0.15
    view = conv.community.spend_view(story)
    assert view is not None and view.buttons[0][0].label == "✅ Approve $0.15"
    assert view.text == (f"💰 “{story.title}” waits for a moderator: the storyboard step costs "
                         f"about $0.15, and it would bring this story to about "
                         f"${story.cost_usd + 0.15:.2f}, over the community's $0.10 cap per "
                         "story.")
    assert not any(c.step == "storyboard" for c in story.costs)

    # a member may not approve; the refusal names who may
    refused = texts(await conv.handle(it.ApproveSpend(story_id=story.id, cents=15), BOB, ROOM))
    assert refused == ["Only the group's admins and moderators (Ann, Mo) can approve the "
                       "community's spending."]
    # a button showing an old amount is refused
    stale = texts(await conv.handle(it.ApproveSpend(story_id=story.id, cents=9), ANN, ROOM))
    assert stale == ["The amount changed to $0.15 since that button was shown; approve the new "
                     "amount."]

    # two moderators press ✅ at once: one approval, one spend
    both = await asyncio.gather(
        conv.handle(it.ApproveSpend(story_id=story.id, cents=15), ANN, ROOM),
        conv.handle(it.ApproveSpend(story_id=story.id, cents=15), MO, ROOM))
    answers = sorted((t for views in both for t in texts(views)), key=lambda t: t[0] != "✅")
    assert answers[0] == "✅ Approved $0.15 for the storyboard step."
    assert answers[1] in ("Ann already approved $0.15 for this story.",
                          "Mo already approved $0.15 for this story.")
    await run_until_idle(rt)
    story = await rt.store.get(story.id)
    assert story.status == Status.awaiting_approval and len(story.approvals) == 1
    assert paid.images == cast_images + 6  # the storyboard drawn once
    assert sum(1 for c in story.costs if c.step == "storyboard") == 3

    ledger = await Communities(rt.redis).get(ROOM.key)
    assert ledger is not None
    month = month_of(time.time())
    assert ledger.spent(month) == story.cost_usd > 0
    assert ledger.spent_by_member(month) == {GINA.key: ("Gina", story.cost_usd)}
    budget = texts(await conv.handle(it.Budget(), BOB, ROOM))[0]
    assert f"Gina: ${story.cost_usd:.2f}" in budget
    again = texts(await conv.handle(it.ApproveSpend(story_id=story.id, cents=15), MO, ROOM))
    assert again[0].endswith("already approved $0.15 for this story.")


async def test_a_budget_raised_while_a_story_waits_is_checked_again(rt: Runtime) -> None:
    paid = priced(rt)
    conv = await community(rt, budget="0.10")
    story = await start(conv, rt, "A fox learns to fly a kite")
    await run_until_idle(rt)
    story = await rt.store.get(story.id)
    assert story.spend_hold is not None
    left = round(0.10 - story.cost_usd, 4)
    assert story.spend_hold.reason == (f"it costs about $0.15 and the community has ${left:.2f} "
                                       "of its $0.10 left this month")
    answer = texts(await conv.handle(it.CommunitySettings(key="budget", value="5"), ANN, ROOM))
    assert answer[0].endswith("1 waiting story now fit the budget and go on.")
    await run_until_idle(rt)
    story = await rt.store.get(story.id)
    assert story.spend_hold is None and story.status == Status.awaiting_approval
    assert story.approvals == []  # released by the budget, not by a moderator
    assert paid.images > 0


async def test_offline_stories_cost_nothing_but_count_against_the_quota(rt: Runtime) -> None:
    conv = await community(rt, quota="1", cap="0")
    story = await start(conv, rt, "A snail races a tortoise")
    await run_until_idle(rt)
    story = await rt.store.get(story.id)
    assert story.spend_hold is None and story.status == Status.awaiting_approval  # $0: no hold
    await rt.redis.delete(f"sl:community:rate:{ROOM.key}:{GINA.key}")
    refused = texts(await conv.handle(it.StartStory(idea="Another tale"), GINA, ROOM))
    assert refused[0].startswith("You have started 1 of your 1 stories for today")
