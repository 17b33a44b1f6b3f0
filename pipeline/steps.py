"""The story steps run by the worker: script, cast, storyboard, animate, voice, assemble.

Every step is idempotent. Before a provider is called, the step looks up its cache entry under a
key derived from the call's inputs; after the call it stores the outputs (media in the media
store, refs and usage in the cache) and only then advances the story. A rerun after a crash finds
the cache entry and makes no second provider call. Each step works only on what is missing (a
scene without candidates, a clip for a frame that changed, a narration whose text changed), so a
regeneration redoes one scene and reuses everything else.

Money: a paid job is recorded in the call's job journal (``pipeline.journal``) the moment the
service names it, so a rerun resumes it rather than buying it again; every call is charged to
its story once, under its input key, and only to the story that paid for it; a fan-out over
scenes succeeds or stops as a whole (see :func:`_each_scene`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pipeline import polls
from pipeline.budget import check_budget, clip_length
from pipeline.errors import CorruptStory, MediaNotFound, StoryloomError, StoryNotFound
from pipeline.events import EventKind, StoryEvent
from pipeline.journal import JobJournal
from pipeline.models import (
    Character,
    Clip,
    CostEntry,
    FinalVideo,
    FrameCandidate,
    MediaRef,
    Narration,
    Scene,
    Status,
    Story,
)
from pipeline.prompts import (
    NEGATIVE,
    character_sheet_prompt,
    estimate_duration,
    frame_prompt,
    input_key,
    motion_for,
    motion_for_take,
    music_length,
    seed_for,
    slug,
)
from pipeline.queue import enqueue, last_job_step
from pipeline.runtime import Runtime
from pipeline.scratch import scratch_dir
from providers.base import (
    AnimateRequest,
    CharacterRef,
    ImageRequest,
    JobStopped,
    Media,
    MusicRequest,
    ProviderError,
    Script,
    ScriptRequest,
    SpeechRequest,
    Usage,
    WordTiming,
    job_log,
)
from providers.pricing import PriceTable
from providers.refusal import retry_refused

log = logging.getLogger(__name__)

SHEET_SIZE = 768


class Stale(Exception):
    """The story moved on (cancelled, or another job advanced it): drop this job quietly."""


# --------------------------------------------------------------------------- helpers


def _cost(step: str, usage: Usage, scene: int | None = None, key: str = "") -> CostEntry:
    return CostEntry(
        step=step,
        scene=scene,
        key=key,
        provider=usage.provider,
        model=usage.model,
        units=usage.units,
        unit=usage.unit,
        usd=usage.usd,
    )


def _charge(story: Story, step: str, usage: Usage, key: str, scene: int | None = None) -> None:
    """Record what the call under ``key`` cost on the story, once: a step run again after a
    crash, or a reused answer, finds the entry already there."""
    if not any(c.key == key for c in story.costs):
        story.costs.append(_cost(step, usage, scene, key))


# What each step hands the story to: the status it leaves it in and the step that comes next.
HANDOFF: dict[str, tuple[Status, str]] = {
    "script": (Status.casting, "cast"),
    "cast": (Status.storyboarding, "storyboard"),
    "storyboard": (Status.animating, "animate"),  # when frames are picked automatically
    "animate": (Status.voicing, "voice"),
    "voice": (Status.assembling, "assemble"),
}


async def _load(rt: Runtime, story_id: str, status: Status, step: str) -> Story:
    """The story, if it is where ``step`` works; otherwise :class:`Stale`.

    A step that finds the story already handed on, while the story's last job is still this
    step's, ran before and was stopped between moving the story on and queueing the next job
    (arq runs it again): queue that job now, so the story does not stall.
    """
    story = await rt.store.get(story_id)
    if story.status == status:
        return story
    after, following = HANDOFF.get(step, (None, ""))
    if story.status == after and await last_job_step(rt.redis, story_id) == step:
        log.warning("queueing the next step a stopped worker did not",
                    extra={"story_id": story_id, "step": following})
        await enqueue(rt.redis, following, story_id, story.revision)
    raise Stale(f"story is {story.status}, not {status}")


def _expect(*allowed: Status) -> Callable[[Story], None]:
    def check(story: Story) -> None:
        if story.status not in allowed:
            raise Stale(f"story is {story.status}")

    return check


async def _emit(rt: Runtime, story: Story, kind: EventKind, **fields: Any) -> None:
    await rt.outbox.publish(StoryEvent.of(story, kind, **fields))


async def _progress(rt: Runtime, story: Story, step: str, done: int, total: int, msg: str) -> None:
    await _emit(rt, story, EventKind.progress, step=step, current=done, total=total, message=msg)


async def _advance(rt: Runtime, story_id: str, src: Status, dst: Status, step: str | None) -> Story:
    """Move the story on and enqueue the next step at the new revision."""

    def move(story: Story) -> None:
        _expect(src)(story)
        story.transition(dst)

    story = await rt.store.update(story_id, move)
    await _emit(rt, story, EventKind.status, step=step or "", message=dst.value)
    if step is not None:
        await enqueue(rt.redis, step, story_id, story.revision)
    return story


# Set by a fan-out for the calls of its scenes: once set, their paid jobs are cancelled.
_stop: ContextVar[asyncio.Event | None] = ContextVar("storyloom_fanout_stop", default=None)


async def _cached_call(
    rt: Runtime, key: str, call: Callable[[], Awaitable[tuple[list[Media], Usage, Any]]],
    *, payer: str, before_spending: Callable[[], None] | None = None,
) -> tuple[list[MediaRef], Usage, Any]:
    """Run a provider call once per input key; media go to the media store before the key.

    The call runs with a job journal under the same key, so a paid job it started is resumed,
    not bought again, when the step runs again. The usage returned is what ``payer`` (the story)
    was billed: outputs another story paid for are reused at no cost. ``before_spending`` runs
    only when the call is really made (it may refuse, by raising)."""
    hit = await rt.cache.get(key)
    if hit is not None:
        refs = [MediaRef.model_validate(r) for r in hit["media"]]
        if all([await rt.media.exists(r) for r in refs]):
            usage = Usage.model_validate(hit["usage"])
            if hit.get("paid_by", payer) != payer:
                usage = usage.model_copy(update={"units": 0.0, "usd": 0.0})
            return refs, usage, hit.get("extra")
    if before_spending is not None:
        before_spending()
    journal = JobJournal(rt.redis, key, _stop.get())
    with job_log(journal):
        media, usage, extra = await call()
    refs = [await rt.media.put(m.data, m.mime) for m in media]
    await rt.cache.put(
        key,
        {
            "media": [r.model_dump() for r in refs],
            "usage": usage.model_dump(),
            "extra": extra,
            "paid_by": payer,
        },
    )
    await journal.clear()
    return refs, usage, extra


async def _media(rt: Runtime, ref: MediaRef) -> Media:
    return Media(data=await rt.media.get(ref), mime=ref.mime)


def _chain_spec(rt: Runtime, capability: str) -> str:
    return str(getattr(rt.settings, capability))


def _check_budget(rt: Runtime, story: Story, step: str) -> None:
    check_budget(story, step, rt.providers, PriceTable(rt.settings.price_overrides))


def _gives_up(err: BaseException) -> bool:
    """A scene's failure that another attempt of the step will not mend."""
    return not getattr(err, "retryable", False)


