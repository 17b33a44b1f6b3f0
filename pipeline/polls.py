"""Community stories at work: votes opened, cast and closed on the story document, proposals,
next-episode ideas, the spend approval gate, the ledger and the gallery.

Every vote is one compare-and-set write on the story. A window closes from a deferred arq job
named after the story, scene and generation (``pipeline.queue.enqueue_vote_close``), so a restart
changes nothing and a second close finds the vote closed and does nothing. The counting itself
is in :mod:`pipeline.votes`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from arq import Retry

from pipeline import votes
from pipeline.budget import estimate_step
from pipeline.community import Communities, month_of
from pipeline.errors import BadRequest, ConflictError, StoryNotFound
from pipeline.events import EventKind, StoryEvent
from pipeline.models import (
    NEW_FRAMES,
    Idea,
    Poll,
    PollKind,
    Proposal,
    SpendApproval,
    SpendHold,
    Status,
    Story,
    UserRef,
    VoteResult,
    poll_id,
)
from pipeline.prompts import clean_idea, estimate_duration
from pipeline.queue import enqueue, enqueue_vote_close
from pipeline.runtime import Runtime
from providers.pricing import PriceTable

log = logging.getLogger(__name__)

IDEAS_KEEP = 50
VOTING = (Status.awaiting_approval, Status.storyboarding)  # where a vote still decides something
STEP_STATUS = {"script": Status.drafting, "cast": Status.casting,
               "storyboard": Status.storyboarding, "animate": Status.animating,
               "voice": Status.voicing, "assemble": Status.assembling}


class AlreadyDone(BadRequest):
    """The thing asked for was done already (a vote closed, a spend approved)."""


@dataclass
class _Outcome:
    """What a compare-and-set decided, for the work that follows the write."""

    poll: Poll | None = None
    redraw: bool = False
    make: bool = False
    notes: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.poll, self.redraw, self.make, self.notes = None, False, False, []


async def _publish(rt: Runtime, story: Story, kind: EventKind, **fields: object) -> None:
    await rt.outbox.publish(StoryEvent.of(story, kind, **fields))


def decided(story: Story) -> bool:
    """Every scene has a frame and no vote is open on the story's current frames or text."""
    if not story.all_picked:
        return False
    return not any(p.is_open and p.generation == story.scene(p.scene).generation
                   for p in story.polls)


def _redraw(story: Story, scene: int) -> None:
    sc = story.scene(scene)
    sc.generation += 1
    sc.candidates = []
    sc.picked = None
    if story.status == Status.awaiting_approval:
        story.transition(Status.storyboarding)


def _apply(story: Story, p: Poll, result: VoteResult, out: _Outcome) -> None:
    """Carry out a closed poll's result on the story (in the same write that closed it)."""
    sc = story.scene(p.scene)
    if p.kind == "frame":
        if result.choice == NEW_FRAMES:
            _redraw(story, p.scene)
            out.redraw = True
        else:
            sc.picked = sc.candidates[result.choice - 1].id
        return
    if result.choice < 2:
        return  # the current text stays
    proposal = [x for x in story.proposals if x.scene == p.scene and x.generation == p.generation
                ][result.choice - 2]
    sc.narration = sc.shot = proposal.text
    sc.duration_s = estimate_duration(proposal.text)
    if all(u.key != proposal.by.key for u in story.contributors):
        story.contributors.append(proposal.by)
    for other in story.polls:  # the frames of the old text are no longer voted on
        if other.is_open and other.scene == p.scene and other is not p:
            votes.close(other, VoteResult(choice=1, rule="replaced",
                                          explanation="The scene's text changed."), p.closed_at
                        or time.time())
    _redraw(story, p.scene)
    out.redraw = True


def _maybe_make(story: Story, out: _Outcome) -> None:
    rules = story.rules
    if (rules is not None and rules.auto_make and story.status == Status.awaiting_approval
            and decided(story)):
        story.transition(Status.animating)
        out.make = True


async def _after_write(rt: Runtime, story: Story, out: _Outcome, scene: int) -> None:
    await _publish(rt, story, EventKind.vote, scene=scene, step="vote",
                   message=out.poll.result.explanation if out.poll and out.poll.result else "")
    if out.redraw:
        await enqueue(rt.redis, "storyboard", story.id, story.revision)
        await _publish(rt, story, EventKind.status, step="storyboard", scene=scene,
                       message=f"drawing scene {scene + 1} again")
    if out.make:
        await enqueue(rt.redis, "animate", story.id, story.revision)
        await _publish(rt, story, EventKind.status, step="animate", message="animating")


