"""Neutral views: what a chat should show, for each adapter to render in its own way.

A view with a ``slot`` is a lasting message about a story (its status, the script, a scene's
storyboard, the video); the delivery records which platform message shows each slot, so showing a
view again edits that message (or does nothing when it is unchanged). A view without a slot is a
plain reply. Text in views is plain text: adapters escape it for their markup.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.community import GalleryEntry


class Button(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    token: str


Keyboard = list[list[Button]]


class View(BaseModel):
    story_id: str = ""
    slot: str = ""
    buttons: Keyboard = Field(default_factory=list)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:20]


class Text(View):
    kind: Literal["text"] = "text"
    text: str
    title: str = ""
    error: bool = False
    toast: bool = Field(False, description="a short answer to a button press, not a message")
    ask_reply: bool = Field(False, description="the person's next message answers this one")
    replace_source: bool = Field(False, description="replaces the message whose button was pressed")


class StatusView(View):
    kind: Literal["status"] = "status"
    title: str
    state: Literal["working", "waiting", "done", "failed", "cancelled"]
    line: str
    current: int = 0
    total: int = 0
    bar: str = ""
    eta_s: float | None = None
    error: str = ""
    cost_usd: float = 0.0
    budget_usd: float | None = None


class ScriptView(View):
    kind: Literal["script"] = "script"
    title: str
    logline: str
    characters: list[str] = Field(default_factory=list)
    scenes: list[str] = Field(default_factory=list)


class AlbumView(View):
    """One scene's candidate frames, numbered 1..K."""

    kind: Literal["album"] = "album"
    scene: int
    scenes: int
    generation: int
    images: list[Path]
    caption: str = ""


class SceneView(View):
    """One scene as one message: its candidate frames (numbered 1..K), its text and its buttons
    (pick 1..K, new candidates, edit). A redraw edits the same message; while new frames are
    drawn ``images`` is empty and the message keeps its old picture without buttons."""

    kind: Literal["scene"] = "scene"
    scene: int
    scenes: int
    generation: int
    narration: str
    count: int
    picked: int | None = None
    images: list[Path] = Field(default_factory=list)


class ApproveView(View):
    kind: Literal["approve"] = "approve"
    picked: int
    scenes: int
    state: Literal["picking", "ready", "approved"]


class VideoView(View):
    kind: Literal["video"] = "video"
    title: str
    caption: str
    video: Path
    size: int
    sheet: Path
    duration_s: float
    width: int
    height: int
    url: str = Field("", description="a public link to the video, when the media store has one")


class VoteView(View):
    """A scene's vote: its options with live counts, when it closes, and once closed the result
    with the rule that applied and every override. Its slot is the scene's (``scene:i:gen``),
    so 1️⃣–4️⃣ reactions on it are votes."""

    kind: Literal["vote"] = "vote"
    poll: str
    vote_kind: Literal["frame", "text"] = "frame"
    scene: int
    scenes: int
    generation: int
    narration: str
    options: list[str] = Field(default_factory=list, description="option labels, 1..N")
    counts: list[int] = Field(default_factory=list)
    new_frames: int = 0
    new_frames_needed: int = 0
    voters: int = 0
    closes_at: float = 0.0
    state: Literal["open", "closed"] = "open"
    result: str = Field("", description="the result in words, saying which rule applied")
    rule: str = Field("", description="majority, tie_owner, tie_fallback, empty, quorum_owner, "
                                      "quorum_fallback, new_frames, override or replaced")
    overrides: list[str] = Field(default_factory=list)


class GalleryView(View):
    """One finished story in the gallery (``items`` has one entry), or the /gallery list."""

    kind: Literal["gallery"] = "gallery"
    title: str
    items: list[GalleryEntry] = Field(default_factory=list)


AnyView = (Text | StatusView | ScriptView | AlbumView | SceneView | ApproveView | VideoView
           | VoteView | GalleryView)
