"""The community side of the conversation: set-up, settings, moderators, votes, proposals,
ideas, the budget and its approvals, the gallery, and their neutral views.

:class:`CommunityDesk` is called from the one ``match`` in :mod:`bots.core.conversation`. The
rules live in ``pipeline`` (:mod:`pipeline.votes`, :mod:`pipeline.polls`,
:mod:`pipeline.community`); this module decides who may ask for what and says so in words.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bots.core import intents as it
from bots.core import permissions
from bots.core.views import AnyView, GalleryView, Keyboard, Text, VoteView
from pipeline import polls, votes
from pipeline.community import Communities, Community, month_of, settings_lines
from pipeline.errors import BadRequest
from pipeline.models import NEW_FRAMES, ChatRef, Poll, Status, Story, UserRef, VoteRules
from pipeline.prompts import clean_idea

if TYPE_CHECKING:
    from bots.core.conversation import AdminCheck, Conversation

log = logging.getLogger(__name__)

MemberCheck = Callable[[ChatRef, UserRef], Awaitable[bool]]
RolesOf = Callable[[ChatRef, UserRef], Awaitable[set[str]]]

# The platform's admin check for the intent being handled (set by Conversation.handle).
current_admin: contextvars.ContextVar[AdminCheck | None] = contextvars.ContextVar(
    "current_admin", default=None)

HOW_TO = (
    "How this community makes stories together:\n"
    "• /story <idea> starts a story (quota and budget below)\n"
    "• each scene's frames are put to a vote: press a number (or react 1️⃣–4️⃣); you can change "
    "your vote until the window closes; 🔄 asks for new frames\n"
    "• ✏️ on a scene proposes new text, voted the same way; /idea <text> adds a next-episode idea\n"
    "• the story's owner and moderators can close a vote early or override it\n"
    "• /budget shows the spend, /gallery the finished stories"
)


@dataclass
class StartGate:
    """What a community says about a story about to start."""

    refusal: list[AnyView] = field(default_factory=list)
    key: str | None = None
    rules: VoteRules | None = None


def _error(text: str) -> Text:
    return Text(text=text, error=True)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def time_left(closes_at: float, at: float) -> str:
    left = max(0, int(closes_at - at))
    if left == 0:
        return "closing now"
    minutes, seconds = divmod(left, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min left"
    return f"{minutes} min {seconds} s left" if minutes else f"{seconds} s left"


class CommunityDesk:
    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        self.rt = conv.rt
        self.communities = Communities(conv.rt.redis)
        self.member_check: MemberCheck | None = None  # the adapter's "is this a member?"
        self.roles_of: RolesOf | None = None  # the adapter's roles of a member
        self.key_for: Callable[[ChatRef], str] | None = None  # Discord: the guild

    def key(self, chat: ChatRef) -> str:
        return self.key_for(chat) if self.key_for is not None else chat.key

    async def of(self, chat: ChatRef) -> Community | None:
        if not chat.is_group:
            return None
        return await self.communities.get(self.key(chat))

    # ------------------------------------------------------------------ who is who

    @staticmethod
    def _is_mod(c: Community | None, actor: UserRef) -> bool:
        return c is not None and actor.key in c.moderators

    async def _is_admin(self, chat: ChatRef) -> bool:
        admin = current_admin.get()
        if admin is None or not chat.is_group:
            return False
        try:
            return await admin()
        except Exception:
            log.warning("admin check failed", extra={"chat": chat.key})
            return False

    def with_moderators(self, admin: AdminCheck | None, actor: UserRef, chat: ChatRef
                        ) -> AdminCheck | None:
        """The admin check the conversation uses, widened to the community's moderators."""
        current_admin.set(admin)
        if not chat.is_group:
            return admin

        async def check() -> bool:
            c = await self.of(chat)
            if self._is_mod(c, actor):
                return True
            return bool(admin is not None and await admin())

        return check

    async def _allowed(self, action: permissions.CommunityAction, what: str, actor: UserRef,
                       chat: ChatRef, c: Community | None, owner: UserRef | None = None) -> None:
        decision = permissions.on_community(
            action, is_admin=await self._is_admin(chat), is_moderator=self._is_mod(c, actor),
            is_owner=owner is not None and owner.key == actor.key)
        if decision != permissions.Decision.allow:
            mods = list(c.moderators.values()) if c is not None else []
            text = permissions.refusal(action, what, mods)
            raise BadRequest(text[:1].lower() + text[1:].rstrip("."))

    async def _member(self, chat: ChatRef, actor: UserRef) -> None:
        if self.member_check is not None and not await self.member_check(chat, actor):
            name = actor.display_name or actor.user_id
            raise BadRequest(f"only members of this group can vote, and {name} is not one now")

    async def _community(self, chat: ChatRef) -> Community:
        c = await self.of(chat)
        if c is None:
            raise BadRequest("this chat is not set up as a community yet: an admin sends /setup")
        return c

    # ------------------------------------------------------------------ starting a story

    async def before_start(self, idea: str, actor: UserRef, chat: ChatRef) -> StartGate:
        """Who may start, the member's quota and rate limit; the rules the story will keep."""
        c = await self.of(chat)
        if c is None:
            return StartGate()
        clean_idea(idea, self.rt.settings.max_idea_chars)  # a bad idea costs no quota
        roles = await self.roles_of(chat, actor) if self.roles_of is not None else set()
        if not permissions.may_start(c.settings.starters, is_admin=await self._is_admin(chat),
                                     is_moderator=self._is_mod(c, actor), roles=roles):
            return StartGate(refusal=[_error(
                f"Only members with the {c.settings.starters} role, the group's admins and "
                "moderators can start stories here.")])
        try:
            await self.communities.reserve_start(c.key, actor)
        except BadRequest as err:
            return StartGate(refusal=[_error(f"{_cap(str(err))}.")])
        return StartGate(key=c.key, rules=c.settings.rules())

    async def started(self, gate: StartGate, story: Story) -> None:
        if gate.key is not None:
            await self.communities.add_story(gate.key, story.id)

    # ------------------------------------------------------------------ story intents in vote mode

    async def _decider(self, story: Story, actor: UserRef, chat: ChatRef) -> bool:
        if actor.key == story.owner.key:
            return True
        c = await self.of(chat)
        return self._is_mod(c, actor) or await self._is_admin(chat)

    async def on_story_intent(self, intent: it.Intent, actor: UserRef, chat: ChatRef
                              ) -> list[AnyView] | None:
        """Picks, new frames and edits on a story decided by votes become votes and proposals;
        ``None`` leaves the intent to the conversation (a story not voted on, or a decider
        acting once the vote has closed)."""
        if not isinstance(intent, it.PickFrame | it.NewCandidates | it.EditScene):
            return None
        story = await self.conv._story_here(intent.story_id, chat)
        if not story.voting:
            return None
        sc = story.scene(intent.scene)
        if intent.generation is not None and sc.generation != intent.generation:
            return [_error("Those frames were replaced; vote on the new ones.")]
        if isinstance(intent, it.EditScene):
            if await self._decider(story, actor, chat):
                return None
            await self._member(chat, actor)
            if intent.text is None:
                await self.conv._set_pending_edit(chat, actor, story.id, intent.scene,
                                                  sc.generation)
                name = actor.display_name or "you"
                return [Text(text=f"✏️ {name}, send your text for scene {intent.scene + 1} as a "
                                  "reply to this message; the group will vote on it.\n"
                                  f"Now: {sc.narration[:300]}", ask_reply=True,
                             story_id=story.id)]
            return await self._propose(it.Propose(story_id=story.id, scene=intent.scene,
                                                  text=intent.text), actor, chat)
        if story.open_poll(intent.scene) is None and await self._decider(story, actor, chat):
            return None
        choice = intent.choice if isinstance(intent, it.PickFrame) else NEW_FRAMES
        return await self._vote(it.CastVote(story_id=story.id, scene=intent.scene, choice=choice),
                                actor, chat)

    async def _vote(self, intent: it.CastVote, actor: UserRef, chat: ChatRef) -> list[AnyView]:
        story = await self.conv._story_here(intent.story_id, chat)
        await self._member(chat, actor)
        if intent.generation is not None and story.scene(intent.scene).generation != \
                intent.generation:
            return [_error("Those frames were replaced; vote on the new ones.")]
        story, changed = await polls.cast_vote(self.rt, story.id, intent.scene, actor,
                                               intent.choice, intent.kind)
        k = intent.scene + 1
        p = next((x for x in reversed(story.polls) if x.scene == intent.scene
                  and x.kind == intent.kind), None)
        if p is not None and not p.is_open and p.result is not None:
            return [Text(text=f"🗳 Scene {k}: {p.result.explanation}")]
        if intent.choice == NEW_FRAMES:
            rules = story.rules or VoteRules()
            asked = votes.new_frames_votes(p) if p is not None else 0
            return [Text(text=f"🔄 You asked for new frames for scene {k} "
                              f"({asked} of {rules.new_frames_threshold} needed).")]
        what = votes.label(p, intent.choice) if p is not None else f"option {intent.choice}"
        if not changed:
            return [Text(text=f"🗳 Your vote for {what} on scene {k} was already counted.")]
        total = len(p.votes) if p is not None else 0
        return [Text(text=f"🗳 Scene {k}: your vote for {what} is counted ({total} so far). "
                          "You can change it until the vote closes.")]

    async def _propose(self, intent: it.Propose, actor: UserRef, chat: ChatRef
                       ) -> list[AnyView]:
        story = await self.conv._story_here(intent.story_id, chat)
        await self._member(chat, actor)
        story, p = await polls.propose(self.rt, story.id, intent.scene, actor, intent.text)
        return [Text(text=f"✏️ Your text for scene {intent.scene + 1} is proposal "
                          f"{p.options - 1}; the group votes on it until "
                          f"{datetime.fromtimestamp(p.closes_at, UTC).strftime('%H:%M:%S UTC')}.")]

    # ------------------------------------------------------------------ the community intents

    async def handle(self, intent: it.Intent, actor: UserRef, chat: ChatRef
                     ) -> list[AnyView]:
        match intent:
            case it.Setup():
                return await self._setup(intent, actor, chat)
            case it.CommunitySettings(key=None):
                c = await self._community(chat)
                return [self.settings_view(c)]
            case it.CommunitySettings(key=str(key), value=value):
                c = await self._community(chat)
                await self._allowed("settings", "change the community's settings", actor,
                                    chat, c)
                c = await self.communities.set_setting(c.key, key, value or "")
                released = []
                if key.lower() in ("budget", "cap"):
                    released = await polls.recheck_holds(self.rt, c.key)
                view = self.settings_view(c)
                if released:
                    view = view.model_copy(update={
                        "text": view.text + f"\n{len(released)} waiting stor"
                                            f"{'y' if len(released) == 1 else 'ies'} now fit "
                                            "the budget and go on."})
                return [view]
            case it.Mod(user=user) | it.Unmod(user=user):
                c = await self._community(chat)
                await self._allowed("moderators", "name moderators", actor, chat, c)
                on = isinstance(intent, it.Mod)
                c = await self.communities.set_moderator(c.key, user, on)
                name = user.display_name or user.user_id
                mods = ", ".join(c.moderators.values()) or "none"
                verb = "is now a moderator" if on else "is no longer a moderator"
                return [Text(text=f"🛡 {name} {verb}. Moderators: {mods}.")]
            case it.CastVote():
                return await self._vote(intent, actor, chat)
            case it.CloseVote(story_id=sid, scene=scene):
                story = await self.conv._story_here(sid, chat)
                maybe = await self.of(chat)
                await self._allowed("close", "close a vote early", actor, chat, maybe,
                                    story.owner)
                closed = await polls.close_open(self.rt, sid, actor, scene)
                if not closed:
                    return [Text(text="No vote is open on that story.")]
                lines = [f"Scene {p.scene + 1}: {p.result.explanation}" for p in closed
                         if p.result is not None]
                return [Text(text="⏹ " + "\n".join(lines))]
            case it.Override(story_id=sid, scene=scene, choice=choice, kind=kind):
                story = await self.conv._story_here(sid, chat)
                maybe = await self.of(chat)
                await self._allowed("override", "override a vote", actor, chat, maybe,
                                    story.owner)
                story = await polls.override_vote(self.rt, sid, scene, choice, actor, kind)
                p = next(x for x in reversed(story.polls) if x.scene == scene and x.kind == kind)
                return [Text(text=f"⚖️ Scene {scene + 1}: "
                                  f"{p.result.explanation if p.result else 'decided'}")]
            case it.Propose():
                return await self._propose(intent, actor, chat)
            case it.NextEpisodeIdea(text=text, story_id=sid):
                if sid is None:
                    ids = await self.rt.store.by_chat(chat, 1)
                    if not ids:
                        return [_error("There is no story here yet to add an idea to.")]
                    sid = ids[0]
                story = await self.conv._story_here(sid, chat)
                await self._member(chat, actor)
                story = await polls.add_idea(self.rt, story.id, actor, text)
                return [Text(text=f"💡 Added to the next episode of “{story.title or 'this story'}"
                                  f"” ({len(story.next_ideas)} idea"
                                  f"{'s' if len(story.next_ideas) != 1 else ''} so far).")]
            case it.Budget():
                return [self.budget_view(await self._community(chat))]
            case it.Gallery():
                c = await self._community(chat)
                return [self.gallery_list(c)]
            case it.NextEpisode(story_id=sid):
                story = await self.conv._story_here(sid, chat)
                idea = next_episode_idea(story)[: self.rt.settings.max_idea_chars]
                return await self.conv._start(idea, actor, chat)
            case it.ApproveSpend(story_id=sid, cents=amount):
                story = await self.conv._story_here(sid, chat)
                maybe = await self.of(chat)
                await self._allowed("approve_spend", "approve the community's spending", actor,
                                    chat, maybe)
                try:
                    story = await polls.approve_spend(self.rt, sid, actor, amount)
                except polls.AlreadyDone as err:
                    return [Text(text=f"{_cap(str(err))}.")]
                last = story.approvals[-1]
                return [Text(text=f"✅ Approved ${last.usd:.2f} for the {last.step} step.")]
        return [_error("I did not understand that. Try /help.")]

    async def _setup(self, intent: it.Setup, actor: UserRef, chat: ChatRef) -> list[AnyView]:
        if not chat.is_group:
            return [_error("/setup is for groups and servers: add me to one and send it there.")]
        c = await self.of(chat)
        await self._allowed("setup", "set this group up", actor, chat, c)
        c, created = await self.communities.setup(
            self.key(chat), actor, stories_channel=intent.stories_channel,
            gallery_channel=intent.gallery_channel, moderator_role=intent.moderator_role)
        head = "✅ This group is now a Storyloom community." if created else \
            "This group is already set up; here is how it stands."
        lines = [head, ""]
        if c.stories_channel:
            lines.append(f"Stories: {c.stories_channel}")
        if c.gallery_channel:
            lines.append(f"Gallery: {c.gallery_channel}")
        lines.append("Moderators: " + (", ".join(c.moderators.values()) or
                                       "the admins (name more with /mod @member)"))
        lines += ["", *settings_lines(c.settings)]
        if intent.missing:
            lines += ["", "⚠️ I still need: " + "; ".join(intent.missing)]
        lines += ["", HOW_TO]
        return [Text(title="🏘 Community set-up", text="\n".join(lines))]

    # ------------------------------------------------------------------ views

    async def settings_of(self, chat: ChatRef) -> list[AnyView]:
        """The community's settings, under the chat's story settings in /settings."""
        c = await self.of(chat)
        return [] if c is None else [self.settings_view(c)]

    def settings_view(self, c: Community) -> Text:
        text = "\n".join(settings_lines(c.settings))
        text += "\nChange one with /settings <name> <value>, e.g. /settings window 5m."
        return Text(title="⚙️ Community settings", text=text)

    def budget_view(self, c: Community, at: float | None = None) -> Text:
        month = month_of(time.time() if at is None else at)
        spent = c.spent(month)
        by_member = sorted(c.spent_by_member(month).values(), key=lambda x: -x[1])
        lines = [f"{name}: ${usd:.2f}" for name, usd in by_member] or ["nothing spent yet"]
        budget = c.settings.budget_month_usd
        if budget is None:
            lines.append(f"Total ${spent:.2f}; no monthly budget is set.")
        else:
            lines.append(f"Total ${spent:.2f} of ${budget:.2f}; ${max(budget - spent, 0):.2f} "
                         "left this month.")
        if c.settings.cap_story_usd is not None:
            lines.append(f"A story over ${c.settings.cap_story_usd:.2f} waits for a moderator.")
        return Text(title=f"💰 Spending in {month}", text="\n".join(lines))

    def gallery_list(self, c: Community) -> GalleryView:
        items = list(reversed(c.gallery[-10:]))
        return GalleryView(title="🏛 Gallery" if items else "🏛 The gallery is empty so far",
                           items=items)

    def gallery_entry(self, c: Community, story_id: str) -> GalleryView | None:
        g = next((x for x in c.gallery if x.story_id == story_id), None)
        if g is None:
            return None
        chat = ChatRef.model_validate({"platform": c.key.split(":", 1)[0],
                                       "chat_id": c.key.split(":", 1)[1], "is_group": True})
        buttons: Keyboard = [[self.conv.button(chat, "🔀 Remix", "x", story_id),
                              self.conv.button(chat, "⏭ Next episode", "y", story_id)]]
        return GalleryView(story_id=story_id, slot="gallery", title=f"🏛 {g.title}",
                           items=[g], buttons=buttons)

    def gallery_chat(self, c: Community, story: Story) -> ChatRef:
        if c.gallery_channel:
            return story.chat.model_copy(update={"chat_id": c.gallery_channel,
                                                 "thread_id": None})
        return story.chat

    def vote_view(self, story: Story, p: Poll) -> VoteView:
        sc = story.scene(p.scene)
        chat = story.chat
        rules = story.rules or VoteRules()
        counts = votes.tally(p)
        buttons: Keyboard = []
        if p.kind == "frame":
            options = [f"frame {n}" for n in range(1, p.options + 1)]
            narration = sc.narration
        else:
            mine = [x for x in story.proposals if x.scene == p.scene
                    and x.generation == p.generation]
            options = ["keep: " + sc.narration[:120]] + [
                f"{x.by.display_name or x.by.user_id}: {x.text[:200]}" for x in mine]
            narration = sc.narration
        if p.is_open:
            code = "p" if p.kind == "frame" else "w"
            row = [self.conv.button(chat, f"{n} · {counts[n]}", code, story.id, p.scene, n,
                                    p.generation) for n in range(1, p.options + 1)]
            buttons = [row[i: i + 4] for i in range(0, len(row), 4)]
            tools = [self.conv.button(chat, "⏹ Close", "z", story.id, p.scene)]
            if p.kind == "frame":
                tools.insert(0, self.conv.button(
                    chat, f"🔄 New frames · {votes.new_frames_votes(p)}/"
                          f"{rules.new_frames_threshold}", "n", story.id, p.scene, p.generation))
                tools.insert(1, self.conv.button(chat, "✏️ Propose text", "e", story.id,
                                                 p.scene, p.generation))
            buttons.append(tools)
        # the current frame vote is the scene's own message; an older one keeps its own
        current = p.kind == "frame" and p.generation == story.scene(p.scene).generation
        slot = f"scene:{p.scene}" if current else f"vote:{p.id}"
        return VoteView(
            story_id=story.id, slot=slot, poll=p.id, vote_kind=p.kind, scene=p.scene,
            scenes=len(story.scenes), generation=p.generation, narration=narration,
            options=options, counts=[counts[n] for n in range(1, p.options + 1)],
            new_frames=votes.new_frames_votes(p), new_frames_needed=rules.new_frames_threshold,
            voters=len(p.votes), closes_at=p.closes_at, state="open" if p.is_open else "closed",
            result=p.result.explanation if p.result else "", rule=p.result.rule if p.result else "",
            overrides=votes.override_lines(p),
            buttons=buttons)

    def scene_views(self, story: Story, index: int) -> list[AnyView]:
        """What shows one scene's decision: its latest votes on a voted story, else the pick
        buttons."""
        if not story.voting:
            return [self.conv.scene_view(story, index)]
        out: list[AnyView] = []
        for kind in ("frame", "text"):
            p = next((x for x in reversed(story.polls) if x.scene == index and x.kind == kind),
                     None)
            if p is not None:
                out.append(self.vote_view(story, p))
        if not any(isinstance(v, VoteView) and v.vote_kind == "frame"
                   and v.generation == story.scene(index).generation for v in out) and \
                story.scene(index).candidates:
            out.insert(0, self.conv.scene_view(story, index))
        return out

    def spend_view(self, story: Story) -> Text | None:
        title = story.title or story.idea[:60]
        h = story.spend_hold
        if h is not None:
            amount = f"${h.estimate_usd:.2f}"
            text = (f"💰 “{title}” waits for a moderator: the {h.step} step costs about "
                    f"{amount}, and {h.reason}.")
            button = self.conv.button(story.chat, f"✅ Approve {amount}", "m", story.id,
                                      polls.cents(h.estimate_usd))
            return Text(story_id=story.id, slot="spend", text=text, buttons=[[button]])
        if story.approvals:
            a = story.approvals[-1]
            return Text(story_id=story.id, slot="spend",
                        text=f"✅ {a.by.display_name or a.by.user_id} approved ${a.usd:.2f} for "
                             f"the {a.step} step of “{title}”.")
        return None

    def intent_of(self, code: str, story_id: str, args: tuple[int, ...]) -> it.Intent | None:
        """The community's buttons (the conversation decodes and checks the token)."""
        def arg(n: int) -> int:
            return args[n] if n < len(args) else 0

        match code:
            case "w":
                return it.CastVote(story_id=story_id, scene=arg(0), choice=max(1, arg(1)),
                                   kind="text", generation=arg(2))
            case "z":
                return it.CloseVote(story_id=story_id, scene=arg(0))
            case "m":
                return it.ApproveSpend(story_id=story_id, cents=arg(0))
            case "y":
                return it.NextEpisode(story_id=story_id)
        return None


def next_episode_idea(story: Story) -> str:
    """The idea of the episode after ``story``: its title and logline, and the members' ideas."""
    head = f"Next episode of “{story.title or story.idea[:80]}”"
    if story.logline:
        head += f" ({story.logline[:200]})"
    ideas = "; ".join(i.text for i in story.next_ideas[-5:])
    return f"{head}: {ideas}" if ideas else f"{head}: what happens next"


def waiting_for_people(story: Story) -> bool:
    """A community story waits for people while a vote is open or a spend is held."""
    if story.spend_hold is not None:
        return True
    return story.status in (Status.awaiting_approval, Status.storyboarding) and any(
        p.is_open for p in story.polls)
