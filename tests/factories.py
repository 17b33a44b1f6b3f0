"""Small builders for test stories."""

from __future__ import annotations

from pipeline.models import ChatRef, Platform, Story, StoryOptions, UserRef

ALICE = UserRef(platform=Platform.console, user_id="alice", display_name="Alice")
BOB = UserRef(platform=Platform.console, user_id="bob", display_name="Bob")
ROOM = ChatRef(platform=Platform.console, chat_id="room-1", is_group=True)


def story(idea: str = "A lighthouse keeper befriends a stranded whale", **opts: object) -> Story:
    return Story(idea=idea, owner=ALICE, chat=ROOM, options=StoryOptions(**opts))  # type: ignore[arg-type]