Apply = Callable[[Story], None]


async def _each_scene(
    rt: Runtime,
    story_id: str,
    step: str,
    status: Status,
    scenes: list[Scene],
    work: Callable[[Scene], Awaitable[Apply]],
    *,
    done_word: str,
    kind: EventKind = EventKind.progress,
    concurrency: int | None = None,
) -> None:
    """Run ``work`` for each scene at once (each provider's own limit bounds its jobs;
    ``concurrency`` bounds local work); apply each result to the story by compare-and-set as
    soon as it is ready, and tell the chat "scene k of n".

    The fan-out succeeds or stops as a whole: when a scene fails for good, the other scenes'
    paid jobs are cancelled (the service confirms it) or, where the service will finish them
    anyway, waited for and recorded on the story, so nothing is left running that nobody will
    record. A failure another attempt may mend stops nothing: the other scenes finish and are
    kept, and the step's next attempt redoes only what failed."""
    limit = asyncio.Semaphore(max(1, concurrency or len(scenes) or 1))
    stop = asyncio.Event()
    total, done = len(scenes), 0

    async def one(scene: Scene) -> None:
        nonlocal done
        _stop.set(stop)
        try:
            async with limit:
                apply = await work(scene)
        except Exception as err:
            if _gives_up(err) and not isinstance(err, JobStopped):
                stop.set()
            raise

        def put(s: Story) -> None:
            _expect(status)(s)
            apply(s)

        updated = await rt.store.update(story_id, put)
        done += 1
        await _emit(rt, updated, kind, step=step, scene=scene.index, current=done, total=total,
                    message=f"scene {scene.index + 1} {done_word}")

    outcomes = await asyncio.gather(*(one(sc) for sc in scenes), return_exceptions=True)
    errors = [e for e in outcomes if isinstance(e, BaseException)]
    if errors:
        for err in errors:
            if not isinstance(err, Exception):
                raise err
        raise next((e for e in errors if not isinstance(e, JobStopped)), errors[0])