# --------------------------------------------------------------------------- opening


async def open_polls(rt: Runtime, story_id: str) -> list[Poll]:
    """Open a frame vote on every scene whose current frames have none; idempotent."""
    opened: list[Poll] = []

    def change(s: Story) -> None:
        opened.clear()
        if s.rules is None or s.status != Status.awaiting_approval:
            return
        at = time.time()
        for sc in s.scenes:
            pid = poll_id("frame", sc.index, sc.generation)
            if sc.candidates and s.poll(pid) is None:
                p = Poll(id=pid, kind="frame", scene=sc.index, generation=sc.generation,
                         options=len(sc.candidates), opened_at=at,
                         closes_at=at + s.rules.window_s)
                s.polls.append(p)
                opened.append(p)

    story = await rt.store.get(story_id)
    if story.rules is None or story.status != Status.awaiting_approval:
        return []
    story = await rt.store.update(story_id, change)
    for p in opened:
        await enqueue_vote_close(rt.redis, story.id, p.id, p.closes_at)
        await _publish(rt, story, EventKind.vote, scene=p.scene, step="vote",
                       message=f"vote on scene {p.scene + 1} open")
    return opened


# --------------------------------------------------------------------------- casting


async def cast_vote(rt: Runtime, story_id: str, scene: int, member: UserRef, choice: int,
                    kind: PollKind = "frame") -> tuple[Story, bool]:
    """Record ``member``'s vote (one write); ``True`` when it changed something. Reaching the
    new-frames threshold closes the vote at once."""
    at = time.time()
    changed: list[bool] = []

    def change(s: Story) -> None:
        changed.clear()
        if s.rules is None:
            raise BadRequest("this story is not decided by votes")
        if s.status not in VOTING:
            raise BadRequest(f"this story is {s.status.value}; its votes are over")
        p = s.open_poll(scene, kind)
        if p is None:
            gen = s.scene(scene).generation
            done = [x for x in s.polls if x.scene == scene and x.kind == kind
                    and x.generation == gen and x.result is not None]
            if done and done[-1].result is not None:
                raise votes.VoteClosed(f"the vote on scene {scene + 1} has closed: "
                                       f"{done[-1].result.explanation[:1].lower()}"
                                       f"{done[-1].result.explanation[1:].rstrip('.')}")
            word = "text " if kind == "text" else ""
            raise BadRequest(f"there is no {word}vote open on scene {scene + 1}")
        changed.append(votes.cast(p, member, choice, at))

    story = await rt.store.update(story_id, change)
    p = story.open_poll(scene, kind)
    if p is not None and story.rules is not None and votes.new_frames_reached(p, story.rules):
        closed = await close_poll(rt, story_id, p.id)
        return (closed or story), True
    if changed and changed[0]:
        await _publish(rt, story, EventKind.vote, scene=scene, step="vote",
                       message=f"{member.display_name or member.user_id} voted")
    return story, bool(changed and changed[0])


# --------------------------------------------------------------------------- closing


async def close_poll(rt: Runtime, story_id: str, pid: str, *, by: UserRef | None = None,
                     choice: int | None = None) -> Story | None:
    """Close a vote by its rules (the window ended), early (``by``), or with ``choice``
    (an override by ``by``). ``None`` when it was closed already: a second close does nothing."""
    out = _Outcome()

    def change(s: Story) -> None:
        out.reset()
        p = s.poll(pid)
        if p is None:
            raise BadRequest("there is no such vote")
        if not p.is_open:
            raise AlreadyDone(f"the vote on scene {p.scene + 1} is already closed")
        at = time.time()
        out.poll = p
        if p.generation != s.scene(p.scene).generation:
            votes.close(p, VoteResult(choice=1, rule="replaced",
                                      explanation="The scene was redrawn."), at)
            return
        if s.status not in VOTING:
            votes.close(p, VoteResult(choice=1, rule="replaced",
                                      explanation=f"The story was {s.status.value} before the "
                                                  "vote closed."), at)
            return
        assert s.rules is not None
        if choice is not None and by is not None:
            result = votes.override(p, choice, by, at)
        elif by is not None:
            result = votes.close_early(p, s.rules, s.owner, by, at)
        else:
            result = votes.decide(p, s.rules, s.owner)
        votes.close(p, result, at)
        _apply(s, p, result, out)
        _maybe_make(s, out)

    try:
        story = await rt.store.update(story_id, change)
    except AlreadyDone:
        if by is not None:
            raise
        return None
    assert out.poll is not None
    await _after_write(rt, story, out, out.poll.scene)
    return story


