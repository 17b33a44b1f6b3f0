"""The pipeline's API for front-ends (the CLI, the conversation core of the bots).

Each call validates, updates the story by compare-and-set, enqueues the next step and publishes an
event. Permission rules (who may pick in a group) belong to ``bots/core``; this layer enforces
only what makes sense for every caller: the story exists, the scene and candidate exist, the
story is in a status where the action means something.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import ValidationError

from pipeline.errors import BadRequest
from pipeline.events import EventKind, StoryEvent
from pipeline.language import story_language
from pipeline.models import (
    WORK_STATES,
    ChatRef,
    Scene,
    Status,
    Story,
    StoryOptions,
    UserRef,
    VoteRules,
)
from pipeline.prompts import clean_idea, estimate_duration
from pipeline.queue import abort_story_job, enqueue, status_step, story_job_active
from pipeline.repair import STEP_ORDER, forget, missing_media
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.steps import STEP_STATUS

RegenKind = Literal["frame", "clip", "voice"]


def _redraw(scene: Scene) -> None:
    """Forget a scene's frames so the storyboard step draws new ones (with a new seed)."""
    scene.generation += 1
    scene.candidates = []
    scene.picked = None


def story_options(settings: Settings, **changes: object) -> StoryOptions:
    """The settings' default options with ``changes`` (``None`` keeps a default), validated:
    :class:`BadRequest` names the option and what it must be, before any story exists."""
    s = settings
    base: dict[str, object] = {
        "aspect": s.default_aspect,
        "scenes": s.default_scenes,
        "style": s.default_style,
        "voice": s.default_voice,
        "resolution": s.default_resolution,
        "candidates": s.candidates,
        "size_cap_bytes": int(s.video_size_cap_mb * 1_000_000) or None,
        "budget_usd": s.story_budget_usd or None,
    }
    base |= {k: v for k, v in changes.items() if v is not None}
    try:
        return StoryOptions.model_validate(base)
    except ValidationError as err:
        first = err.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "options"
        raise BadRequest(f"option {name}: {first['msg']}") from None


