"""Media a story needs but the media store lost: a message about the story (never a server
path), and ``retry`` makes again what is missing."""

from __future__ import annotations

import pytest

from pipeline.api import StoryAPI
from pipeline.media import LocalMediaStore
from pipeline.models import Status
from pipeline.runtime import Runtime
from tests.factories import ALICE, ROOM
from tests.pipeline_helpers import finished

pytestmark = pytest.mark.slow


async def test_lost_media_is_named_by_scene_and_retry_makes_it_again(rt: Runtime) -> None:
    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto", music=False)
    story = await finished(rt, await api.start_story("A heron and a fox share a frozen pond",
                                                     ALICE, ROOM, options))
    assert story.status == Status.done
    media = rt.media
    assert isinstance(media, LocalMediaStore)
    frame = story.scenes[0].candidates[0].media
    clip = story.scenes[1].clip
    assert clip is not None
    media._file(frame.key).unlink()
    media._file(clip.media.key).unlink()

    # a later reassembly finds them gone
    story = await finished(rt, await api.regenerate(story.id, 2, "voice"))
    assert story.status == Status.failed
    assert story.error == ("scene 1's frame and scene 2's clip are missing from the media "
                           "store; retry the story to make it again")
    assert str(media.root) not in (story.error or "")

    retried = await api.retry(story.id)
    assert retried.status == Status.storyboarding  # the earliest step that makes one of them
    story = await finished(rt, retried)
    assert story.status == Status.done, story.error
    assert await media.exists(story.scenes[0].candidates[0].media)
    assert story.scenes[1].clip is not None and await media.exists(story.scenes[1].clip.media)
    assert story.scenes[0].generation == 1 and story.scenes[2].generation == 0
