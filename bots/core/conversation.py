"""The conversation: intents in, pipeline calls, neutral views out.

:class:`Conversation` answers one intent from one person in one chat with a list of views (a reply,
an error, a short toast for a button press). The event pump (``bots.core.pump``) shows each
story's lasting messages (status, script, storyboard, video) from the event stream.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from bots.core import intents as it
from bots.core import permissions
from bots.core.community import CommunityDesk
from bots.core.delivery import Delivery
from bots.core.tokens import Action, BadToken, TokenSigner, load_secret
from bots.core.views import (
    AlbumView,
    AnyView,
    ApproveView,
    Button,
    Keyboard,
    SceneView,
    ScriptView,
    StatusView,
    Text,
    VideoView,
)
from pipeline.api import StoryAPI
from pipeline.errors import (
    BadIdea,
    BadRequest,
    ConflictError,
    CorruptStory,
    IllegalTransition,
    StoryloomError,
    StoryNotFound,
)
from pipeline.events import StoryEvent
from pipeline.models import ChatRef, Platform, Status, Story, StoryOptions, UserRef
from pipeline.prompts import STYLES
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

AdminCheck = Callable[[], Awaitable[bool]]

# The id of the story that the current ``Conversation.handle`` call started, for an adapter that
# links to it ("your story has started in <#thread>"). Every platform event is handled in its own
# task, and a task sees only its own value, so two commands at once never see each other's story.
started_story: ContextVar[str | None] = ContextVar("started_story", default=None)

STEP_LABELS = {
    "script": "Writing the script",
    "cast": "Drawing the characters",
    "storyboard": "Drawing the storyboard",
    "animate": "Animating",
    "voice": "Recording the narration",
    "assemble": "Putting the video together",
}
STATUS_STEP = {
    Status.drafting: "script",
    Status.casting: "cast",
    Status.storyboarding: "storyboard",
    Status.animating: "animate",
    Status.voicing: "voice",
    Status.assembling: "assemble",
}
PER_SCENE = frozenset({"storyboard", "animate", "voice"})
BASE_S = {"script": 4.0, "cast": 6.0, "storyboard": 3.0, "animate": 3.0, "voice": 1.5,
          "assemble": 12.0}
PHASES = (("script", "cast", "storyboard"), ("animate", "voice", "assemble"))

CHOICES: dict[str, list[str]] = {
    "aspect": ["9:16", "16:9", "1:1"],
    "scenes": ["3", "4", "5", "6", "8", "10", "12"],
    "style": list(STYLES),
    "voice": ["joe"],
    # "auto": each story in its idea's own language (pipeline.language).
    "language": ["auto", "en", "es", "fr", "de", "it", "pt", "ru", "zh", "ja", "ar", "hi"],
}
SETTING_KEYS = ("aspect", "scenes", "style", "voice", "language")
REGEN_WHAT = ("frame", "clip", "voice")
SCENE_MAX = 600  # the longest scene text pipeline.api.edit_scene accepts
KEYCAPS = tuple(f"{n}\ufe0f\u20e3" for n in range(1, 10))  # 1️⃣ … 9️⃣

HELP = (
    "Send me a story idea and I will write a script, draw a storyboard you pick frames from, "
    "animate it, narrate it and post the video here.\n\n"
    "/story <idea> — start a story (in a private chat, just type the idea)\n"
    "/settings — aspect, number of scenes, style and voice for new stories\n"
    "/status [id] — how the latest story is doing\n"
    "/mystories — your stories\n"
    "/cancel [id] — stop a story\n"
    "/help — this message"
)


# --------------------------------------------------------------------------- pure helpers


def progress_bar(fraction: float, width: int = 10) -> str:
    fraction = min(1.0, max(0.0, fraction))
    full = round(fraction * width)
    return "█" * full + "░" * (width - full)


def eta_seconds(step: str, current: int, total: int, elapsed_s: float, scenes: int) -> float | None:
    """Seconds left until the next thing a person does (the storyboard, or the video)."""
    phase = next((p for p in PHASES if step in p), None)
    if phase is None:
        return None

    def cost(s: str) -> float:
        return BASE_S[s] * (max(1, scenes) if s in PER_SCENE else 1)

    if current > 0 and total > 0 and elapsed_s > 0:
        here = elapsed_s / current * max(0, total - current)
    else:
        here = max(0.0, cost(step) - elapsed_s)
    later = sum(cost(s) for s in phase[phase.index(step) + 1 :])
    return round(here + later, 1)


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 90:
        return f"about {round(seconds / 5) * 5:.0f} s left"
    return f"about {round(seconds / 60):.0f} min left"


def status_due(last_shown: float | None, now: float, interval_s: float) -> bool:
    """Whether a status edit may go out now (progress edits are throttled per story)."""
    return last_shown is None or now - last_shown >= interval_s


def has_words(text: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def sentence(text: str) -> str:
    """``text`` as one sentence: a capital first letter and one closing full stop (a text that
    already ends a sentence keeps its own ending)."""
    text = text.strip()
    if not text:
        return text
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def approve_text(view: ApproveView, bold: Callable[[str], str]) -> str:
    """The approval message; the adapter says how to make text bold in its markup."""
    if view.state == "approved":
        return f"✅ {bold('Approved')} — the video is on its way."
    if view.state == "ready":
        return f"🎬 Every scene has a frame. Press {bold('✅ Make the video')} when you are ready."
    return (f"🎬 {view.picked} of {view.scenes} scenes picked. Pick a frame for every scene to "
            "make the video.")


def status_lines(view: StatusView) -> list[str]:
    """The status as plain lines (the adapters add their markup)."""
    lines = [view.line]
    if view.state == "working" and view.total:
        lines.append(f"{view.bar} {view.current}/{view.total}")
    if view.state == "working" and view.eta_s is not None:
        lines.append(eta_text(view.eta_s))
    if view.error:
        lines.append(view.error)
    if view.cost_usd > 0 or view.budget_usd is not None:
        spent = f"💰 ${view.cost_usd:.2f} spent"
        if view.budget_usd is not None:
            spent += f" of a ${view.budget_usd:.2f} budget"
        lines.append(spent)
    return lines


# --------------------------------------------------------------------------- the conversation


class Conversation:
    def __init__(
        self,
        rt: Runtime,
        platform: Platform,
        secret: bytes,
        *,
        size_cap_bytes: int | None = None,
        voices: list[str] | None = None,
    ) -> None:
        self.rt = rt
        self.api = StoryAPI(rt)
        self.platform = platform
        self.tokens = TokenSigner(secret)
        self.delivery = Delivery(rt.redis, platform)
        self.size_cap_bytes = size_cap_bytes
        # a platform whose upload limit differs per chat (Discord servers) sets this
        self.size_cap_for: Callable[[ChatRef], int | None] | None = None
        self.choices = {**CHOICES, "voice": voices or [rt.settings.default_voice]}
        self._prefix = f"sl:bot:{platform.value}:"
        self.community = CommunityDesk(self)

    @classmethod
    async def create(
        cls, rt: Runtime, platform: Platform, *, size_cap_bytes: int | None = None
    ) -> Conversation:
        s = rt.settings
        secret = await load_secret(rt.redis, s.bot_secret.get_secret_value())
        voices = [v.strip() for v in s.bot_voices.split(",") if v.strip()]
        return cls(rt, platform, secret, size_cap_bytes=size_cap_bytes, voices=voices)

    @property
    def _redis(self) -> Any:
        """The Redis client, untyped: redis-py's stubs type every reply as ``T | Awaitable[T]``."""
        return self.rt.redis

    # ------------------------------------------------------------------ tokens and buttons

    def button(self, chat: ChatRef, label: str, code: str, story_id: str = "",
               *args: int) -> Button:
        return Button(label=label, token=self.tokens.sign(chat.key, Action(code, story_id, args)))

    def intent_of(self, chat: ChatRef, token: str) -> it.Intent:
        """The intent a button token stands for; raises :class:`BadToken` if it is not ours."""
        a = self.tokens.verify(chat.key, token)
        sid = a.story_id
        match a.code:
            case "p":
                return it.PickFrame(story_id=sid, scene=a.arg(0), choice=max(1, a.arg(1)),
                                    generation=a.arg(2))
            case "n":
                return it.NewCandidates(story_id=sid, scene=a.arg(0), generation=a.arg(1))
            case "e":
                return it.EditScene(story_id=sid, scene=a.arg(0), generation=a.arg(1))
            case "a":
                return it.Approve(story_id=sid)
            case "c":
                return it.Cancel(story_id=sid)
            case "r":
                return it.Retry(story_id=sid)
            case "g":
                what = REGEN_WHAT[min(a.arg(1, 1), len(REGEN_WHAT) - 1)]
                return it.Regenerate(story_id=sid, scene=a.arg(0), what=what)
            case "v":
                voices = self.choices["voice"]
                if not a.args:
                    return it.ChangeVoice(story_id=sid)
                if a.arg(0) >= len(voices):
                    raise BadToken("unknown voice")
                return it.ChangeVoice(story_id=sid, voice=voices[a.arg(0)])
            case "x":
                return it.Remix(story_id=sid)
            case "o":
                if a.arg(0) >= len(SETTING_KEYS):
                    raise BadToken("unknown setting")
                key = SETTING_KEYS[a.arg(0)]
                values = self.choices[key]
                if a.arg(1) >= len(values):
                    raise BadToken("unknown value")
                return it.ChangeSettings(key=key, value=values[a.arg(1)])
            case "s":
                return it.ShowStatus(story_id=sid)
        community = self.community.intent_of(a.code, sid, a.args)
        if community is not None:
            return community
        raise BadToken("unknown action")

    async def press(self, token: str, actor: UserRef, chat: ChatRef,
                    admin: AdminCheck | None = None) -> list[AnyView]:
        """A button press: every answer that is a plain notice becomes a toast."""
        try:
            intent = self.intent_of(chat, token)
        except BadToken:
            log.warning("refused a button token", extra={"chat": chat.key})
            return [Text(text="This button is not valid here.", error=True, toast=True)]
        views = await self.handle(intent, actor, chat, admin)
        return [v.model_copy(update={"toast": True}) if _toastable(v) else v for v in views]

    async def react(self, chat: ChatRef, ref: str, emoji: str, actor: UserRef,
                    admin: AdminCheck | None = None) -> list[AnyView]:
        """A reaction on one of the story's messages: 👍 on a candidate picks it, 🔄 or 👎 redraws
        (Telegram offers no 🔄 reaction, so 👎 is its way to ask for new frames)."""
        link = await self.delivery.lookup(chat, ref)
        if link is None or not link.slot.startswith(("album:", "scene:")):
            return []
        parts = link.slot.split(":")
        scene = int(parts[1])
        if len(parts) > 2:
            gen = int(parts[2])
        else:  # a scene's message shows its current generation (a redraw edits it in place)
            try:
                gen = (await self.api.get(link.story_id)).scene(scene).generation
            except StoryloomError:
                return []
        if emoji in ("👍", "❤", "❤️", "🔥") and link.index:
            intent: it.Intent = it.PickFrame(story_id=link.story_id, scene=scene,
                                             choice=link.index, generation=gen)
        elif emoji in KEYCAPS:  # 1️⃣ 2️⃣ … on a message that shows the whole scene
            intent = it.PickFrame(story_id=link.story_id, scene=scene,
                                  choice=KEYCAPS.index(emoji) + 1, generation=gen)
        elif emoji in ("🔄", "🔁", "👎"):
            intent = it.NewCandidates(story_id=link.story_id, scene=scene, generation=gen)
        else:
            return []
        views = await self.handle(intent, actor, chat, admin)
        # A reaction has no toast to answer with; only refusals are worth a message.
        return [v for v in views if isinstance(v, Text) and v.error and not v.toast]

    # ------------------------------------------------------------------ intents

    async def handle(self, intent: it.Intent, actor: UserRef, chat: ChatRef,
                     admin: AdminCheck | None = None) -> list[AnyView]:
        admin = self.community.with_moderators(admin, actor, chat)
        return await self._guarded(self._dispatch(intent, actor, chat, admin))

    async def scene_text(self, intent: it.EditScene, actor: UserRef, chat: ChatRef,
                         admin: AdminCheck | None = None) -> str | list[AnyView]:
        """For platforms with forms (Discord's modals): the scene's current text when ``actor``
        may rewrite it now, else the refusal to show. Nothing is changed."""
        found: list[str] = []

        async def check() -> list[AnyView]:
            story = await self._decide(intent.story_id, actor, chat, admin)
            sc = story.scene(intent.scene)
            if intent.generation is not None and sc.generation != intent.generation:
                return [_error("That scene was already changed.")]
            if story.status not in (Status.awaiting_approval, Status.done):
                return [_error("A scene can be edited once the storyboard is ready.")]
            found.append(sc.narration)
            return []

        views = await self._guarded(check())
        return found[0] if found else views

    async def _guarded(self, work: Awaitable[list[AnyView]]) -> list[AnyView]:
        """Run ``work``, turning the pipeline's refusals into error views."""
        try:
            return await work
        except (StoryNotFound, CorruptStory):
            return [_error("There is no such story in this chat.")]
        except (BadIdea, BadRequest, IllegalTransition) as err:
            return [_error(sentence(str(err)))]
        except ConflictError:
            return [_error("That story is busy right now; try again in a moment.")]

    async def _dispatch(self, intent: it.Intent, actor: UserRef, chat: ChatRef,
                        admin: AdminCheck | None) -> list[AnyView]:
        match intent:
            case it.Welcome():
                return [Text(title="Storyloom", text=HELP)]
            case it.Help():
                return [Text(title="How it works", text=HELP)]
            case it.StartStory(idea=idea):
                return await self._start(idea, actor, chat, intent)
            case it.FreeText(text=text):
                pending = await self._take_pending_edit(chat, actor)
                if pending is not None:
                    sid, scene, gen = pending
                    edit = it.EditScene(story_id=sid, scene=scene, text=text, generation=gen)
                    return await self._dispatch(edit, actor, chat, admin)
                return await self._start(text, actor, chat)
            case it.NotText():
                if await self._peek_pending_edit(chat, actor):
                    return [_error("Send the new scene text as words, please.")]
                return [_error("I make stories from text: send your idea as a sentence, "
                               "e.g. /story a lighthouse keeper befriends a stranded whale")]
            case it.UnknownCommand(command=cmd):
                return [_error(f"I don't know {shorten(cmd, 40)}. Try /help.")]
            case it.PickFrame() | it.NewCandidates() | it.EditScene() if (
                voted := await self.community.on_story_intent(intent, actor, chat)
            ) is not None:
                return voted
            case (it.Setup() | it.CommunitySettings() | it.CastVote() | it.CloseVote()
                  | it.Override() | it.Propose() | it.NextEpisodeIdea() | it.Mod() | it.Unmod()
                  | it.Budget() | it.Gallery() | it.ApproveSpend() | it.NextEpisode()):
                return await self.community.handle(intent, actor, chat)
            case it.PickFrame():
                return await self._pick(intent, actor, chat, admin)
            case it.NewCandidates(story_id=sid, scene=scene, generation=gen):
                story = await self._decide(sid, actor, chat, admin)
                if gen is not None and story.scene(scene).generation != gen:
                    return [_error("Those frames were already replaced.")]
                await self.api.new_candidates(sid, scene)
                return [Text(text=f"🔄 Drawing new frames for scene {scene + 1}…")]
            case it.EditScene(story_id=sid, scene=scene, text=None, generation=gen):
                story = await self._decide(sid, actor, chat, admin)
                sc = story.scene(scene)
                if gen is not None and sc.generation != gen:
                    return [_error("That scene was already changed.")]
                if story.status not in (Status.awaiting_approval, Status.done):
                    return [_error("A scene can be edited once the storyboard is ready.")]
                await self._set_pending_edit(chat, actor, sid, scene, sc.generation)
                name = actor.display_name or "you"
                return [Text(text=f"✏️ {name}, send the new text for scene {scene + 1} as a reply "
                                  f"to this message.\nNow: {shorten(sc.narration, 300)}",
                             ask_reply=True, story_id=sid)]
            case it.EditScene(story_id=sid, scene=scene, text=str(text), generation=gen):
                story = await self._decide(sid, actor, chat, admin)
                if gen is not None and story.scene(scene).generation != gen:
                    return [_error("That scene was already changed.")]
                if not has_words(text):
                    return [_error("The new scene text is empty; the scene is unchanged.")]
                if len(text.strip()) > SCENE_MAX:
                    return [_error(f"The new scene text has {len(text.strip())} characters; "
                                   f"keep it under {SCENE_MAX}. The scene is unchanged.")]
                await self.api.edit_scene(sid, scene, text)
                return [Text(text=f"✏️ Scene {scene + 1} rewritten; drawing it again…")]
            case it.Approve(story_id=sid):
                story = await self._decide(sid, actor, chat, admin)
                if story.status in (Status.animating, Status.voicing, Status.assembling):
                    return [Text(text="🎬 The video is already being made.")]
                try:
                    await self.api.approve(sid)
                except BadRequest:
                    story = await self.api.get(sid)
                    if story.status in (Status.animating, Status.voicing, Status.assembling):
                        return [Text(text="🎬 The video is already being made.")]
                    raise
                return [Text(text="🎬 Making the video…")]
            case it.Cancel(story_id=sid):
                return await self._cancel(sid, actor, chat, admin)
            case it.Retry(story_id=sid):
                await self._decide(sid, actor, chat, admin)
                await self.api.retry(sid)
                return [Text(text="🔁 Trying again…")]
            case it.Regenerate(story_id=sid, scene=scene, what=what):
                await self._decide(sid, actor, chat, admin)
                await self.api.regenerate(sid, scene, what)
                return [Text(text=f"🎬 Redoing the {what} of scene {scene + 1}…")]
            case it.ChangeVoice(story_id=sid, voice=None):
                await self._decide(sid, actor, chat, admin)
                voices = self.choices["voice"]
                row = [self.button(chat, v, "v", sid, i) for i, v in enumerate(voices)]
                return [Text(text="🎙 Which voice should narrate it?", story_id=sid,
                             buttons=[row[i : i + 4] for i in range(0, len(row), 4)])]
            case it.ChangeVoice(story_id=sid, voice=str(voice)):
                await self._decide(sid, actor, chat, admin)
                await self.api.revoice(sid, voice)
                return [Text(text=f"🎙 Narrating again with {voice}…")]
            case it.Remix(story_id=sid):
                story = await self._story_here(sid, chat)
                return await self._start(story.idea, actor, chat)
            case it.ChangeSettings(key=None):
                return [await self.settings_view(chat), *await self.community.settings_of(chat)]
            case it.ChangeSettings(key=str(key), value=value):
                allowed = permissions.on_settings(actor, chat, await _ask(admin, chat))
                if allowed != permissions.Decision.allow:
                    return [_error("Only the group's admins can change its settings.")]
                if value not in self.choices[key]:
                    return [_error(f"{key} can be " + ", ".join(self.choices[key]) + ".")]
                await self._redis.hset(self._prefs_key(chat), key, value)
                view = await self.settings_view(chat)
                return [view.model_copy(update={"replace_source": True})]
            case it.ShowStatus(story_id=sid):
                return await self._status(sid, chat)
            case it.MyStories():
                return await self._my_stories(actor)
            case it.Ignore():
                return []
        return [_error("I did not understand that. Try /help.")]

    # ------------------------------------------------------------------ intent helpers

    async def _start(self, idea: str, actor: UserRef, chat: ChatRef,
                     chosen: it.StartStory | None = None) -> list[AnyView]:
        if idea.strip() and not has_words(idea):
            return [_error("Write your idea in words, e.g. “a lighthouse keeper befriends a "
                           "stranded whale” (emoji alone are not enough).")]
        options = await self.options_for(chat)
        if chosen is not None:
            changes: dict[str, object] = {}
            for key in ("aspect", "style"):
                value = getattr(chosen, key)
                if value is not None and value not in self.choices[key]:
                    return [_error(f"{key} can be " + ", ".join(self.choices[key]) + ".")]
                if value is not None:
                    changes[key] = value
            if chosen.scenes is not None:
                if not 3 <= chosen.scenes <= 12:
                    return [_error("A story has 3 to 12 scenes.")]
                changes["scenes"] = chosen.scenes
            options = options.model_copy(update=changes)
        gate = await self.community.before_start(idea, actor, chat)
        if gate.refusal:
            return gate.refusal
        story = await self.api.start_story(idea, actor, chat, options, community=gate.key,
                                           rules=gate.rules)
        started_story.set(story.id)
        await self.community.started(gate, story)
        if chosen is not None and chosen.photo:  # noted, and honestly not used (yet)
            return [Text(text="📎 I noted your photo, but photos are not used in stories yet: "
                              "this one is drawn from your words alone.")]
        return []  # the event pump posts the story's status message

    async def _story_here(self, story_id: str, chat: ChatRef) -> Story:
        story = await self.api.get(story_id)
        if story.chat.key != chat.key:
            raise StoryNotFound(story_id)  # never reveal another chat's story
        return story

    async def _decide(self, story_id: str, actor: UserRef, chat: ChatRef,
                      admin: AdminCheck | None) -> Story:
        story = await self._story_here(story_id, chat)
        is_admin = False
        if permissions.needs_admin(story, actor, chat):
            is_admin = await _ask(admin, chat)
        decision = permissions.on_story(story, actor, chat, is_admin)
        if decision != permissions.Decision.allow:
            owner = story.owner.display_name or "its owner"
            raise Denied(f"Only {owner} (who started this story) and the group's admins can "
                         "decide on it.")
        return story

    async def _pick(self, intent: it.PickFrame, actor: UserRef, chat: ChatRef,
                    admin: AdminCheck | None) -> list[AnyView]:
        story = await self._decide(intent.story_id, actor, chat, admin)
        sc = story.scene(intent.scene)
        if intent.generation is not None and sc.generation != intent.generation:
            return [_error("Those frames were replaced; pick from the new ones.")]
        if not 1 <= intent.choice <= len(sc.candidates):
            return [_error(f"Scene {intent.scene + 1} has frames 1 to {len(sc.candidates)}.")]
        cand = sc.candidates[intent.choice - 1]
        if sc.picked == cand.id:
            return [Text(text=f"Frame {intent.choice} is already picked for scene "
                              f"{intent.scene + 1}.")]
        await self.api.pick(story.id, intent.scene, cand.id)
        return [Text(text=f"Scene {intent.scene + 1}: frame {intent.choice} ✓")]

    async def _cancel(self, sid: str | None, actor: UserRef, chat: ChatRef,
                      admin: AdminCheck | None) -> list[AnyView]:
        if sid is None:
            for candidate in await self.rt.store.by_chat(chat, 20):
                try:
                    story = await self.api.get(candidate)
                except StoryloomError:
                    continue
                if story.finished:
                    continue
                if actor.key == story.owner.key or (
                    chat.is_group and await _ask(admin, chat)
                ):
                    sid = story.id
                    break
            if sid is None:
                return [Text(text="Nothing of yours to cancel here.")]
        story = await self._decide(sid, actor, chat, admin)
        if story.status == Status.cancelled:
            return [Text(text="That story is already cancelled.")]
        await self.api.cancel(sid)
        return [Text(text=f"🛑 Cancelled “{shorten(story.title or story.idea, 60)}”.")]

    async def _status(self, sid: str | None, chat: ChatRef) -> list[AnyView]:
        if sid is None:
            ids = await self.rt.store.by_chat(chat, 1)
            if not ids:
                return [Text(text="No stories in this chat yet. Start one with /story <idea>.")]
            sid = ids[0]
        story = await self._story_here(sid, chat)
        view = self.status_view(story, None)
        return [view.model_copy(update={"slot": "", "buttons": []})]

    async def _my_stories(self, actor: UserRef) -> list[AnyView]:
        stories = await self.api.stories_of(actor, 10)
        if not stories:
            return [Text(text="You have no stories yet. Start one with /story <idea>.")]
        lines = [f"• {shorten(s.title or s.idea, 60)} — {s.status.value.replace('_', ' ')} "
                 f"(id {s.id})" for s in stories]
        return [Text(title="Your stories", text="\n".join(lines))]

    # ------------------------------------------------------------------ pending edits

    def _edit_key(self, chat: ChatRef, actor: UserRef) -> str:
        return f"{self._prefix}edit:{chat.chat_id}:{actor.user_id}"

    async def _set_pending_edit(self, chat: ChatRef, actor: UserRef, sid: str, scene: int,
                                gen: int) -> None:
        await self.rt.redis.set(self._edit_key(chat, actor), f"{sid}:{scene}:{gen}", ex=900)

    async def _peek_pending_edit(self, chat: ChatRef, actor: UserRef) -> bool:
        return bool(await self.rt.redis.exists(self._edit_key(chat, actor)))

    async def _take_pending_edit(self, chat: ChatRef, actor: UserRef
                                 ) -> tuple[str, int, int] | None:
        raw = await self.rt.redis.getdel(self._edit_key(chat, actor))
        if raw is None:
            return None
        sid, scene, gen = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(":")
        return sid, int(scene), int(gen)

    # ------------------------------------------------------------------ chat settings

    def _prefs_key(self, chat: ChatRef) -> str:
        return f"{self._prefix}prefs:{chat.chat_id}"

    async def prefs(self, chat: ChatRef) -> dict[str, str]:
        s = self.rt.settings
        out = {"aspect": s.default_aspect, "scenes": str(s.default_scenes),
               "style": s.default_style, "voice": s.default_voice, "language": "auto"}
        raw = await self._redis.hgetall(self._prefs_key(chat))
        for k, v in raw.items():
            key = k.decode() if isinstance(k, bytes) else str(k)
            value = v.decode() if isinstance(v, bytes) else str(v)
            if key in out and value in self.choices[key]:
                out[key] = value
        return out

    async def options_for(self, chat: ChatRef) -> StoryOptions:
        p = await self.prefs(chat)
        cap = self.size_cap_for(chat) if self.size_cap_for is not None else None
        return self.api.default_options(
            aspect=p["aspect"], scenes=int(p["scenes"]), style=p["style"], voice=p["voice"],
            pick="ask", size_cap_bytes=cap or self.size_cap_bytes,
            language=None if p["language"] == "auto" else p["language"],
        )

    async def settings_view(self, chat: ChatRef) -> Text:
        p = await self.prefs(chat)
        rows: Keyboard = []
        for k_i, key in enumerate(SETTING_KEYS):
            row = [
                self.button(chat, ("✓ " if v == p[key] else "") + v, "o", "", k_i, v_i)
                for v_i, v in enumerate(self.choices[key])
            ]
            rows += [row[i : i + 4] for i in range(0, len(row), 4)]
        text = (f"Aspect {p['aspect']} · {p['scenes']} scenes · style {p['style']} · "
                f"voice {p['voice']} · language {p['language']}\n"
                "Rows: aspect, scenes, style, voice, language.")
        return Text(title="⚙️ Settings for new stories here", text=text, buttons=rows)

    # ------------------------------------------------------------------ views of a story

    def status_view(self, story: Story, ev: StoryEvent | None, eta_s: float | None = None
                    ) -> StatusView:
        title = story.title or shorten(story.idea, 80)
        buttons: Keyboard = []
        current = total = 0
        bar = ""
        error = ""
        if story.status == Status.done:
            state, line = "done", "✅ The video is ready."
        elif story.status == Status.failed:
            state = "failed"
            doing = STEP_LABELS.get(story.failed_step or "", "working").lower()
            line = f"❌ Stopped while {doing}."
            error = story.error or ""
            buttons = [[self.button(story.chat, "🔁 Try again", "r", story.id)]]
        elif story.status == Status.cancelled:
            state, line = "cancelled", "🛑 Cancelled."
        elif story.status == Status.awaiting_approval:
            state = "waiting"
            line = ("🖼 The storyboard is ready: pick a frame for each scene, then press "
                    "✅ Make the video.")
        else:
            state = "working"
            step = STATUS_STEP[story.status]
            if ev is not None and ev.step == step and ev.total:
                current, total = ev.current, ev.total
            line = f"⏳ {STEP_LABELS[step]}…"
            if total > 1:
                unit = "scene" if step in PER_SCENE else "part"
                line = f"⏳ {STEP_LABELS[step]} — {unit} {min(current + 1, total)} of {total}"
                if current >= total:
                    line = f"⏳ {STEP_LABELS[step]} — {total} of {total} done"
            bar = progress_bar(current / total) if total else ""
            buttons = [[self.button(story.chat, "🛑 Cancel", "c", story.id)]]
        if story.voting and story.status == Status.awaiting_approval:
            line = ("🗳 The storyboard is up for a vote: vote on each scene's frames before its "
                    "window closes.")
        if story.spend_hold is not None and not story.finished:
            hold = story.spend_hold
            state, bar, buttons = "waiting", "", []
            line = (f"⏸ {STEP_LABELS.get(hold.step, hold.step)} waits for a moderator to approve "
                    f"about ${hold.estimate_usd:.2f}.")
        return StatusView(story_id=story.id, slot="status", title=title, state=state, line=line,
                          current=current, total=total, bar=bar,
                          eta_s=eta_s if state == "working" else None, error=error,
                          cost_usd=story.cost_usd, budget_usd=story.options.budget_usd,
                          buttons=buttons)

    def script_view(self, story: Story) -> ScriptView:
        return ScriptView(
            story_id=story.id, slot="script", title=story.title or shorten(story.idea, 80),
            logline=story.logline,
            characters=[f"{c.name}: {c.description}" for c in story.characters],
            scenes=[sc.narration for sc in story.scenes],
        )

    async def album_view(self, story: Story, index: int) -> AlbumView:
        sc = story.scene(index)
        paths = [await self.rt.media.path(c.media) for c in sc.candidates]
        return AlbumView(story_id=story.id, slot=f"album:{index}:{sc.generation}", scene=index,
                         scenes=len(story.scenes), generation=sc.generation, images=paths,
                         caption=f"Scene {index + 1} of {len(story.scenes)}")

    def scene_view(self, story: Story, index: int) -> SceneView:
        sc = story.scene(index)
        chat = story.chat
        picked = next((n for n, c in enumerate(sc.candidates, 1) if c.id == sc.picked), None)
        picks = [self.button(chat, ("✓ " if n == picked else "") + str(n), "p", story.id, index,
                             n, sc.generation) for n in range(1, len(sc.candidates) + 1)]
        tools = [self.button(chat, "🔄 New frames", "n", story.id, index, sc.generation),
                 self.button(chat, "✏️ Edit scene", "e", story.id, index, sc.generation)]
        return SceneView(story_id=story.id, slot=f"scene:{index}", scene=index,
                         scenes=len(story.scenes), generation=sc.generation,
                         narration=sc.narration, count=len(sc.candidates), picked=picked,
                         buttons=[picks, tools])

    def approve_view(self, story: Story) -> ApproveView:
        picked = sum(1 for sc in story.scenes if sc.picked_frame() is not None)
        if story.status in (Status.animating, Status.voicing, Status.assembling, Status.done):
            state = "approved"
        elif story.status == Status.awaiting_approval and story.all_picked:
            state = "ready"
        else:
            state = "picking"
        buttons: Keyboard = []
        if state == "ready":
            buttons = [[self.button(story.chat, "✅ Make the video", "a", story.id)]]
        return ApproveView(story_id=story.id, slot="approve", picked=picked,
                           scenes=len(story.scenes), state=state, buttons=buttons)

    async def video_view(self, story: Story) -> VideoView:
        assert story.video is not None
        v = story.video
        chat = story.chat
        regen = [self.button(chat, f"🎬 {sc.index + 1}", "g", story.id, sc.index, 1)
                 for sc in story.scenes]
        rows = [regen[i : i + 6] for i in range(0, len(regen), 6)]
        rows.append([self.button(chat, "🎙 Change voice", "v", story.id),
                     self.button(chat, "🔀 Remix", "x", story.id)])
        caption = story.logline or shorten(story.idea, 200)
        return VideoView(
            story_id=story.id, slot=f"video:{v.media.key[:16]}",
            title=story.title or shorten(story.idea, 80), caption=caption,
            video=await self.rt.media.path(v.media), size=v.media.size,
            sheet=await self.rt.media.path(v.contact_sheet), duration_s=v.duration_s,
            width=v.width, height=v.height, buttons=rows,
            url=self.rt.media.public_url(v.media) or "",
        )


class Denied(BadRequest):
    """The person may not decide on this story."""


def _error(text: str) -> Text:
    return Text(text=text, error=True)


def _toastable(view: AnyView) -> bool:
    return isinstance(view, Text) and not view.buttons and not view.ask_reply \
        and not view.title and len(view.text) <= 190


async def _ask(admin: AdminCheck | None, chat: ChatRef) -> bool:
    if admin is None or not chat.is_group:
        return False
    try:
        return await admin()
    except Exception:  # the platform could not say: treat as not an admin
        log.warning("admin check failed", extra={"chat": chat.key})
        return False


# --------------------------------------------------------------------------- the event pump