class StoryAPI:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def default_options(self, **changes: object) -> StoryOptions:
        return story_options(self.rt.settings, **changes)

    async def _publish(self, story: Story, kind: EventKind, **fields: object) -> None:
        await self.rt.outbox.publish(StoryEvent.of(story, kind, **fields))

    # ------------------------------------------------------------------ create / read

    async def start_story(
        self, idea: str, owner: UserRef, chat: ChatRef, options: StoryOptions | None = None,
        *, community: str | None = None, rules: VoteRules | None = None,
    ) -> Story:
        """Validate the idea (raises BadIdea, nothing enqueued) and start the pipeline; a story
        started in a community keeps its key, and its vote rules when the community votes."""
        text = clean_idea(idea, self.rt.settings.max_idea_chars)
        opts = options or self.default_options()
        if "language" not in opts.model_fields_set:  # a chat's explicit language wins
            language = await asyncio.to_thread(story_language, text, None, opts.language)
            opts = opts.model_copy(update={"language": language})
        story = Story(idea=text, owner=owner, chat=chat, options=opts,
                      community=community, rules=rules)
        await self.rt.store.create(story)
        await self._publish(story, EventKind.created, message=text)
        await enqueue(self.rt.redis, "script", story.id, story.revision)
        return story

    async def get(self, story_id: str) -> Story:
        return await self.rt.store.get(story_id)

    async def stories_of(self, owner: UserRef, limit: int = 10) -> list[Story]:
        out = []
        for sid in await self.rt.store.by_owner(owner, limit):
            try:
                out.append(await self.rt.store.get(sid))
            except Exception:  # a damaged story is listed by the status command, not here
                continue
        return out

    # ------------------------------------------------------------------ storyboard decisions

    async def pick(self, story_id: str, scene: int, candidate_id: str) -> Story:
        def choose(s: Story) -> None:
            if s.status not in (Status.awaiting_approval, Status.storyboarding):
                raise BadRequest(
                    f"frames can be picked while the storyboard is open, not when {s.status.value}"
                )
            sc = s.scene(scene)
            if not any(c.id == candidate_id for c in sc.candidates):
                raise BadRequest(f"scene {scene + 1} has no frame {candidate_id!r}")
            sc.picked = candidate_id

        story = await self.rt.store.update(story_id, choose)
        await self._publish(story, EventKind.notice, scene=scene, step="pick",
                            message=f"scene {scene + 1}: frame {candidate_id} picked")
        return story

    async def new_candidates(self, story_id: str, scene: int) -> Story:
        """Draw new candidates for one scene (the old ones are replaced)."""

        def redraw(s: Story) -> None:
            if s.status not in (Status.awaiting_approval, Status.done):
                raise BadRequest("new frames can be drawn once the storyboard is ready")
            _redraw(s.scene(scene))
            s.transition(Status.storyboarding)

        story = await self.rt.store.update(story_id, redraw)
        await enqueue(self.rt.redis, "storyboard", story.id, story.revision)
        await self._publish(story, EventKind.status, step="storyboard", scene=scene,
                            message=f"drawing new frames for scene {scene + 1}")
        return story

    async def edit_scene(self, story_id: str, scene: int, text: str) -> Story:
        """Replace a scene's text (narration and shot); its frames, clip and voice are redone."""
        text = clean_idea(text, 600)

        def edit(s: Story) -> None:
            if s.status not in (Status.awaiting_approval, Status.done):
                raise BadRequest("a scene can be edited once the storyboard is ready")
            sc = s.scene(scene)
            sc.narration = text
            sc.shot = text
            sc.duration_s = estimate_duration(text)
            _redraw(sc)
            s.transition(Status.storyboarding)

        story = await self.rt.store.update(story_id, edit)
        await enqueue(self.rt.redis, "storyboard", story.id, story.revision)
        await self._publish(story, EventKind.status, step="storyboard", scene=scene,
                            message=f"scene {scene + 1} rewritten; drawing it again")
        return story

    async def approve(self, story_id: str) -> Story:
        def go(s: Story) -> None:
            if s.status != Status.awaiting_approval:
                raise BadRequest(f"this story is {s.status.value}, not waiting for approval")
            missing = [str(sc.index + 1) for sc in s.scenes if sc.picked_frame() is None]
            if missing:
                raise BadRequest("pick a frame for scene " + ", ".join(missing) + " first")
            s.transition(Status.animating)

        story = await self.rt.store.update(story_id, go)
        await enqueue(self.rt.redis, "animate", story.id, story.revision)
        await self._publish(story, EventKind.status, step="animate", message="animating")
        return story

    async def cancel(self, story_id: str) -> Story:
        def stop(s: Story) -> None:
            if s.finished and s.status != Status.failed:
                raise BadRequest(f"this story is already {s.status.value}")
            s.transition(Status.cancelled)

        story = await self.rt.store.update(story_id, stop)
        await abort_story_job(self.rt.redis, story_id)
        await self._publish(story, EventKind.cancelled, message="cancelled")
        return story

    async def retry(self, story_id: str) -> Story:
        """Resume a failed story at the step that failed, or a stuck one (in a working status
        with no job that will move it on: its worker was killed) at the step it was in."""
        step_holder: list[str] = []
        stuck = False
        current = await self.rt.store.get(story_id)
        if current.status in WORK_STATES:
            stuck = not await story_job_active(self.rt.redis, story_id)
        missing = await missing_media(current, self.rt.media.exists)

        def resume(s: Story) -> None:
            if stuck and s.status in WORK_STATES:
                step_holder.append(status_step(s.status.value))
                return
            if s.status != Status.failed or not s.failed_step:
                raise BadRequest("only a failed or stuck story can be retried; this one is "
                                 f"{s.status.value}" + (" and its step is still queued or running"
                                                        if s.status in WORK_STATES else ""))
            step = s.failed_step
            remake = forget(s, missing)  # made again by the steps from the earliest one
            if remake is not None and STEP_ORDER.index(remake) < STEP_ORDER.index(step):
                step = remake
            step_holder.append(step)
            s.transition(STEP_STATUS[step])
            s.error = None

        story = await self.rt.store.update(story_id, resume)
        await enqueue(self.rt.redis, step_holder[-1], story.id, story.revision)
        return story

    async def revoice(self, story_id: str, voice: str) -> Story:
        """Narrate a finished story again with another voice, then reassemble."""
        voice = voice.strip()
        if not voice or len(voice) > 40:
            raise BadRequest("name a voice of up to 40 characters")

        def redo(s: Story) -> None:
            if s.status != Status.done:
                raise BadRequest("the voice can be changed once the video is done")
            s.options = s.options.model_copy(update={"voice": voice})
            for sc in s.scenes:
                sc.take += 1
                sc.voice = None
            s.transition(Status.voicing)

        story = await self.rt.store.update(story_id, redo)
        await enqueue(self.rt.redis, "voice", story.id, story.revision)
        await self._publish(story, EventKind.status, step="voice",
                            message=f"narrating again with {voice}")
        return story

    async def regenerate(self, story_id: str, scene: int, what: RegenKind) -> Story:
        """Redo one scene's frame, clip or voice after the video is done, then reassemble."""
        step = {"frame": "storyboard", "clip": "animate", "voice": "voice"}[what]
        target = {"frame": Status.storyboarding, "clip": Status.animating, "voice": Status.voicing}

        def redo(s: Story) -> None:
            if s.status != Status.done:
                raise BadRequest("a scene can be regenerated once the video is done")
            sc = s.scene(scene)
            if what == "frame":
                _redraw(sc)
            elif what == "clip":
                sc.take += 1
                sc.clip = None
            else:
                sc.take += 1
                sc.voice = None
            s.transition(target[what])

        story = await self.rt.store.update(story_id, redo)
        await enqueue(self.rt.redis, step, story.id, story.revision, auto_pick=True)
        await self._publish(story, EventKind.status, step=step, scene=scene,
                            message=f"redoing the {what} of scene {scene + 1}")
        return story