async def close_job(rt: Runtime, story_id: str, pid: str) -> str:
    """The deferred job at the end of a window."""
    try:
        story = await close_poll(rt, story_id, pid)
    except StoryNotFound:
        return "no story"
    except (ConflictError, OSError) as err:
        raise Retry(defer=1) from err
    return "closed" if story is not None else "already closed"


async def close_open(rt: Runtime, story_id: str, by: UserRef, scene: int | None = None
                     ) -> list[Poll]:
    """Close every open vote of the story now (or the scene's), recording who closed them."""
    story = await rt.store.get(story_id)
    closed = []
    for p in [p for p in story.polls if p.is_open and (scene is None or p.scene == scene)]:
        try:
            after = await close_poll(rt, story_id, p.id, by=by)
        except AlreadyDone:
            continue
        if after is not None:
            done = after.poll(p.id)
            if done is not None:
                closed.append(done)
    return closed


async def override_vote(rt: Runtime, story_id: str, scene: int, choice: int, by: UserRef,
                        kind: PollKind = "frame") -> Story:
    story = await rt.store.get(story_id)
    p = story.open_poll(scene, kind)
    if p is None:
        raise BadRequest(f"there is no vote open on scene {scene + 1}")
    after = await close_poll(rt, story_id, p.id, by=by, choice=choice)
    assert after is not None
    return after


# --------------------------------------------------------------------------- contributions


async def propose(rt: Runtime, story_id: str, scene: int, member: UserRef, text: str
                  ) -> tuple[Story, Poll]:
    """A member's new text for a scene, added to the scene's text vote (opened if needed)."""
    text = clean_idea(text, 600)
    opened: list[Poll] = []
    found: list[Poll] = []

    def change(s: Story) -> None:
        opened.clear()
        found.clear()
        if s.rules is None:
            raise BadRequest("this story is not decided by votes")
        if s.status not in (Status.awaiting_approval, Status.storyboarding):
            raise BadRequest("scenes can be proposed while the storyboard is open")
        sc = s.scene(scene)
        s.proposals.append(Proposal(scene=scene, generation=sc.generation, by=member, text=text))
        p = s.open_poll(scene, "text")
        if p is None:
            at = time.time()
            pid = poll_id("text", scene, sc.generation)
            n = sum(1 for x in s.polls if x.id.startswith(pid))
            p = Poll(id=pid if n == 0 else f"{pid}-{n}", kind="text", scene=scene,
                     generation=sc.generation, options=1, opened_at=at,
                     closes_at=at + s.rules.window_s)
            s.polls.append(p)
            opened.append(p)
        p.options = 1 + sum(1 for x in s.proposals
                            if x.scene == scene and x.generation == sc.generation)
        found.append(p)

    story = await rt.store.update(story_id, change)
    for p in opened:
        await enqueue_vote_close(rt.redis, story.id, p.id, p.closes_at)
    await _publish(rt, story, EventKind.vote, scene=scene, step="proposal",
                   message=f"{member.display_name or member.user_id} proposed a text")
    return story, found[0]


async def add_idea(rt: Runtime, story_id: str, member: UserRef, text: str) -> Story:
    text = clean_idea(text, 300)

    def change(s: Story) -> None:
        if s.community is None:
            raise BadRequest("next-episode ideas are for community stories")
        s.next_ideas = ([*s.next_ideas, Idea(by=member, text=text)])[-IDEAS_KEEP:]

    return await rt.store.update(story_id, change)


# --------------------------------------------------------------------------- money


def _prices(rt: Runtime) -> PriceTable:
    return PriceTable(rt.settings.price_overrides)


async def may_spend(rt: Runtime, story_id: str, step: str) -> bool:
    """The approval gate before a paid step: ``False`` (and the story held, waiting for a
    moderator) when its estimate is over the per-story cap or the community's month budget."""
    try:
        story = await rt.store.get(story_id)
    except StoryNotFound:
        return True
    if story.community is None or story.status != STEP_STATUS.get(step):
        return True
    estimate = estimate_step(story, step, rt.providers, _prices(rt))
    if estimate <= 0 or story.cost_usd + estimate <= story.spend_approved_usd + 1e-9:
        return True
    community = await Communities(rt.redis).get(story.community)
    if community is None:
        return True
    reason = community.spend_problem(story, estimate, month_of(time.time()))
    if reason is None:
        return True
    hold = SpendHold(step=step, estimate_usd=round(estimate, 4),
                     needed_usd=round(story.cost_usd + estimate, 4), reason=reason)

    def change(s: Story) -> None:
        if s.status != STEP_STATUS[step]:
            raise AlreadyDone("the story moved on")
        s.spend_hold = hold

    try:
        story = await rt.store.update(story_id, change)
    except AlreadyDone:
        return False
    await _publish(rt, story, EventKind.spend, step=step,
                   message=f"waiting for a moderator to approve ${hold.estimate_usd:.2f}")
    return False


