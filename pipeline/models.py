"""The story domain: pydantic documents and the status machine.

A :class:`Story` is stored whole as one JSON document with a revision number (see
``pipeline.store``). Everything platform-specific is reduced to the neutral identities here.
"""

from __future__ import annotations

import secrets
import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import BadRequest, IllegalTransition
from providers.base import WordTiming

Aspect = Literal["9:16", "16:9", "1:1"]
Resolution = Literal["360p", "720p", "1080p"]  # 360p: quick drafts and benches
Motion = Literal["push_in", "pull_out", "pan_left", "pan_right", "rise", "still"]


def new_id() -> str:
    """A short, URL- and callback-safe story id (10 characters of base32)."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def now() -> float:
    return time.time()


# --------------------------------------------------------------------------- identities


class Platform(StrEnum):
    cli = "cli"
    console = "console"
    telegram = "telegram"
    discord = "discord"


class ChatRef(BaseModel):
    """Where a story lives: a DM, a group or channel, and optionally a thread in it."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    chat_id: str
    thread_id: str | None = None
    is_group: bool = False

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.chat_id}"


class UserRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    platform: Platform
    user_id: str
    display_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.user_id}"


# --------------------------------------------------------------------------- status machine


class Status(StrEnum):
    drafting = "drafting"
    casting = "casting"
    storyboarding = "storyboarding"
    awaiting_approval = "awaiting_approval"
    animating = "animating"
    voicing = "voicing"
    assembling = "assembling"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


WORK_STATES = (
    Status.drafting,
    Status.casting,
    Status.storyboarding,
    Status.animating,
    Status.voicing,
    Status.assembling,
)

_ENDINGS = frozenset({Status.failed, Status.cancelled})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.drafting: frozenset({Status.casting}) | _ENDINGS,
    Status.casting: frozenset({Status.storyboarding}) | _ENDINGS,
    Status.storyboarding: frozenset({Status.awaiting_approval}) | _ENDINGS,
    # New candidates for a scene go back through storyboarding.
    Status.awaiting_approval: frozenset({Status.storyboarding, Status.animating}) | _ENDINGS,
    Status.animating: frozenset({Status.voicing}) | _ENDINGS,
    Status.voicing: frozenset({Status.assembling}) | _ENDINGS,
    Status.assembling: frozenset({Status.done}) | _ENDINGS,
    # After done, regenerating one scene re-enters the step that redoes it.
    Status.done: frozenset({Status.storyboarding, Status.animating, Status.voicing}),
    # A failed story can be resumed at the step that failed.
    Status.failed: frozenset(WORK_STATES) | {Status.cancelled},
    Status.cancelled: frozenset(),
}


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


# --------------------------------------------------------------------------- parts


class MediaRef(BaseModel):
    """A file in the media store, addressed by its content hash."""

    model_config = ConfigDict(frozen=True)

    key: str
    mime: str
    size: int = 0


class StoryOptions(BaseModel):
    aspect: Aspect = "9:16"
    scenes: int = Field(6, ge=3, le=12)
    style: str = Field("storybook", max_length=40)
    voice: str = Field("joe", max_length=40)
    language: str = Field("en", max_length=12)
    resolution: Resolution = "720p"
    candidates: int = Field(3, ge=1, le=4)
    pick: Literal["auto", "ask"] = "ask"
    music: bool = True
    size_cap_bytes: int | None = Field(None, ge=1_000_000)
    budget_usd: float | None = Field(None, ge=0, description="Most this story may spend")

    def frame_size(self) -> tuple[int, int]:
        """Pixel size of the video (and of the storyboard frames), even numbers for H.264."""
        short = {"360p": 360, "720p": 720, "1080p": 1080}[self.resolution]
        long = short * 16 // 9
        return {"9:16": (short, long), "16:9": (long, short), "1:1": (short, short)}[self.aspect]


class Character(BaseModel):
    id: str
    name: str
    description: str
    reference: MediaRef | None = None
    uploaded: bool = False


class FrameCandidate(BaseModel):
    id: str
    media: MediaRef
    seed: int
    provider: str
    model: str = ""


class Clip(BaseModel):
    media: MediaRef
    duration_s: float
    provider: str
    frame_id: str


class Narration(BaseModel):
    media: MediaRef
    text: str
    duration_s: float
    words: list[WordTiming] = Field(default_factory=list)
    provider: str


class Scene(BaseModel):
    index: int
    shot: str
    narration: str
    setting: str = ""
    time_of_day: Literal["dawn", "day", "dusk", "night"] = "day"
    framing: Literal["wide", "medium", "close"] = "medium"
    motion: Motion = "push_in"
    characters: list[str] = Field(default_factory=list, description="Character ids")
    duration_s: float = 5.0
    generation: int = Field(0, description="Bumped when the frames are redrawn; varies the seed")
    take: int = Field(0, description="Bumped when the clip or voice is redone; varies the seed")
    candidates: list[FrameCandidate] = Field(default_factory=list)
    picked: str | None = None
    clip: Clip | None = None
    voice: Narration | None = None

    def picked_frame(self) -> FrameCandidate | None:
        return next((c for c in self.candidates if c.id == self.picked), None)

    @property
    def needs_clip(self) -> bool:
        return self.picked is not None and (self.clip is None or self.clip.frame_id != self.picked)

    @property
    def needs_voice(self) -> bool:
        return self.voice is None or self.voice.text != self.narration


class FinalVideo(BaseModel):
    media: MediaRef
    contact_sheet: MediaRef
    duration_s: float
    width: int
    height: int


class CostEntry(BaseModel):
    step: str
    scene: int | None = None
    provider: str
    model: str = ""
    units: float = 0.0
    unit: str = ""
    usd: float = 0.0
    key: str = ""  # the call's input key, where one answer may serve several runs of a step
    at: float = Field(default_factory=now)