# --------------------------------------------------------------------------- script


def apply_script(story: Story, script: Script) -> None:
    """Fill the story from a validated script (titles, cast with ids, scenes with motion)."""
    story.title = script.title
    story.logline = script.logline
    ids: dict[str, str] = {}
    story.characters = []
    for n, spec in enumerate(script.characters):
        cid = slug(spec.name, f"c{n}")
        while cid in ids.values():
            cid += f"-{n}"
        ids[spec.name.casefold()] = cid
        story.characters.append(Character(id=cid, name=spec.name, description=spec.description))
    story.scenes = []
    for i, scene_spec in enumerate(script.scenes):
        present = [ids[n.casefold()] for n in scene_spec.characters if n.casefold() in ids]
        story.scenes.append(
            Scene(
                index=i,
                shot=scene_spec.shot,
                narration=scene_spec.narration,
                setting=scene_spec.setting,
                time_of_day=scene_spec.time_of_day,
                framing=scene_spec.framing,
                motion=motion_for(scene_spec, i),
                characters=present,
                duration_s=max(scene_spec.duration_s, estimate_duration(scene_spec.narration)),
            )
        )


async def step_script(rt: Runtime, story_id: str, kw: dict[str, Any]) -> None:
    story = await _load(rt, story_id, Status.drafting, "script")
    _check_budget(rt, story, "script")
    await _progress(rt, story, "script", 0, 1, "writing the script")
    opts = story.options
    request = ScriptRequest(
        idea=story.idea, scenes=opts.scenes, style=opts.style, language=opts.language
    )
    key = input_key("script", request.model_dump_json(), _chain_spec(rt, "script"))

    async def call() -> tuple[list[Media], Usage, Any]:
        script, usage = await rt.providers.script.run(lambda p: p.write(request))
        return [], usage, script.model_dump(mode="json")

    _, usage, extra = await _cached_call(rt, key, call, payer=story_id)
    script = Script.model_validate(extra)

    def fill(s: Story) -> None:
        _expect(Status.drafting)(s)
        apply_script(s, script)
        _charge(s, "script", usage, key)

    await rt.store.update(story_id, fill)
    await _advance(rt, story_id, Status.drafting, Status.casting, "cast")


# --------------------------------------------------------------------------- cast