def cents(usd: float) -> int:
    return round(usd * 100)


async def approve_spend(rt: Runtime, story_id: str, by: UserRef, shown_cents: int | None
                        ) -> Story:
    """A moderator approves the held step at the amount shown; a second approval (or one
    racing it) finds nothing held and the step runs once."""
    step: list[str] = []

    def change(s: Story) -> None:
        step.clear()
        h = s.spend_hold
        if s.finished:
            raise BadRequest(f"this story is {s.status.value}; nothing is waiting to be paid")
        if h is None:
            if s.approvals:
                last = s.approvals[-1]
                raise AlreadyDone(f"{last.by.display_name or last.by.user_id} already approved "
                                  f"${last.usd:.2f} for this story")
            raise BadRequest("this story is not waiting for a spend approval")
        if shown_cents is not None and cents(h.estimate_usd) != shown_cents:
            raise BadRequest(f"the amount changed to ${h.estimate_usd:.2f} since that button "
                             "was shown; approve the new amount")
        s.spend_approved_usd = max(s.spend_approved_usd, h.needed_usd)
        s.approvals.append(SpendApproval(by=by, step=h.step, usd=h.estimate_usd))
        s.spend_hold = None
        step.append(h.step)

    story = await rt.store.update(story_id, change)
    await enqueue(rt.redis, step[0], story.id, story.revision)
    await _publish(rt, story, EventKind.spend, step=step[0], message="approved")
    return story


async def recheck_holds(rt: Runtime, community_key: str) -> list[str]:
    """After the budget or cap changed: release the held stories that fit now, and show the
    others' amounts again."""
    community = await Communities(rt.redis).get(community_key)
    if community is None:
        return []
    released = []
    for sid in community.stories[-100:]:
        try:
            story = await rt.store.get(sid)
        except Exception:
            continue
        h = story.spend_hold
        if h is None:
            continue
        estimate = estimate_step(story, h.step, rt.providers, _prices(rt))
        reason = community.spend_problem(story, estimate, month_of(time.time()))

        def change(s: Story, reason: str | None = reason, estimate: float = estimate) -> None:
            if s.spend_hold is None:
                raise AlreadyDone("not held")
            if reason is None:
                s.spend_hold = None
            else:
                s.spend_hold = s.spend_hold.model_copy(update={
                    "reason": reason, "estimate_usd": round(estimate, 4),
                    "needed_usd": round(s.cost_usd + estimate, 4)})

        try:
            story = await rt.store.update(sid, change)
        except AlreadyDone:
            continue
        if reason is None:
            released.append(sid)
            await enqueue(rt.redis, h.step, story.id, story.revision)
            await _publish(rt, story, EventKind.spend, step=h.step,
                           message="the budget now covers it")
        else:
            await _publish(rt, story, EventKind.spend, step=h.step, message=reason)
    return released


# --------------------------------------------------------------------------- after each step


async def after_step(rt: Runtime, story_id: str, step: str) -> None:
    """What a community story needs after a step ran (or found it had run): its spend in the
    ledger, votes on new frames, a scene left without frames drawn, the gallery."""
    try:
        story = await rt.store.get(story_id)
    except StoryNotFound:
        return
    if story.community is None:
        return
    communities = Communities(rt.redis)
    await communities.record_spend(story)
    if step == "storyboard" and story.status == Status.awaiting_approval:
        if any(not sc.candidates for sc in story.scenes):
            def again(s: Story) -> None:
                if s.status != Status.awaiting_approval:
                    raise AlreadyDone("moved on")
                s.transition(Status.storyboarding)

            try:
                story = await rt.store.update(story_id, again)
            except AlreadyDone:
                return
            await enqueue(rt.redis, "storyboard", story.id, story.revision)
            return
        await open_polls(rt, story_id)
    if step == "assemble" and story.status == Status.done and story.video is not None:
        url = rt.media.public_url(story.video.media) or ""
        if await communities.add_to_gallery(story, url):
            await _publish(rt, story, EventKind.gallery, step="gallery",
                           message=f"{story.title} joined the gallery")