# --------------------------------------------------------------------------- community votes

PollKind = Literal["frame", "text"]
NEW_FRAMES = 0  # the choice of a member who asks for new frames instead of a candidate
VoteRule = Literal["majority", "tie_owner", "tie_fallback", "empty", "quorum_owner",
                   "quorum_fallback", "new_frames", "override", "replaced"]


class VoteRules(BaseModel):
    """How a community story's votes are counted; copied from the community when it starts."""

    window_s: int = Field(120, ge=30, le=86_400)
    quorum: int = Field(1, ge=1, le=1000)
    new_frames_threshold: int = Field(2, ge=1, le=1000)
    auto_make: bool = True


class Override(BaseModel):
    """A moderator's or the owner's hand on a vote, shown on the scene's message."""

    by: UserRef
    at: float = Field(default_factory=now)
    action: Literal["closed_early", "override"]
    choice: int | None = None


class VoteResult(BaseModel):
    choice: int = Field(description="the winning option (1-based); 0 asks for new frames")
    rule: VoteRule
    counts: dict[int, int] = Field(default_factory=dict)
    explanation: str


class Poll(BaseModel):
    """One vote on one scene at one generation: each member's choice, changeable until it
    closes. A frame poll's options are the candidates; a text poll's option 1 is the current
    text and option n+1 is proposal n."""

    id: str
    kind: PollKind = "frame"
    scene: int
    generation: int
    options: int = Field(ge=1)
    opened_at: float = Field(default_factory=now)
    closes_at: float
    votes: dict[str, int] = Field(default_factory=dict, description="member key -> option")
    voters: dict[str, str] = Field(default_factory=dict, description="member key -> name")
    closed_at: float | None = None
    result: VoteResult | None = None
    overrides: list[Override] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


def poll_id(kind: PollKind, scene: int, generation: int) -> str:
    return f"{kind}-s{scene}-g{generation}"


class Proposal(BaseModel):
    """A member's new text for a scene, put to a text poll."""

    scene: int
    generation: int
    by: UserRef
    text: str
    at: float = Field(default_factory=now)


class Idea(BaseModel):
    by: UserRef
    text: str
    at: float = Field(default_factory=now)


class SpendHold(BaseModel):
    """A paid step waiting for a moderator: it would go over the per-story cap or the
    community's remaining budget."""

    step: str
    estimate_usd: float
    needed_usd: float = Field(description="what the story will have spent after the step")
    reason: str
    at: float = Field(default_factory=now)


class SpendApproval(BaseModel):
    by: UserRef
    step: str
    usd: float
    at: float = Field(default_factory=now)


class Credits(BaseModel):
    owner: UserRef
    voters: list[str] = Field(default_factory=list)
    contributors: list[str] = Field(default_factory=list)


class Story(BaseModel):
    id: str = Field(default_factory=new_id)
    revision: int = 0
    status: Status = Status.drafting
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    idea: str
    options: StoryOptions = Field(default_factory=StoryOptions)
    owner: UserRef
    chat: ChatRef
    title: str = ""
    logline: str = ""
    characters: list[Character] = Field(default_factory=list)
    scenes: list[Scene] = Field(default_factory=list)
    video: FinalVideo | None = None
    error: str | None = None
    failed_step: str | None = None
    costs: list[CostEntry] = Field(default_factory=list)
    # community stories (see pipeline.community and pipeline.polls)
    community: str | None = Field(None, description="the community's key, when started in one")
    rules: VoteRules | None = Field(None, description="set when the community decides by vote")
    polls: list[Poll] = Field(default_factory=list)
    proposals: list[Proposal] = Field(default_factory=list)
    contributors: list[UserRef] = Field(default_factory=list)
    next_ideas: list[Idea] = Field(default_factory=list)
    spend_hold: SpendHold | None = None
    spend_approved_usd: float = 0.0
    approvals: list[SpendApproval] = Field(default_factory=list)

    def transition(self, target: Status) -> None:
        """Move to ``target`` or raise :class:`IllegalTransition`."""
        if not can_transition(self.status, target):
            raise IllegalTransition(self.status.value, target.value)
        self.status = target

    def scene(self, index: int) -> Scene:
        if not 0 <= index < len(self.scenes):
            raise BadRequest(f"this story has scenes 1 to {len(self.scenes)}, not {index + 1}")
        return self.scenes[index]

    def character(self, char_id: str) -> Character | None:
        return next((c for c in self.characters if c.id == char_id), None)

    @property
    def all_picked(self) -> bool:
        return bool(self.scenes) and all(s.picked_frame() is not None for s in self.scenes)

    @property
    def cost_usd(self) -> float:
        return round(sum(c.usd for c in self.costs), 4)

    @property
    def finished(self) -> bool:
        return self.status in (Status.done, Status.failed, Status.cancelled)

    # ------------------------------------------------------------------ community votes

    @property
    def voting(self) -> bool:
        return self.rules is not None

    def poll(self, pid: str) -> Poll | None:
        return next((p for p in self.polls if p.id == pid), None)

    def open_poll(self, scene: int, kind: PollKind = "frame") -> Poll | None:
        """The scene's open poll of ``kind`` at the scene's current generation."""
        gen = self.scene(scene).generation
        return next((p for p in self.polls if p.scene == scene and p.kind == kind
                     and p.generation == gen and p.is_open), None)

    def credits(self) -> Credits:
        voters: dict[str, str] = {}
        for p in self.polls:
            voters.update(p.voters)
        names = {u.key: u.display_name or u.user_id for u in self.contributors}
        return Credits(owner=self.owner, voters=list(voters.values()),
                       contributors=list(names.values()))