async def step_cast(rt: Runtime, story_id: str, kw: dict[str, Any]) -> None:
    story = await _load(rt, story_id, Status.casting, "cast")
    _check_budget(rt, story, "cast")
    todo = [c for c in story.characters if c.reference is None]
    for n, character in enumerate(todo, 1):
        await _progress(rt, story, "cast", n - 1, len(todo), f"drawing {character.name}")
        request = ImageRequest(
            prompt=character_sheet_prompt(character, story.options.style),
            negative_prompt=NEGATIVE,
            width=SHEET_SIZE,
            height=SHEET_SIZE,
            seed=seed_for(story.id, "cast", character.id),
            count=1,
            style=story.options.style,
            characters=[CharacterRef(name=character.name, description=character.description)],
            kind="character_sheet",
        )
        key = input_key("cast", request.model_dump_json(), _chain_spec(rt, "image"))

        async def call(req: ImageRequest = request, who: str = character.name
                       ) -> tuple[list[Media], Usage, Any]:
            result = await retry_refused(
                lambda r: rt.providers.image.run(lambda p: p.generate(r)), req,
                label=f"The character sheet of {who}",
            )
            return result.images[:1], result.usage, None

        refs, usage, _ = await _cached_call(rt, key, call, payer=story_id)

        def put(
            s: Story, cid: str = character.id, ref: MediaRef = refs[0], u: Usage = usage,
            k: str = key,
        ) -> None:
            _expect(Status.casting)(s)
            c = s.character(cid)
            if c is not None and c.reference is None:
                c.reference = ref
            _charge(s, "cast", u, k)

        story = await rt.store.update(story_id, put)
    await _advance(rt, story_id, Status.casting, Status.storyboarding, "storyboard")


# --------------------------------------------------------------------------- storyboard


async def _cast_refs(rt: Runtime, story: Story) -> dict[str, CharacterRef]:
    """Each character as image requests carry it, its reference sheet read once per step."""
    return {
        c.id: CharacterRef(name=c.name, description=c.description,
                           reference=await _media(rt, c.reference) if c.reference else None)
        for c in story.characters
    }


def _frame_request(story: Story, scene: Scene, cast: dict[str, CharacterRef]) -> ImageRequest:
    width, height = story.options.frame_size()
    return ImageRequest(
        prompt=frame_prompt(story, scene),
        negative_prompt=NEGATIVE,
        width=width,
        height=height,
        seed=seed_for(story.id, "frame", scene.index, scene.generation),
        count=story.options.candidates,
        style=story.options.style,
        characters=[cast[cid] for cid in scene.characters if cid in cast],
        setting=scene.setting,
        time_of_day=scene.time_of_day,
        framing=scene.framing,
    )


def _frame_key(rt: Runtime, story: Story, scene: Scene, request: ImageRequest) -> str:
    """The cache key of a frame request; reference sheets count by their media key (a hash of
    their bytes), so the key needs no hashing of images."""
    sheets = [
        (c.name, c.description, c.reference.key if c.reference else "")
        for c in (story.character(cid) for cid in scene.characters)
        if c is not None
    ]
    return input_key("frame", request.model_dump_json(exclude={"characters"}), sheets,
                     _chain_spec(rt, "image"))


