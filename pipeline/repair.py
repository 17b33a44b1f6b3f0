"""Media a story refers to but the media store no longer has (deleted by hand, a lost disk,
retention): said in words about the story, and forgotten so ``retry`` makes it again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from pipeline.models import MediaRef, Story

STEP_ORDER = ("script", "cast", "storyboard", "animate", "voice", "assemble")


class Missing(BaseModel):
    what: str  # "frame", "clip", "narration", "character sheet", "video"
    scene: int | None = None
    name: str = ""
    step: str  # the step that makes it

    @property
    def words(self) -> str:
        if self.scene is not None:
            return f"scene {self.scene + 1}'s {self.what}"
        if self.name:
            return f"the {self.what} of {self.name}"
        return f"the {self.what}"


async def missing_media(story: Story, exists: Callable[[MediaRef], Awaitable[bool]]
                        ) -> list[Missing]:
    """What the story uses that the media store does not hold, in the order it is made."""
    out: list[Missing] = []
    for c in story.characters:
        if c.reference is not None and not await exists(c.reference):
            out.append(Missing(what="character sheet", name=c.name, step="cast"))
    for sc in story.scenes:
        if any([not await exists(fc.media) for fc in sc.candidates]):
            out.append(Missing(what="frame", scene=sc.index, step="storyboard"))
    for sc in story.scenes:
        if sc.clip is not None and not await exists(sc.clip.media):
            out.append(Missing(what="clip", scene=sc.index, step="animate"))
    for sc in story.scenes:
        if sc.voice is not None and not await exists(sc.voice.media):
            out.append(Missing(what="narration", scene=sc.index, step="voice"))
    return out


def describe(missing: list[Missing]) -> str:
    """One sentence for the person: which scene, what, and what to do."""
    if not missing:
        return "a media file this step needs is missing; retry the story to make it again"
    parts = [m.words for m in missing[:4]] + (["more"] if len(missing) > 4 else [])
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    verb = "are" if len(parts) > 1 else "is"
    return f"{listed} {verb} missing from the media store; retry the story to make it again"


def forget(story: Story, missing: list[Missing]) -> str | None:
    """Mark what is missing as not made; return the first step that must make it again."""
    steps = []
    for m in missing:
        if m.what == "character sheet":
            c = next((c for c in story.characters if c.name == m.name), None)
            if c is None or c.uploaded:
                continue  # an upload cannot be made again; the step will say so
            c.reference = None
        elif m.scene is not None:
            sc = story.scenes[m.scene]
            if m.what == "frame":
                sc.generation += 1
                sc.candidates = []
                sc.picked = None
                sc.clip = None
            elif m.what == "clip":
                sc.clip = None
            elif m.what == "narration":
                sc.voice = None
        steps.append(m.step)
    return min(steps, key=STEP_ORDER.index) if steps else None
