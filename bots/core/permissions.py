"""Who may decide what. Pure rules over neutral identities; no I/O.

In a private chat the person decides. In a group the story's owner and the chat's admins decide on
a story (picks, edits, approval, cancel); other members may start their own stories and vote on
the stories their community decides by vote. Chat-wide settings in a group are for admins; a
community's moderators (named by admins) count as admins on its stories.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pipeline.models import ChatRef, Story, UserRef


class Decision(StrEnum):
    allow = "allow"
    vote = "vote"  # may only vote, in a story its community decides by vote
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


# --------------------------------------------------------------------------- communities

CommunityAction = Literal["setup", "settings", "moderators", "close", "override", "approve_spend"]

WHO_MAY: dict[str, str] = {
    "setup": "the group's admins",
    "settings": "the group's admins and moderators",
    "moderators": "the group's admins",
    "close": "the story's owner, the group's admins and moderators",
    "override": "the story's owner, the group's admins and moderators",
    "approve_spend": "the group's admins and moderators",
    "start": "members with the role",
}


def on_community(action: CommunityAction, *, is_admin: bool, is_moderator: bool,
                 is_owner: bool = False) -> Decision:
    """May the actor take a community ``action``? Moderators are named by admins (/mod)."""
    if is_admin:
        return Decision.allow
    if action in ("setup", "moderators"):
        return Decision.deny
    if action in ("close", "override") and is_owner:
        return Decision.allow
    return Decision.allow if is_moderator else Decision.deny


def refusal(action: str, what: str, moderators: list[str] | None = None) -> str:
    """'Only the group's admins and moderators (Mo, Ann) can change the community's settings.'"""
    who = WHO_MAY.get(action, "the group's admins")
    if moderators and "moderators" in who:
        who += f" ({', '.join(moderators[:5])})"
    return f"Only {who} can {what}."


def may_start(starters: str, *, is_admin: bool, is_moderator: bool, roles: set[str]) -> bool:
    """Who may start a story in a community: everyone, or members with the named role (and
    always its admins and moderators)."""
    if starters.lower() == "everyone" or is_admin or is_moderator:
        return True
    return starters.lower() in {r.lower() for r in roles}
