"""The language a story is told in: detected from the idea when the chat did not choose one,
carried to the narrator, and said in the chat when no voice speaks it."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from pipeline.api import StoryAPI
from pipeline.events import EventKind
from pipeline.language import detect_language, story_language
from pipeline.models import Platform, Status
from pipeline.runtime import Runtime
from tests.factories import ALICE, ROOM
from tests.pipeline_helpers import finished


@pytest.mark.parametrize(
    ("idea", "language"),
    [
        ("Un zorro y un búho exploran el bosque nevado", "es"),
        ("Кит и маяк", "ru"),  # short Russian without ы, э or ё
        ("Кіт і маяк", "uk"),
        ("鲸鱼和灯塔", "zh"),
        ("クジラと灯台", "ja"),
        ("고래와 등대", "ko"),
        ("الحوت والمنارة", "ar"),
        ("Time machine for a lonely robot", "en"),  # a near tie goes to English
    ],
)
def test_the_idea_language_is_detected(idea: str, language: str) -> None:
    assert detect_language(idea) == language


@pytest.mark.parametrize("idea", ["🐱🚀🌙", "Dragon", "Hello World", "..."])
def test_too_little_to_tell_keeps_the_default(idea: str) -> None:
    assert detect_language(idea) is None
    assert story_language(idea, None, "en") == "en"


def test_the_chat_choice_wins() -> None:
    assert story_language("一只熊猫学会了弹钢琴", "fr") == "fr"


async def test_a_new_story_takes_the_idea_language_unless_the_chat_chose(rt: Runtime) -> None:
    api = StoryAPI(rt)
    detected = await api.start_story("一只熊猫在竹林里学会了弹钢琴", ALICE, ROOM,
                                     api.default_options(scenes=3))
    assert detected.options.language == "zh"
    chosen = await api.start_story("一只熊猫在竹林里学会了弹钢琴", ALICE, ROOM,
                                   api.default_options(scenes=3, language="en"))
    assert chosen.options.language == "en"


@pytest.mark.slow
async def test_a_language_without_a_voice_is_narrated_and_the_chat_is_told_once(
    rt: Runtime,
) -> None:
    await rt.outbox.ensure_group(Platform.console, "lang")
    api = StoryAPI(rt)
    options = api.default_options(scenes=3, candidates=1, pick="auto", language="yo")
    story = await api.start_story("Ọmọ kékeré kan rí ẹja ńlá kan nínú odò.", ALICE, ROOM,
                                  options)
    story = await finished(rt, story)
    assert story.status == Status.done, story.error
    for scene in story.scenes:
        assert scene.voice is not None
        data = (await rt.media.path(scene.voice.media)).read_bytes()
        with wave.open(io.BytesIO(data)) as w:
            audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768.0
        assert float(np.sqrt(np.mean(audio**2))) > 0.02
    events = [ev for _, ev in await rt.outbox.read(Platform.console, "lang", "t", count=500,
                                                    block_ms=None)]
    notices = [ev for ev in events if ev.kind == EventKind.notice and ev.step == "voice"]
    assert len(notices) == 1
    assert "yo" in notices[0].message and "English" in notices[0].message


async def test_a_chat_language_setting_wins_over_detection(rt: Runtime) -> None:
    from bots.core import intents as it
    from bots.core.conversation import Conversation

    conv = await Conversation.create(rt, Platform.console)
    dm = ROOM.model_copy(update={"is_group": False, "chat_id": "dm-lang"})
    idea = "Un zorro y un búho exploran el bosque nevado"
    await conv.handle(it.StartStory(idea=idea), ALICE, dm)
    views = await conv.handle(it.ChangeSettings(key="language", value="fr"), ALICE, dm)
    assert "language fr" in views[0].text  # type: ignore[union-attr]
    await conv.handle(it.StartStory(idea=idea), ALICE, dm)
    stories = [await rt.store.get(sid) for sid in await rt.store.by_owner(ALICE)]
    assert sorted(s.options.language for s in stories) == ["es", "fr"]


async def test_the_bots_show_a_voice_notice_once(rt: Runtime) -> None:
    from bots.core.conversation import Conversation
    from bots.core.pump import EventPump
    from bots.core.views import AnyView, Text
    from pipeline.events import StoryEvent

    sent: list[AnyView] = []

    class Screen:
        async def send(self, chat: object, view: AnyView, once: str = "") -> list[str]:
            sent.append(view)
            return [str(len(sent))]

        async def edit(self, chat: object, view: AnyView, refs: list[str]) -> bool:
            return True

        async def retire(self, chat: object, refs: list[str]) -> None:
            return None

    conv = await Conversation.create(rt, Platform.console)
    api = StoryAPI(rt)
    story = await api.start_story("Ọmọ kékeré kan rí ẹja.", ALICE, ROOM,
                                  api.default_options(scenes=3, language="yo"))
    pump = EventPump(conv, Screen())
    note = "There is no offline voice for the language “yo”: the English voice reads it."
    for _ in range(2):  # a voice step run twice says it once
        await pump.process(StoryEvent.of(story, EventKind.notice, step="voice", message=note))
    notices = [v for v in sent if isinstance(v, Text) and v.text == note]
    assert len(notices) == 1
