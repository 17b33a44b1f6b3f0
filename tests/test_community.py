"""Community stories end to end in the terminal chat: real Valkey, the real arq worker, the
conversation core, several members played with /as."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bots.console.chat import ConsoleChat, member_ref
from bots.core.conversation import Conversation
from pipeline.community import Communities
from pipeline.models import ChatRef, Platform, Status, Story, UserRef
from pipeline.runtime import Runtime

GINA = UserRef(platform=Platform.console, user_id="gina", display_name="Gina")
ROOM = ChatRef(platform=Platform.console, chat_id="village-hall", is_group=True)


class Session:
    def __init__(self, chat: ConsoleChat, out: io.StringIO) -> None:
        self.chat = chat
        self.out = out
        self.mark = 0

    async def say(self, *lines: str) -> str:
        """Type lines; what the terminal printed meanwhile."""
        for line in lines:
            await self.chat.line(line)
        await self.chat.wait_rendered()
        return self.new()

    async def shows(self, needle: str, within: float = 10) -> str:
        """Everything printed until ``needle`` appears (status edits are paced, a few s)."""
        loop = asyncio.get_running_loop()
        deadline, seen = loop.time() + within, ""
        while needle not in seen:
            assert loop.time() < deadline, f"never shown: {needle!r}; shown: {seen!r}"
            await asyncio.sleep(0.1)
            seen += self.new()
        return seen

    def new(self) -> str:
        text = self.out.getvalue()[self.mark:]
        self.mark = len(self.out.getvalue())
        return text

    async def story(self) -> Story:
        found = await self.chat.current()
        assert found is not None
        return found

    async def until(self, check: object, within: float = 120) -> Story:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            s = await self.story()
            if check(s):  # type: ignore[operator]
                await self.chat.wait_rendered()
                return s
            assert loop.time() < deadline, f"story stuck at {s.status}"
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def hall(rt: Runtime) -> AsyncIterator[Session]:
    rt.settings = rt.settings.model_copy(update={"default_scenes": 3, "candidates": 2})
    conv = await Conversation.create(rt, Platform.console)
    out = io.StringIO()
    chat = ConsoleChat(rt, conv, out, GINA, ROOM)
    await chat.open()
    try:
        yield Session(chat, out)
    finally:
        await chat.close()


def all_polls_open(s: Story) -> bool:
    return s.status == Status.awaiting_approval and len(
        [p for p in s.polls if p.is_open]) == len(s.scenes)


async def test_a_whole_community_story_with_four_members_voting(hall: Session,
                                                                rt: Runtime) -> None:
    out = await hall.say("/setup")
    assert "✅ This group is now a Storyloom community." in out
    assert "decides: the community, by vote" in out and "window: 2 min per vote" in out
    out = await hall.say("/setup")
    assert "This group is already set up; here is how it stands." in out

    out = await hall.say("/as Ann", "settings window 10s")
    assert "Only the group's admins and moderators can change the community's settings." in out
    out = await hall.say("/as Gina", "/mod Ann", "/as Ann", "settings window 45s",
                         "settings quorum 2", "settings window 5s")
    assert "🛡 Ann is now a moderator. Moderators: Ann." in out
    assert "window: 45 s per vote" in out and "quorum: 2 votes" in out
    assert "Window is how long a vote stays open: 30s to 24h, e.g. 90s, 2m, 1h; '5s' is not." \
        in out

    await hall.say("/as Gina", "/story A lighthouse keeper befriends a stranded whale")
    story = await hall.until(all_polls_open)
    assert story.community == ROOM.key and story.rules is not None
    assert story.rules.window_s == 45 and story.rules.quorum == 2
    out = hall.new()
    assert "🗳 Scene 1 of 3, vote on its frames" in out
    assert "[2] frame 2 — 0 votes" in out
    assert " s left · 0 voted · vote 1 <n> | vote 1 new" in out

    # four members vote; Bob changes his mind before the window closes
    out = await hall.say("/as Bob", "vote 1 2", "vote 2 1", "vote 1 1", "vote 1 2",
                         "/as Cy", "vote 1 2", "pick 2 2",
                         "/as Dee", "vote 1 1", "vote 2 2", "vote 3 2",
                         "/as Gina", "vote 1 2", "vote 2 2")
    assert "🗳 Scene 1: your vote for frame 2 is counted (1 so far)." in out
    assert "🗳 Scene 1: your vote for frame 2 is counted (4 so far)." in out
    assert "[2] frame 2 — 3 votes" in out  # live counts on scene 1's message
    story = await hall.story()
    p1 = story.open_poll(0)
    assert p1 is not None and p1.votes == {"console:bob": 2, "console:cy": 2,
                                           "console:dee": 1, "console:gina": 2}

    # Ann (a moderator) closes the votes now; each result says which rule applied
    out = await hall.say("/as Ann", "close")
    assert "Scene 1: Closed early by Ann. Frame 2 won with 3 of 4 votes." in out
    assert "Scene 2: Closed early by Ann. Frame 2 won with 3 of 4 votes." in out
    assert ("Scene 3: Closed early by Ann. Only 1 of the 2 votes needed and Gina did not vote, "
            "so frame 1 is kept.") in out
    assert "⏹ Ann closed the vote early at" in out

    # automake: every scene decided, the video is made and goes to the gallery
    story = await hall.until(lambda s: s.status == Status.done, within=240)
    assert [sc.picked_frame() == sc.candidates[n] for sc, n in zip(story.scenes, (1, 1, 0),
                                                                     strict=True)] == [True] * 3
    await hall.chat.wait_rendered()
    await asyncio.sleep(0.5)
    await hall.chat.wait_rendered()
    out = hall.new()
    assert "🎬" in out
    assert "🏛 " in out and "by Gina · voters Bob, Cy, Dee, Gina" in out
    out = await hall.say("/as Bob", "idea the whale comes back with her calf", "gallery",
                         "budget")
    assert "💡 Added to the next episode of" in out and "(1 idea so far)" in out
    assert "🏛 Gallery" in out and story.title in out
    assert "Total $0.00; no monthly budget is set." in out
    community = await Communities(rt.redis).get(ROOM.key)
    assert community is not None and [g.story_id for g in community.gallery] == [story.id]

    # a vote after the window closed, and from someone who left the group
    out = await hall.say("vote 1 1", "/leave Bob", "vote 1 1")
    assert "This story is done; its votes are over." in out
    assert "Only members of this group can vote, and Bob is not one now." in out

    # the gallery's ⏭ Next episode starts the story that follows, from the members' ideas
    await hall.say("/as Bob", "next")
    follow = await hall.story()
    assert follow.id != story.id and follow.owner.display_name == "Bob"
    assert follow.idea.startswith(f"Next episode of “{story.title}”")
    assert follow.idea.endswith(": the whale comes back with her calf")


async def test_a_tie_the_owner_decides_and_an_empty_window_keeps_frame_one(
        hall: Session) -> None:
    await hall.say("/setup", "/story A fox learns to fly a kite")
    await hall.until(all_polls_open)
    out = await hall.say("/as Ann", "vote 1 1", "/as Bob", "vote 1 2",
                         "/as Cy", "vote 2 1", "/as Dee", "vote 2 2", "vote 3 new",
                         "/as Gina", "vote 1 2", "/as Eve", "vote 1 1")
    assert "🔄 You asked for new frames for scene 3 (1 of 2 needed)." in out
    out = await hall.say("/as Gina", "close 1", "close 2", "close 3")
    assert "Scene 1: Closed early by Gina. Frame 1 and frame 2 tied at 2 votes; Gina's vote " \
           "decided: frame 2." in out
    assert "Scene 2: Closed early by Gina. Frame 1 and frame 2 tied at 1 vote and Gina voted " \
           "for none of them, so the lowest-numbered, frame 1, wins." in out
    assert "Scene 3: Closed early by Gina. Nobody voted, so frame 1 is kept." in out
    story = await hall.story()
    assert [sc.picked == sc.candidates[i].id for sc, i in zip(story.scenes, (1, 0, 0),
                                                              strict=True)] == [True] * 3
    # a member cannot close or override: the refusal names who may
    out = await hall.say("/as Eve", "close")
    assert "Only the story's owner, the group's admins and moderators can close a vote " \
           "early." in out


async def test_new_frames_when_enough_members_ask(hall: Session) -> None:
    await hall.say("/setup", "/story A snail races a tortoise")
    story = await hall.until(all_polls_open)
    out = await hall.say("/as Ann", "new 2", "/as Bob", "new 2")
    assert "2 members asked for new frames (the threshold is 2): new frames are drawn." in out
    story = await hall.until(lambda s: s.scene(1).generation == 1 and all_polls_open(s))
    assert [p.id for p in story.polls if p.is_open] == [
        "frame-s0-g0", "frame-s2-g0", "frame-s1-g1"]


async def test_a_proposal_is_voted_accepted_and_credited(hall: Session) -> None:
    await hall.say("/setup", "/story A robot tends a rooftop garden")
    await hall.until(all_polls_open)
    out = await hall.say("/as Ann", "propose 2 The robot waters a single red tulip at dawn.",
                         "/as Bob", "textvote 2 2", "/as Cy", "textvote 2 2",
                         "/as Gina", "close 2")
    assert "Your text for scene 2 is proposal 1" in out
    assert "🗳 Scene 2 of 3, vote on its text" in out
    assert "Proposal 1 won with 2 of 2 votes." in out
    story = await hall.until(lambda s: s.scene(1).generation == 1 and all_polls_open(s))
    assert story.scene(1).narration == "The robot waters a single red tulip at dawn."
    assert [u.display_name for u in story.contributors] == ["Ann"]
    assert "Ann" in story.credits().contributors


async def test_quota_and_rate_limit_at_story(hall: Session, rt: Runtime) -> None:
    await hall.say("/setup", "settings quota 1")
    out = await hall.say("/as Ann", "/story A kite that hates wind", "/story Another one")
    assert "One story at a time, please: you can start another in" in out
    await rt.redis.delete(f"sl:community:rate:{ROOM.key}:console:ann")  # past the rate limit
    out = await hall.say("/story Another one")
    assert "You have started 1 of your 1 stories for today; you can start another at" in out
    assert "UTC (in 23 h 59 min)" in out or "UTC (in 24 h 0 min)" in out
    out = await hall.say("/as Bob", "/story Bob's own tale of a brave mouse")
    assert "!" not in out.split("»")[0]  # Bob has his own quota
    community = await Communities(rt.redis).get(ROOM.key)
    assert community is not None
    assert sorted(community.starts) == ["console:ann", "console:bob"]
    assert len(community.stories) == 2


@pytest.mark.parametrize("who", ["Ann"])
async def test_refusals_name_who_may(hall: Session, who: str) -> None:
    out = await hall.say(f"/as {who}", "/setup")
    assert "Only the group's admins can set this group up." in out
    out = await hall.say("/as Gina", "/setup", f"/as {who}", "/mod Bob")
    assert "Only the group's admins can name moderators." in out
    out = await hall.say("budget", "settings")
    assert "💰 Spending in" in out
    assert "⚙️ Settings for new stories here" in out and "⚙️ Community settings" in out
    out = await hall.say("/as Gina", "/setup")
    assert "This group is already set up" in out


def test_member_ref_is_stable() -> None:
    assert member_ref("Ann").key == "console:ann"


async def test_vote_buttons_and_status_lines(rt: Runtime) -> None:
    from bots.core import intents as it
    from pipeline.models import FrameCandidate, MediaRef, Poll, Scene, SpendHold, VoteRules

    conv = await Conversation.create(rt, Platform.console)
    story = Story(idea="A kite", owner=GINA, chat=ROOM, status=Status.awaiting_approval,
                  rules=VoteRules(window_s=60), community=ROOM.key)
    cands = [FrameCandidate(id=f"c{n}", media=MediaRef(key=f"k{n}", mime="image/png"), seed=n,
                            provider="offline") for n in range(3)]
    story.scenes = [Scene(index=0, shot="s", narration="A kite rises.", candidates=cands)]
    story.polls = [Poll(id="frame-s0-g0", scene=0, generation=0, options=3, closes_at=2e9,
                        votes={"console:ann": 2, "console:bob": 0})]
    view = conv.community.vote_view(story, story.polls[0])
    assert [b.label for b in view.buttons[0]] == ["1 · 0", "2 · 1", "3 · 0"]
    assert [b.label for b in view.buttons[1]] == ["🔄 New frames · 1/2", "✏️ Propose text",
                                                  "⏹ Close"]
    assert view.slot == "scene:0"  # the scene's one message: 1️⃣–3️⃣ reactions on it are votes
    intents = [conv.intent_of(ROOM, b.token) for row in view.buttons for b in row]
    assert intents[1] == it.PickFrame(story_id=story.id, scene=0, choice=2, generation=0)
    assert intents[3] == it.NewCandidates(story_id=story.id, scene=0, generation=0)
    assert intents[5] == it.CloseVote(story_id=story.id, scene=0)
    text_vote = conv.button(ROOM, "2", "w", story.id, 0, 2, 0)
    assert conv.intent_of(ROOM, text_vote.token) == it.CastVote(
        story_id=story.id, scene=0, choice=2, kind="text", generation=0)
    assert conv.status_view(story, None).line.startswith("🗳 The storyboard is up for a vote")

    story.status = Status.animating
    story.spend_hold = SpendHold(step="animate", estimate_usd=1.2, needed_usd=1.5,
                                 reason="it would bring this story to about $1.50, over the "
                                        "community's $1.00 cap per story")
    status = conv.status_view(story, None)
    assert (status.state, status.line) == (
        "waiting", "⏸ Animating waits for a moderator to approve about $1.20.")
    spend = conv.community.spend_view(story)
    assert spend is not None
    assert conv.intent_of(ROOM, spend.buttons[0][0].token) == it.ApproveSpend(
        story_id=story.id, cents=120)


async def test_a_cancelled_storys_votes_are_over(hall: Session, rt: Runtime) -> None:
    from pipeline.polls import close_job

    await hall.say("/setup", "settings starters storytellers", "/story A heron opens a bakery")
    story = await hall.until(all_polls_open)
    out = await hall.say("/as Bob", "/story Bob's tale", "/as Gina", "cancel", "/as Ann",
                         "vote 1 2")
    assert ("Only members with the storytellers role, the group's admins and moderators can "
            "start stories here.") in out
    assert "🛑 Cancelled" in out
    assert "This story is cancelled; its votes are over." in out
    assert await close_job(rt, story.id, story.polls[0].id) == "closed"
    story = await hall.story()
    assert story.status == Status.cancelled and story.scenes[0].picked is None
    assert story.polls[0].result is not None
    assert story.polls[0].result.explanation == "The story was cancelled before the vote closed."
    assert await close_job(rt, story.id, story.polls[0].id) == "already closed"


async def test_the_terminal_shows_a_held_spend_and_a_moderator_approves_it(
        hall: Session, rt: Runtime) -> None:
    from tests.test_community_money import priced

    priced(rt)  # images billed like a paid service, $0.025 each
    await hall.say("/setup", "settings decides owner", "settings cap 0.10", "/mod Ann",
                   "/story A crab paints the tide")
    story = await hall.until(lambda s: s.spend_hold is not None)
    out = hall.new()
    assert f"💰 “{story.title}” waits for a moderator: the storyboard step costs about $0.15" \
        in out
    # the status line says so too, at its next (paced) edit
    await hall.shows("⏸ Drawing the storyboard waits for a moderator to approve about $0.15.")
    out = await hall.say("/as Bob", "spend", "/as Ann", "spend")
    assert ("Only the group's admins and moderators (Ann) can approve the community's "
            "spending.") in out
    assert "✅ Approved $0.15 for the storyboard step." in out
    await hall.until(lambda s: s.status == Status.awaiting_approval)
    assert f"✅ Ann approved $0.15 for the storyboard step of “{story.title}”." in out + hall.new()