async def step_storyboard(rt: Runtime, story_id: str, kw: dict[str, Any]) -> None:
    story = await _load(rt, story_id, Status.storyboarding, "storyboard")
    _check_budget(rt, story, "storyboard")
    cast = await _cast_refs(rt, story)

    async def draw(scene: Scene) -> Apply:
        request = _frame_request(story, scene, cast)
        key = _frame_key(rt, story, scene, request)

        async def call() -> tuple[list[Media], Usage, Any]:
            result = await retry_refused(
                lambda r: rt.providers.image.run(lambda p: p.generate(r)), request,
                label=f"Scene {scene.index + 1}",
            )
            return result.images, result.usage, result.seeds

        refs, usage, seeds = await _cached_call(rt, key, call, payer=story_id)
        seeds = list(seeds or [])
        candidates = [
            FrameCandidate(
                id=f"{scene.index + 1}{chr(97 + scene.generation % 26)}{i + 1}",
                media=ref,
                seed=seeds[i] if i < len(seeds) else request.seed + i,
                provider=usage.provider,
                model=usage.model,
            )
            for i, ref in enumerate(refs)
        ]

        def apply(s: Story) -> None:
            target = s.scenes[scene.index]
            if target.generation == scene.generation and not target.candidates:
                target.candidates = candidates
            _charge(s, "storyboard", usage, key, scene.index)

        return apply

    todo = [sc for sc in story.scenes if not sc.candidates]
    await _each_scene(rt, story_id, "storyboard", Status.storyboarding, todo, draw,
                      done_word="drawn", kind=EventKind.candidates)

    auto = story.options.pick == "auto" or bool(kw.get("auto_pick"))

    def gate(s: Story) -> None:
        _expect(Status.storyboarding)(s)
        if auto:
            for sc in s.scenes:
                if sc.picked_frame() is None and sc.candidates:
                    sc.picked = sc.candidates[0].id
        s.transition(Status.awaiting_approval)
        if auto and s.all_picked:  # one write, so there is one hand-off point
            s.transition(Status.animating)

    story = await rt.store.update(story_id, gate)
    await _emit(rt, story, EventKind.awaiting_approval, step="storyboard",
                message="every scene has candidates")
    if story.status == Status.animating:
        await _emit(rt, story, EventKind.status, step="animate", message=Status.animating.value)
        await enqueue(rt.redis, "animate", story_id, story.revision)


# --------------------------------------------------------------------------- animate


async def step_animate(rt: Runtime, story_id: str, kw: dict[str, Any]) -> None:
    from pipeline.render.assemble import CLIP_TYPES

    story = await _load(rt, story_id, Status.animating, "animate")
    _check_budget(rt, story, "animate")
    width, height = story.options.frame_size()

    async def animate(scene: Scene) -> Apply:
        frame = scene.picked_frame()
        assert frame is not None
        request = AnimateRequest(
            image=await _media(rt, frame.media),
            prompt=scene.shot,
            motion=motion_for_take(scene.motion, scene.take),
            duration_s=clip_length(scene),
            width=width,
            height=height,
            fps=rt.settings.fps,
            seed=seed_for(story.id, "clip", scene.index, scene.take),
            accept=CLIP_TYPES,
        )
        key = input_key(
            "clip", frame.media.key, request.model_dump_json(exclude={"image"}),
            _chain_spec(rt, "video"),
        )

        async def call() -> tuple[list[Media], Usage, Any]:
            result = await rt.providers.video.run(lambda p: p.animate(request))
            return [result.clip], result.usage, result.duration_s

        refs, usage, duration = await _cached_call(rt, key, call, payer=story_id)
        clip = Clip(media=refs[0], duration_s=float(duration), provider=usage.provider,
                    frame_id=frame.id)

        def apply(s: Story) -> None:
            target = s.scenes[scene.index]
            if target.picked == frame.id:
                target.clip = clip
            _charge(s, "animate", usage, key, scene.index)

        return apply

    todo = [sc for sc in story.scenes if sc.needs_clip]
    await _each_scene(rt, story_id, "animate", Status.animating, todo, animate,
                      done_word="animated")
    await _advance(rt, story_id, Status.animating, Status.voicing, "voice")


# --------------------------------------------------------------------------- voice


