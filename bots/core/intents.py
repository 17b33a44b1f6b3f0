"""What a person in a chat wants, independent of the platform that carried it.

Adapters build these from commands, messages, button presses and reactions; the conversation core
(:class:`bots.core.conversation.Conversation`) acts on them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.models import UserRef


class Intent(BaseModel):
    model_config = ConfigDict(frozen=True)


class Welcome(Intent):
    """``/start``: who the bot is and how to begin."""


class Help(Intent):
    pass


class StartStory(Intent):
    """A new story; the options left out come from the chat's settings."""

    idea: str
    scenes: int | None = None
    aspect: str | None = None
    style: str | None = None
    photo: str | None = Field(None, description="the platform's id of a photo sent with the "
                              "idea, kept for the character library (not used yet)")


class FreeText(Intent):
    """Text addressed to the bot: the answer to a pending scene edit, or else a new idea."""

    text: str


class NotText(Intent):
    """A photo, sticker or other non-text message addressed to the bot."""

    what: str = "message"


class UnknownCommand(Intent):
    command: str


class PickFrame(Intent):
    story_id: str
    scene: int = Field(ge=0, description="0-based scene index")
    choice: int = Field(ge=1, description="1-based candidate number")
    generation: int | None = None


class NewCandidates(Intent):
    story_id: str
    scene: int = Field(ge=0)
    generation: int | None = None


class EditScene(Intent):
    """Rewrite a scene; without ``text`` the person's next message becomes the text."""

    story_id: str
    scene: int = Field(ge=0)
    text: str | None = None
    generation: int | None = None


class Approve(Intent):
    story_id: str


class Cancel(Intent):
    story_id: str | None = None


class Retry(Intent):
    story_id: str


class Regenerate(Intent):
    story_id: str
    scene: int = Field(ge=0)
    what: Literal["frame", "clip", "voice"] = "clip"


class ChangeVoice(Intent):
    """Narrate a finished story again; without ``voice`` the choices are shown."""

    story_id: str
    voice: str | None = None


class Remix(Intent):
    """A new story from the same idea, with the chat's current settings."""

    story_id: str


class ChangeSettings(Intent):
    """Show the chat's settings for new stories, or change one of them."""

    key: Literal["aspect", "scenes", "style", "voice", "language"] | None = None
    value: str | None = None


class ShowStatus(Intent):
    story_id: str | None = None


class MyStories(Intent):
    pass


class Ignore(Intent):
    """A button press or reaction that should do nothing (kept for a uniform flow)."""


# --------------------------------------------------------------------------- communities


class Setup(Intent):
    """``/setup``: make this group a community, or show its set-up. The adapter fills in what it
    created or adopted and what the bot is missing in the chat."""

    stories_channel: str = ""
    gallery_channel: str = ""
    moderator_role: str = ""
    missing: list[str] = Field(default_factory=list, description="rights the bot lacks, in words")


class CommunitySettings(Intent):
    """Show the community's settings, or change one (``key`` as in /settings window 2m)."""

    key: str | None = None
    value: str | None = None


class CastVote(Intent):
    """A member's vote on a scene: a candidate number, or 0 for new frames."""

    story_id: str
    scene: int = Field(ge=0)
    choice: int = Field(ge=0)
    kind: Literal["frame", "text"] = "frame"
    generation: int | None = None


class CloseVote(Intent):
    """Close the story's open votes now (or one scene's), by their rules."""

    story_id: str
    scene: int | None = Field(None, ge=0)


class Override(Intent):
    """The owner or a moderator decides a scene's open vote."""

    story_id: str
    scene: int = Field(ge=0)
    choice: int = Field(ge=0)
    kind: Literal["frame", "text"] = "frame"


class Propose(Intent):
    """A member's new text for a scene, put to the vote."""

    story_id: str
    scene: int = Field(ge=0)
    text: str


class NextEpisodeIdea(Intent):
    """An idea for the story's next episode; without a story, the chat's latest."""

    text: str
    story_id: str | None = None


class Mod(Intent):
    """Name a moderator (admins only)."""

    user: UserRef


class Unmod(Intent):
    user: UserRef


class Budget(Intent):
    """What the community spent this month, by member, and what is left."""


class Gallery(Intent):
    """The community's last finished stories."""


class NextEpisode(Intent):
    """A new story that follows a finished one, from its next-episode ideas."""

    story_id: str


class ApproveSpend(Intent):
    """A moderator approves a held paid step at the amount the button showed."""

    story_id: str
    cents: int | None = Field(None, ge=0)
