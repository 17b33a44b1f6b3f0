"""Counting community votes: the pure rules, no I/O."""

from __future__ import annotations

import pytest

from pipeline import votes
from pipeline.community import CommunitySettings, parse_setting
from pipeline.errors import BadRequest
from pipeline.models import NEW_FRAMES, Platform, Poll, UserRef, VoteRules

OWNER = UserRef(platform=Platform.console, user_id="gina", display_name="Gina")
MOD = UserRef(platform=Platform.console, user_id="mo", display_name="Mo")


def member(name: str) -> UserRef:
    return UserRef(platform=Platform.console, user_id=name.lower(), display_name=name)


def poll(options: int = 3, kind: str = "frame") -> Poll:
    return Poll(id="frame-s0-g0", kind=kind, scene=0, generation=0, options=options,  # type: ignore[arg-type]
                opened_at=0, closes_at=100)


def vote(p: Poll, **choices: int) -> None:
    for name, choice in choices.items():
        votes.cast(p, OWNER if name == "Gina" else member(name), choice, at=1)


RULES = VoteRules(window_s=120, quorum=1, new_frames_threshold=2)


def test_majority_wins_and_says_so() -> None:
    p = poll()
    vote(p, Ann=2, Bob=2, Cy=1, Gina=3)
    r = votes.decide(p, RULES, OWNER)
    assert (r.choice, r.rule) == (2, "majority")
    assert r.explanation == "Frame 2 won with 2 of 4 votes."
    assert r.counts == {1: 1, 2: 2, 3: 1}


def test_a_vote_can_change_until_the_window_closes() -> None:
    p = poll()
    vote(p, Ann=1)
    assert votes.cast(p, member("Ann"), 3, at=2) is True
    assert votes.cast(p, member("Ann"), 3, at=3) is False  # same vote again: nothing changes
    assert votes.tally(p) == {1: 0, 2: 0, 3: 1}
    with pytest.raises(votes.VoteClosed, match="closed"):
        votes.cast(p, member("Ann"), 2, at=100)
    votes.close(p, votes.decide(p, RULES, OWNER), at=50)
    with pytest.raises(votes.VoteClosed):
        votes.cast(p, member("Bob"), 2, at=60)
    with pytest.raises(BadRequest, match="options 1 to 3"):
        votes.cast(poll(), member("Bob"), 4, at=1)


def test_tie_the_owner_decides() -> None:
    p = poll()
    vote(p, Ann=1, Bob=3, Gina=3, Cy=1)
    r = votes.decide(p, RULES, OWNER)
    assert (r.choice, r.rule) == (3, "tie_owner")
    assert r.explanation == "Frame 1 and frame 3 tied at 2 votes; Gina's vote decided: frame 3."


def test_tie_without_the_owner_falls_back_to_the_lowest_number() -> None:
    p = poll()
    vote(p, Ann=3, Bob=2, Gina=1, Cy=3, Dee=2)
    r = votes.decide(p, RULES, OWNER)
    assert (r.choice, r.rule) == (2, "tie_fallback")
    assert "voted for none of them" in r.explanation and "frame 2, wins" in r.explanation


def test_an_empty_window_keeps_candidate_one() -> None:
    r = votes.decide(poll(), RULES, OWNER)
    assert (r.choice, r.rule) == (1, "empty")
    assert r.explanation == "Nobody voted, so frame 1 is kept."
    t = votes.decide(poll(kind="text"), RULES, OWNER)
    assert t.explanation == "Nobody voted, so the current text is kept."


def test_quorum() -> None:
    rules = RULES.model_copy(update={"quorum": 3})
    p = poll()
    vote(p, Ann=2, Gina=3)
    r = votes.decide(p, rules, OWNER)
    assert (r.choice, r.rule) == (3, "quorum_owner")
    assert r.explanation.startswith("Only 2 of the 3 votes needed: Gina's vote decided")
    p = poll()
    vote(p, Ann=2, Bob=2)
    assert (votes.decide(p, rules, OWNER).choice, votes.decide(p, rules, OWNER).rule) == (
        1, "quorum_fallback")
    vote(p, Cy=3)
    assert votes.decide(p, rules, OWNER).rule == "majority"


def test_new_frames_is_a_vote_with_a_threshold() -> None:
    rules = RULES.model_copy(update={"new_frames_threshold": 3})
    p = poll()
    vote(p, Ann=NEW_FRAMES, Bob=NEW_FRAMES, Cy=1)
    assert not votes.new_frames_reached(p, rules)
    assert votes.decide(p, rules, OWNER).choice == 1  # two asks are not enough
    vote(p, Dee=NEW_FRAMES)
    r = votes.decide(p, rules, OWNER)
    assert (r.choice, r.rule) == (NEW_FRAMES, "new_frames")
    assert r.explanation.startswith("3 members asked for new frames (the threshold is 3)")
    with pytest.raises(BadRequest):
        votes.cast(poll(kind="text"), member("Ann"), NEW_FRAMES, at=1)


def test_overrides_and_early_closes_are_recorded() -> None:
    p = poll()
    vote(p, Ann=1, Bob=1)
    r = votes.override(p, 3, MOD, at=1_764_400_000)
    assert (r.choice, r.rule) == (3, "override")
    assert r.explanation == "Overridden by Mo: frame 3."
    assert p.overrides[0].by == MOD and p.overrides[0].choice == 3
    assert votes.override_lines(p) == ["⚖️ Mo overrode the vote at 07:06 UTC: frame 3"]
    q = poll()
    vote(q, Ann=2)
    r = votes.close_early(q, RULES, OWNER, MOD, at=1_764_400_000)
    assert (r.choice, r.rule) == (2, "majority")
    assert r.explanation == "Closed early by Mo. Frame 2 won with 1 of 1 votes."
    assert votes.override_lines(q) == ["⏹ Mo closed the vote early at 07:06 UTC"]


@pytest.mark.parametrize(("key", "raw", "field", "value"), [
    ("window", "2m", "window_s", 120),
    ("window", "90s", "window_s", 90),
    ("window", "24h", "window_s", 86_400),
    ("decides", "owner", "decides", "owner"),
    ("quota", "off", "quota_per_day", None),
    ("budget", "$7.50", "budget_month_usd", 7.5),
    ("cap", "off", "cap_story_usd", None),
    ("automake", "off", "auto_make", False),
    ("newframes", "3", "new_frames_threshold", 3),
])
def test_settings_are_read_from_words(key: str, raw: str, field: str, value: object) -> None:
    assert parse_setting(key, raw) == (field, value)
    CommunitySettings.model_validate({field: value})


@pytest.mark.parametrize(("key", "raw", "says"), [
    ("window", "5s", "window is how long a vote stays open: 30s to 24h"),
    ("window", "2 days", "30s to 24h"),
    ("quorum", "0", "quorum is the fewest votes that count: a whole number from 1 to 1000"),
    ("quota", "many", "1 to 100, or off"),
    ("budget", "-3", "budget per month in USD"),
    ("decides", "king", "owner, or vote"),
    ("automake", "maybe", "on or off"),
    ("colour", "red", "community settings are decides, window"),
])
def test_bad_settings_say_what_fits(key: str, raw: str, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        parse_setting(key, raw)