async def step_voice(rt: Runtime, story_id: str, kw: dict[str, Any]) -> None:
    story = await _load(rt, story_id, Status.voicing, "voice")
    _check_budget(rt, story, "voice")
    notes: set[str] = set()

    async def speak(scene: Scene) -> Apply:
        request = SpeechRequest(
            text=scene.narration, voice=story.options.voice, language=story.options.language
        )
        key = input_key("voice", request.model_dump_json(), scene.take, _chain_spec(rt, "speech"))

        async def call() -> tuple[list[Media], Usage, Any]:
            result = await rt.providers.speech.run(lambda p: p.speak(request))
            words = [w.model_dump() for w in result.words]
            return [result.audio], result.usage, {"duration": result.duration_s, "words": words,
                                                  "note": result.note}

        refs, usage, extra = await _cached_call(rt, key, call, payer=story_id)
        if extra.get("note"):
            notes.add(str(extra["note"]))
        narration = Narration(
            media=refs[0],
            text=scene.narration,
            duration_s=float(extra["duration"]),
            words=[WordTiming.model_validate(w) for w in extra["words"]],
            provider=usage.provider,
        )

        def apply(s: Story) -> None:
            target = s.scenes[scene.index]
            if target.narration == narration.text:
                target.voice = narration
            _charge(s, "voice", usage, key, scene.index)

        return apply

    todo = [sc for sc in story.scenes if sc.needs_voice]
    await _each_scene(rt, story_id, "voice", Status.voicing, todo, speak, done_word="voiced",
                      concurrency=2)
    for note in sorted(notes):  # no voice for the story's language: tell the chat once
        await _emit(rt, story, EventKind.notice, step="voice", message=note)
    await _advance(rt, story_id, Status.voicing, Status.assembling, "assemble")


# --------------------------------------------------------------------------- assemble


async def step_assemble(rt: Runtime, story_id: str, kw: dict[str, Any]) -> None:
    from pipeline.render import assemble as asm

    story = await _load(rt, story_id, Status.assembling, "assemble")
    await _progress(rt, story, "assemble", 0, 2, "putting the video together")
    width, height = story.options.frame_size()
    cuts = []
    for scene in story.scenes:
        frame = scene.picked_frame()
        if frame is None or scene.clip is None or scene.voice is None:
            raise StoryloomError(f"scene {scene.index + 1} is missing its frame, clip or voice")
        cuts.append(
            asm.SceneCut(
                clip=await rt.media.path(scene.clip.media),
                narration=await rt.media.path(scene.voice.media),
                narration_s=scene.voice.duration_s,
                words=scene.voice.words,
                caption=scene.narration,
                frame=await rt.media.path(frame.media),
            )
        )
    music_path: Path | None = None
    if story.options.music:
        slots = asm.plan_timeline(
            [c.narration_s for c in cuts], asm.CROSSFADE_S, fps=rt.settings.fps
        )
        total_s = music_length(slots[-1].start + slots[-1].length)
        request = MusicRequest(duration_s=total_s, mood="calm", seed=seed_for(story.id, "music"))
        music_key = input_key("music", request.model_dump_json(), _chain_spec(rt, "music"))

        async def call() -> tuple[list[Media], Usage, Any]:
            result = await rt.providers.music.run(lambda p: p.compose(request))
            return [result.audio], result.usage, None

        # a bed made before (the story reassembled after a regeneration) costs nothing more
        refs, usage, _ = await _cached_call(
            rt, music_key, call, payer=story_id,
            before_spending=lambda: _check_budget(rt, story, "assemble"))
        music_path = await rt.media.path(refs[0])
        music_usage: Usage | None = usage

        def pay(s: Story, u: Usage = usage, k: str = music_key) -> None:
            _charge(s, "music", u, k)  # now: the video may yet fail, the bed is paid

        await rt.store.update(story_id, pay)
    else:
        music_usage, music_key = None, ""

    with scratch_dir(rt.settings.data_dir) as tmp:  # found and swept if this worker is killed
        spec = asm.AssemblySpec(
            scenes=cuts,
            music=music_path,
            width=width,
            height=height,
            fps=rt.settings.fps,
            out=Path(tmp) / "story.mp4",
            sheet=Path(tmp) / "storyboard.png",
            title=story.title,
            size_cap_bytes=story.options.size_cap_bytes,
            threads=rt.settings.encode_threads,
        )
        result = await asyncio.to_thread(asm.assemble, spec)
        video_ref = await rt.media.put_file(result.video, "video/mp4")
        sheet_ref = await rt.media.put_file(result.sheet, "image/png")
    final = FinalVideo(media=video_ref, contact_sheet=sheet_ref, duration_s=result.duration_s,
                       width=result.width, height=result.height)

    def finish(s: Story) -> None:
        _expect(Status.assembling)(s)
        s.video = final
        if music_usage is not None:
            _charge(s, "music", music_usage, music_key)  # once, however often reassembled
        s.error = None
        s.failed_step = None
        s.transition(Status.done)

    story = await rt.store.update(story_id, finish)
    await _emit(rt, story, EventKind.video, step="assemble", current=2, total=2,
                message=f"{story.title} is ready")


