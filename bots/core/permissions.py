"""Who may decide what. Pure rules over neutral identities; no I/O.

In a private chat the person decides. In a group the story's owner and the chat's admins decide on
a story (picks, edits, approval, cancel); other members may start their own stories and, once the
community votes exist, vote. Chat-wide settings in a group are for admins.
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.models import ChatRef, Story, UserRef


class Decision(StrEnum):
    allow = "allow"
    vote = "vote"  # may only vote (votes arrive with the community issue)
    deny = "deny"


def on_story(story: Story, actor: UserRef, chat: ChatRef, is_admin: bool) -> Decision:
    """May ``actor`` decide on ``story`` from ``chat``?"""
    if story.chat.key != chat.key:
        return Decision.deny  # a story is only acted on from the chat it lives in
    if actor.key == story.owner.key:
        return Decision.allow
    if not chat.is_group:
        return Decision.deny
    return Decision.allow if is_admin else Decision.vote


def on_settings(actor: UserRef, chat: ChatRef, is_admin: bool) -> Decision:
    if not chat.is_group:
        return Decision.allow
    return Decision.allow if is_admin else Decision.deny


def needs_admin(story: Story | None, actor: UserRef, chat: ChatRef) -> bool:
    """Whether the answer depends on the actor being an admin (so an adapter asks the platform)."""
    if not chat.is_group:
        return False
    return story is None or actor.key != story.owner.key
