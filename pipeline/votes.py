"""Counting a community's votes: plain functions over the story's polls, no I/O.

The rules, in the order they apply when a window closes:

1. Enough members asked for new frames (the community's threshold): new frames are drawn.
2. Nobody chose an option: option 1 is kept (for a text poll, the current text).
3. Fewer votes than the quorum: the owner's vote decides; if the owner did not vote, option 1.
4. The option with the most votes wins. On a tie the owner's vote decides among the tied
   options; if the owner voted for none of them, the lowest-numbered tied option wins.

An override by the owner or a moderator replaces all of this and is recorded on the poll.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.errors import BadRequest
from pipeline.models import NEW_FRAMES, Override, Poll, UserRef, VoteResult, VoteRules


class VoteClosed(BadRequest):
    """The window of this vote has closed."""


def label(poll: Poll, option: int) -> str:
    if option == NEW_FRAMES:
        return "new frames"
    if poll.kind == "frame":
        return f"frame {option}"
    return "the current text" if option == 1 else f"proposal {option - 1}"


def _labels(poll: Poll, options: list[int]) -> str:
    words = [label(poll, o) for o in options]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def tally(poll: Poll) -> dict[int, int]:
    """Votes per option 1..N (the new-frames votes are counted apart)."""
    counts = {n: 0 for n in range(1, poll.options + 1)}
    for choice in poll.votes.values():
        if choice in counts:
            counts[choice] += 1
    return counts


def new_frames_votes(poll: Poll) -> int:
    return sum(1 for c in poll.votes.values() if c == NEW_FRAMES)


def cast(poll: Poll, member: UserRef, choice: int, at: float) -> bool:
    """Record (or change) ``member``'s vote; ``False`` when it was already that vote."""
    if not poll.is_open or at >= poll.closes_at:
        raise VoteClosed(f"the vote on scene {poll.scene + 1} has closed")
    if choice == NEW_FRAMES and poll.kind != "frame":
        raise BadRequest("new frames can be asked for in a frame vote only")
    if choice != NEW_FRAMES and not 1 <= choice <= poll.options:
        raise BadRequest(f"scene {poll.scene + 1} has options 1 to {poll.options}")
    same = poll.votes.get(member.key) == choice
    poll.votes[member.key] = choice
    poll.voters[member.key] = member.display_name or member.user_id
    return not same


def new_frames_reached(poll: Poll, rules: VoteRules) -> bool:
    return poll.kind == "frame" and new_frames_votes(poll) >= rules.new_frames_threshold


def decide(poll: Poll, rules: VoteRules, owner: UserRef) -> VoteResult:
    """The result of a poll under the rules above, saying which rule applied."""
    counts = tally(poll)
    asked = new_frames_votes(poll)
    if new_frames_reached(poll, rules):
        return VoteResult(choice=NEW_FRAMES, rule="new_frames", counts=counts,
                          explanation=f"{asked} members asked for new frames (the threshold is "
                                      f"{rules.new_frames_threshold}): new frames are drawn.")
    cast_votes = sum(counts.values())
    owner_choice = poll.votes.get(owner.key)
    owner_name = owner.display_name or "the owner"
    if cast_votes == 0:
        return VoteResult(choice=1, rule="empty", counts=counts,
                          explanation=f"Nobody voted, so {label(poll, 1)} is kept.")
    if cast_votes < rules.quorum:
        short = f"Only {cast_votes} of the {rules.quorum} votes needed"
        if owner_choice is not None and owner_choice in counts:
            return VoteResult(choice=owner_choice, rule="quorum_owner", counts=counts,
                              explanation=f"{short}: {owner_name}'s vote decided, "
                                          f"{label(poll, owner_choice)}.")
        return VoteResult(choice=1, rule="quorum_fallback", counts=counts,
                          explanation=f"{short} and {owner_name} did not vote, so "
                                      f"{label(poll, 1)} is kept.")
    top = max(counts.values())
    leaders = [o for o, n in counts.items() if n == top]
    votes_word = "vote" if top == 1 else "votes"
    if len(leaders) == 1:
        return VoteResult(choice=leaders[0], rule="majority", counts=counts,
                          explanation=f"{label(poll, leaders[0]).capitalize()} won with {top} of "
                                      f"{cast_votes} votes.")
    tied = f"{_labels(poll, leaders).capitalize()} tied at {top} {votes_word}"
    if owner_choice in leaders:
        return VoteResult(choice=owner_choice, rule="tie_owner", counts=counts,
                          explanation=f"{tied}; {owner_name}'s vote decided: "
                                      f"{label(poll, owner_choice)}.")
    return VoteResult(choice=leaders[0], rule="tie_fallback", counts=counts,
                      explanation=f"{tied} and {owner_name} voted for none of them, so the "
                                  f"lowest-numbered, {label(poll, leaders[0])}, wins.")


def override(poll: Poll, choice: int, by: UserRef, at: float) -> VoteResult:
    """Close ``poll`` with ``choice`` chosen by ``by``, recording who and when."""
    if choice != NEW_FRAMES and not 1 <= choice <= poll.options:
        raise BadRequest(f"scene {poll.scene + 1} has options 1 to {poll.options}")
    name = by.display_name or by.user_id
    poll.overrides.append(Override(by=by, at=at, action="override", choice=choice))
    return VoteResult(choice=choice, rule="override", counts=tally(poll),
                      explanation=f"Overridden by {name}: {label(poll, choice)}.")


def close(poll: Poll, result: VoteResult, at: float) -> None:
    poll.closed_at = at
    poll.result = result


def close_early(poll: Poll, rules: VoteRules, owner: UserRef, by: UserRef, at: float
                ) -> VoteResult:
    """Close ``poll`` now by its rules, recording who closed it."""
    poll.overrides.append(Override(by=by, at=at, action="closed_early"))
    result = decide(poll, rules, owner)
    name = by.display_name or by.user_id
    result.explanation = f"Closed early by {name}. {result.explanation}"
    return result


def override_lines(poll: Poll) -> list[str]:
    """Every override on the poll, as a person reads it on the scene's message."""
    lines = []
    for o in poll.overrides:
        when = datetime.fromtimestamp(o.at, UTC).strftime("%H:%M UTC")
        name = o.by.display_name or o.by.user_id
        if o.action == "override" and o.choice is not None:
            lines.append(f"⚖️ {name} overrode the vote at {when}: {label(poll, o.choice)}")
        else:
            lines.append(f"⏹ {name} closed the vote early at {when}")
    return lines