# --------------------------------------------------------------------------- failures


STEP_STATUS = {
    "script": Status.drafting,
    "cast": Status.casting,
    "storyboard": Status.storyboarding,
    "animate": Status.animating,
    "voice": Status.voicing,
    "assemble": Status.assembling,
}


_STRUCTURED = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")


def plain_words(text: str, limit: int = 400) -> str:
    """``text`` without the JSON a service may have put in it (objects and lists become
    "(details in the log)"), on one line, at most ``limit`` characters."""
    previous = None
    while previous != text:
        previous, text = text, _STRUCTURED.sub("\x00", text)
    text = re.sub(r"\x00(\s*\x00)*", "(details in the log)", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def explain(err: BaseException) -> str:
    """What went wrong, in words for the person who asked; never a key, a traceback or a
    service's raw answer."""
    message = getattr(err, "user_message", None)
    if isinstance(message, str):
        return message
    if isinstance(err, StoryloomError | ProviderError):
        return plain_words(str(err))
    return f"an internal error ({type(err).__name__}) stopped this step"


async def on_failure(rt: Runtime, story_id: str, step: str, err: BaseException) -> None:
    if isinstance(err, Stale | StoryNotFound):
        log.info("dropping stale job", extra={"story_id": story_id, "step": step, "why": str(err)})
        return
    if isinstance(err, CorruptStory):
        await rt.store.mark_corrupt(story_id, err.reason)
        return
    log.error("step failed", extra={"story_id": story_id, "step": step}, exc_info=err)
    reason = explain(err)
    if isinstance(err, MediaNotFound):  # say what of the story, never a server path
        from pipeline.repair import describe, missing_media

        try:
            reason = describe(await missing_media(await rt.store.get(story_id), rt.media.exists))
        except StoryloomError:
            reason = describe([])

    def fail(s: Story) -> None:
        if s.finished:
            raise Stale("already finished")
        if step in STEP_STATUS and s.status != STEP_STATUS[step]:
            raise Stale(f"the story left {step} (it is {s.status})")  # a late, stale job
        s.transition(Status.failed)
        s.error = reason
        s.failed_step = step

    try:
        story = await rt.store.update(story_id, fail)
    except Stale:
        return
    await _emit(rt, story, EventKind.failed, step=step, message=reason)


def _community_gate(step: str, fn: Callable[[Runtime, str, dict[str, Any]], Awaitable[None]]
                    ) -> Callable[[Runtime, str, dict[str, Any]], Coroutine[Any, Any, None]]:
    """A community story's paid step waits for a moderator when it would go over the cap or the
    month's budget; after the step, the community's ledger, votes and gallery follow."""

    async def run(rt: Runtime, story_id: str, kw: dict[str, Any]) -> None:
        if not await polls.may_spend(rt, story_id, step):
            return
        try:
            await fn(rt, story_id, kw)
        except Stale:
            await polls.after_step(rt, story_id, step)
            raise
        await polls.after_step(rt, story_id, step)

    run.__name__ = run.__qualname__ = fn.__name__
    return run


StepFunction = Callable[[Runtime, str, dict[str, Any]], Coroutine[Any, Any, None]]
STEP_FUNCTIONS: dict[str, StepFunction] = {
    "script": step_script,
    "cast": step_cast,
    "storyboard": step_storyboard,
    "animate": step_animate,
    "voice": step_voice,
    "assemble": step_assemble,
}
STEP_FUNCTIONS = {name: _community_gate(name, fn) for name, fn in STEP_FUNCTIONS.items()}
