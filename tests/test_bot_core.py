"""The neutral conversation core: tokens, permissions, progress and timing, without a platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.core import intents as it
from bots.core import permissions as perm
from bots.core.conversation import Conversation, eta_seconds, eta_text, progress_bar, status_due
from bots.core.tokens import Action, BadToken, TokenSigner, load_secret
from pipeline.models import ChatRef, Platform, UserRef
from pipeline.runtime import Runtime
from tests.factories import story as make_story

SIGNER = TokenSigner(b"k" * 32)
OWNER = UserRef(platform=Platform.telegram, user_id="1", display_name="Ann")
OTHER = UserRef(platform=Platform.telegram, user_id="2")
DM = ChatRef(platform=Platform.telegram, chat_id="1")
GROUP = ChatRef(platform=Platform.telegram, chat_id="-100", is_group=True)


def test_tokens_roundtrip_fit_and_resist_tampering() -> None:
    biggest = Action("p", "abcdefghij", (11, 4, 35 * 36 * 36))
    token = SIGNER.sign(GROUP.key, biggest)
    assert len(token.encode()) <= 64
    assert SIGNER.verify(GROUP.key, token) == biggest
    with pytest.raises(BadToken):
        SIGNER.verify(DM.key, token)  # replayed in another chat
    with pytest.raises(BadToken):
        SIGNER.verify(GROUP.key, token.replace("abcdefghij", "abcdefghik"))
    with pytest.raises(BadToken):
        SIGNER.verify(GROUP.key, token[:-1] + ("A" if token[-1] != "A" else "B"))
    with pytest.raises(BadToken):
        TokenSigner(b"x" * 32).verify(GROUP.key, token)
    for junk in ("", "p", "....", "p.abc", "é" * 10, "p.a.b.c.d.e.f.g" * 10):
        with pytest.raises(BadToken):
            SIGNER.verify(GROUP.key, junk)


async def test_secret_is_made_once_and_shared(rt: Runtime) -> None:
    a = await load_secret(rt.redis)
    b = await load_secret(rt.redis)
    assert a == b and len(a) == 32
    assert await load_secret(rt.redis, "configured") != a


def test_permissions() -> None:
    dm_story = make_story()
    dm_story = dm_story.model_copy(update={"owner": OWNER, "chat": DM})
    assert perm.on_story(dm_story, OWNER, DM, False) == perm.Decision.allow
    assert perm.on_story(dm_story, OTHER, DM, True) == perm.Decision.deny
    g = dm_story.model_copy(update={"chat": GROUP})
    assert perm.on_story(g, OWNER, GROUP, False) == perm.Decision.allow
    assert perm.on_story(g, OTHER, GROUP, True) == perm.Decision.allow
    assert perm.on_story(g, OTHER, GROUP, False) == perm.Decision.vote
    assert perm.on_story(g, OWNER, DM, False) == perm.Decision.deny  # from another chat
    assert perm.on_settings(OTHER, GROUP, False) == perm.Decision.deny
    assert perm.on_settings(OTHER, DM, False) == perm.Decision.allow
    assert not perm.needs_admin(g, OWNER, GROUP) and perm.needs_admin(g, OTHER, GROUP)


def test_progress_eta_and_throttle() -> None:
    assert progress_bar(0) == "░" * 10 and progress_bar(0.5) == "█████░░░░░"
    assert progress_bar(2) == "█" * 10
    # halfway through animating 6 scenes in 12 s: 12 s more, then voice and assembly
    assert eta_seconds("animate", 3, 6, 12.0, 6) == 12.0 + 1.5 * 6 + 12.0
    assert eta_seconds("assemble", 0, 0, 0.0, 6) == 12.0
    assert eta_seconds("unknown", 0, 0, 0, 6) is None
    assert eta_text(5) == "a few seconds left" and eta_text(42) == "about 40 s left"
    assert eta_text(300) == "about 5 min left"
    assert status_due(None, 10.0, 6.0) and not status_due(8.0, 10.0, 6.0)
    assert status_due(4.0, 10.0, 6.0)


async def test_conversation_tokens_map_to_intents(rt: Runtime) -> None:
    conv = Conversation(rt, Platform.telegram, b"s" * 32)
    b = conv.button(GROUP, "2", "p", "abcdefghij", 1, 2, 0)
    assert conv.intent_of(GROUP, b.token) == it.PickFrame(story_id="abcdefghij", scene=1,
                                                          choice=2, generation=0)
    b = conv.button(GROUP, "x", "o", "", 0, 1)
    assert conv.intent_of(GROUP, b.token) == it.ChangeSettings(key="aspect", value="16:9")
    bad = conv.button(GROUP, "x", "o", "", 0, 99)
    with pytest.raises(BadToken):
        conv.intent_of(GROUP, bad.token)
    views = await conv.press(bad.token, OWNER, GROUP)
    assert views[0].toast and views[0].error  # type: ignore[union-attr]


def test_status_lines_show_the_cost_so_far_and_the_budget() -> None:
    from bots.core.conversation import status_lines
    from bots.core.views import StatusView

    free = StatusView(story_id="s", slot="status", title="T", state="working", line="⏳")
    assert not any("$" in ln for ln in status_lines(free))  # offline: nothing to show
    paid = free.model_copy(update={"cost_usd": 0.456, "budget_usd": 2.0})
    assert "💰 $0.46 spent of a $2.00 budget" in status_lines(paid)


async def test_a_storys_status_view_carries_its_cost(rt: Runtime) -> None:
    from bots.core.conversation import Conversation, status_lines
    from pipeline.models import CostEntry, Platform
    from tests.factories import story as make_story

    conv = await Conversation.create(rt, Platform.console)
    s = make_story(budget_usd=1.5)
    s.costs.append(CostEntry(step="storyboard", provider="fal", usd=0.25))
    view = conv.status_view(s, None)
    assert "💰 $0.25 spent of a $1.50 budget" in status_lines(view)


async def test_refusals_end_with_one_full_stop(rt: Runtime) -> None:
    """A refusal whose text already ends a sentence is not given a second full stop."""
    from bots.core.views import Text

    conv = Conversation(rt, Platform.telegram, b"s" * 32)
    s = make_story().model_copy(update={"owner": OWNER, "chat": GROUP})
    await rt.store.create(s)
    refusals: list[str] = []
    for intent in (it.PickFrame(story_id=s.id, scene=0, choice=1), it.Approve(story_id=s.id),
                   it.Cancel(story_id=s.id), it.StartStory(idea="x" * 3000),
                   it.StartStory(idea="")):
        views = await conv.handle(intent, OTHER, GROUP)
        assert len(views) == 1 and isinstance(views[0], Text) and views[0].error, views
        refusals.append(views[0].text)
    assert "Only Ann (who started this story) and the group's admins can decide on it." \
        in refusals
    for text in refusals:
        assert text.endswith(".") and not text.endswith(".."), text

    from bots.core.conversation import sentence

    assert sentence("the idea is empty") == "The idea is empty."
    assert sentence("really?") == "Really?"


async def test_a_photo_with_an_idea_is_noted_not_pretended_used(rt: Runtime) -> None:
    from bots.core.views import Text

    conv = Conversation(rt, Platform.telegram, b"s" * 32)
    plain = await conv.handle(it.StartStory(idea="a whale learns to sing"), OWNER, DM)
    assert plain == []  # the event pump shows the story
    views = await conv.handle(it.StartStory(idea="a fox in the snow", photo="ph1-large"),
                              OWNER, DM)
    assert len(views) == 1 and isinstance(views[0], Text) and not views[0].error
    assert "noted your photo" in views[0].text and "not used" in views[0].text
    assert len(await rt.store.by_owner(OWNER)) == 2


async def test_a_scenes_frames_become_one_numbered_picture(tmp_path: Path) -> None:
    """Three 9:16 frames side by side in one JPEG, in order, each under its number badge."""
    import io

    from PIL import Image

    from bots.core.frames import numbered_sheet

    colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    paths = []
    for n, c in enumerate(colors):
        p = tmp_path / f"f{n}.png"
        Image.new("RGB", (90, 160), c).save(p)
        paths.append(p)
    data = await numbered_sheet(paths, tile_h=320)
    sheet = Image.open(io.BytesIO(data))
    assert sheet.format == "JPEG" and sheet.height < sheet.width < 3 * sheet.height
    tile = (sheet.width - 4 * 8) // 3
    for n, c in enumerate(colors):  # the bottom of each tile is its frame, in order
        x = 8 + n * (tile + 8) + tile // 2
        got = sheet.getpixel((x, sheet.height - 30))
        assert all(abs(a - b) < 40 for a, b in zip(got, c, strict=True)), (n, got)
        badge = sheet.getpixel((8 + n * (tile + 8) + 8 + 4, 8 + 8 + 20))
        assert min(badge) > 200  # a white number badge in the top left corner
