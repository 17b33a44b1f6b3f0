"""A community (a group chat, or a Discord server): its settings, moderators, channels, spend
ledger, story quota and gallery, as one revisioned document in Redis.

The document is keyed ``platform:chat_id`` (or the guild on Discord) and changed only by
compare-and-set (:class:`pipeline.store.Documents`), so two moderators at once never lose a
change. The spend ledger holds each story's spend per month, set (not added) from the story's
own cost entries, so recording it twice changes nothing.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from pipeline.errors import BadRequest
from pipeline.models import Story, UserRef, VoteRules, now
from pipeline.store import Documents

DAY_S = 24 * 3600
GALLERY_KEEP = 100
STORIES_KEEP = 500


class CommunitySettings(BaseModel):
    decides: Literal["owner", "vote"] = "vote"
    window_s: int = Field(120, ge=30, le=86_400)
    quorum: int = Field(1, ge=1, le=1000)
    starters: str = Field("everyone", description="'everyone', or the role that may start")
    quota_per_day: int | None = Field(3, ge=1, le=100, description="stories per member per day")
    budget_month_usd: float | None = Field(None, ge=0, le=1_000_000)
    cap_story_usd: float | None = Field(None, ge=0, le=100_000)
    auto_make: bool = True
    new_frames_threshold: int = Field(2, ge=1, le=1000)

    def rules(self) -> VoteRules | None:
        if self.decides != "vote":
            return None
        return VoteRules(window_s=self.window_s, quorum=self.quorum,
                         new_frames_threshold=self.new_frames_threshold,
                         auto_make=self.auto_make)


class SpendLine(BaseModel):
    story_id: str
    member: str = Field(description="the story owner's key")
    name: str
    month: str
    usd: float


class GalleryEntry(BaseModel):
    story_id: str
    title: str
    owner: str
    voters: list[str] = Field(default_factory=list)
    contributors: list[str] = Field(default_factory=list)
    cost_usd: float = 0.0
    duration_s: float = 0.0
    video_key: str = ""
    url: str = ""
    at: float = Field(default_factory=now)


class Community(BaseModel):
    key: str
    settings: CommunitySettings = Field(default_factory=CommunitySettings)
    moderators: dict[str, str] = Field(default_factory=dict, description="user key -> name")
    moderator_role: str = ""
    stories_channel: str = ""
    gallery_channel: str = ""
    set_up_by: str = ""
    set_up_at: float = Field(default_factory=now)
    spend: dict[str, SpendLine] = Field(default_factory=dict, description="'story:month' -> line")
    starts: dict[str, list[float]] = Field(default_factory=dict, description="member -> times")
    stories: list[str] = Field(default_factory=list)
    gallery: list[GalleryEntry] = Field(default_factory=list)

    # ------------------------------------------------------------------ money

    def spent(self, month: str) -> float:
        return round(sum(line.usd for line in self.spend.values() if line.month == month), 4)

    def spent_by_member(self, month: str) -> dict[str, tuple[str, float]]:
        out: dict[str, tuple[str, float]] = {}
        for line in self.spend.values():
            if line.month == month:
                name, usd = out.get(line.member, (line.name, 0.0))
                out[line.member] = (name, round(usd + line.usd, 4))
        return out

    def remaining(self, month: str) -> float | None:
        budget = self.settings.budget_month_usd
        return None if budget is None else round(budget - self.spent(month), 4)

    def spend_problem(self, story: Story, estimate_usd: float, month: str) -> str | None:
        """Why a step costing ``estimate_usd`` needs a moderator's approval, or ``None``."""
        cap = self.settings.cap_story_usd
        after = story.cost_usd + estimate_usd
        if cap is not None and after > cap + 1e-9:
            return (f"it would bring this story to about ${after:.2f}, over the community's "
                    f"${cap:.2f} cap per story")
        left = self.remaining(month)
        if left is not None and estimate_usd > left + 1e-9:
            return (f"it costs about ${estimate_usd:.2f} and the community has ${max(left, 0):.2f} "
                    f"of its ${self.settings.budget_month_usd:.2f} left this month")
        return None

    # ------------------------------------------------------------------ quotas

    def starts_today(self, member: str, at: float) -> list[float]:
        return [t for t in self.starts.get(member, []) if t > at - DAY_S]


def month_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m")


def when_text(at: float, from_: float) -> str:
    """'14:05 UTC (in 3 h 2 min)'."""
    left = max(0, int(at - from_))
    hours, minutes = divmod(left // 60, 60)
    span = f"{hours} h {minutes} min" if hours else f"{max(1, minutes)} min"
    return f"{datetime.fromtimestamp(at, UTC).strftime('%H:%M UTC')} (in {span})"


# --------------------------------------------------------------------------- settings input

SETTING_HELP = {
    "decides": "who decides on frames: owner, or vote (the community votes)",
    "window": "how long a vote stays open: 30s to 24h, e.g. 90s, 2m, 1h",
    "quorum": "the fewest votes that count: a whole number from 1 to 1000",
    "starters": "who may start stories: everyone, or the name of a role",
    "quota": "stories each member may start per day: 1 to 100, or off",
    "budget": "the community's budget per month in USD, e.g. 20 or 7.50, or off",
    "cap": "the most one story may spend in USD without a moderator's approval, or off",
    "automake": "make the video as soon as every scene is decided: on or off",
    "newframes": "how many members must ask for new frames of a scene: 1 to 1000",
}
SETTING_FIELDS = {
    "decides": "decides", "window": "window_s", "quorum": "quorum", "starters": "starters",
    "quota": "quota_per_day", "budget": "budget_month_usd", "cap": "cap_story_usd",
    "automake": "auto_make", "newframes": "new_frames_threshold",
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?$")


def parse_duration(raw: str) -> int:
    m = _DURATION.match(raw.strip().lower())
    if m is None:
        raise ValueError
    unit = (m.group(2) or "s")[0]
    return round(float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit])


def _off(raw: str) -> bool:
    return raw.strip().lower() in ("off", "none", "no", "unlimited", "0")


def parse_setting(key: str, raw: str) -> tuple[str, object]:
    """The settings field and value a person typed, or :class:`BadRequest` saying what fits."""
    key = key.strip().lower().replace("_", "").replace("-", "")
    if key not in SETTING_FIELDS:
        raise BadRequest("community settings are " + ", ".join(SETTING_FIELDS))
    raw = raw.strip()
    field = SETTING_FIELDS[key]
    bad = BadRequest(f"{key} is {SETTING_HELP[key]}; {raw!r} is not")
    try:
        value: object
        if key == "decides":
            value = {"owner": "owner", "vote": "vote", "votes": "vote",
                     "community": "vote"}[raw.lower()]
        elif key == "window":
            value = parse_duration(raw)
            if not 30 <= int(value) <= 86_400:
                raise ValueError
        elif key in ("quorum", "newframes"):
            value = int(raw)
            if not 1 <= int(value) <= 1000:
                raise ValueError
        elif key == "quota":
            value = None if _off(raw) else int(raw)
            if value is not None and not 1 <= int(value) <= 100:
                raise ValueError
        elif key in ("budget", "cap"):
            value = None if raw.lower() in ("off", "none", "unlimited") else float(
                raw.removeprefix("$"))
            if value is not None and not 0 <= float(value) <= 1_000_000:
                raise ValueError
        elif key == "automake":
            value = {"on": True, "yes": True, "true": True, "off": False, "no": False,
                     "false": False}[raw.lower()]
        else:
            value = raw.removeprefix("@") or "everyone"
            if len(str(value)) > 100:
                raise ValueError
    except (KeyError, ValueError):
        raise bad from None
    return field, value


def settings_lines(s: CommunitySettings) -> list[str]:
    def usd(v: float | None) -> str:
        return "off" if v is None else f"${v:.2f}"

    window = f"{s.window_s // 60} min" if s.window_s % 60 == 0 else f"{s.window_s} s"
    return [
        f"decides: {'the community, by vote' if s.decides == 'vote' else 'the story owner'}",
        f"window: {window} per vote",
        f"quorum: {s.quorum} vote{'s' if s.quorum != 1 else ''}",
        f"newframes: {s.new_frames_threshold} members to redraw a scene",
        f"starters: {s.starters}",
        f"quota: {'off' if s.quota_per_day is None else f'{s.quota_per_day} per member per day'}",
        f"budget: {usd(s.budget_month_usd)} per month",
        f"cap: {usd(s.cap_story_usd)} per story",
        f"automake: {'on' if s.auto_make else 'off'}",
    ]


# --------------------------------------------------------------------------- the store


class QuotaHit(BadRequest):
    """A member has started as many stories as the day allows, or is starting them too fast."""


class Communities:
    """Community documents in Redis, changed by compare-and-set."""

    RATE_S = 20  # the least time between two /story of one member

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.docs: Documents[Community] = Documents(redis, "sl:community:", Community)

    async def get(self, key: str) -> Community | None:
        return await self.docs.get(key)

    async def setup(self, key: str, by: UserRef, *, stories_channel: str = "",
                    gallery_channel: str = "", moderator_role: str = "") -> tuple[Community, bool]:
        """Create the community (``True``) or keep it and refresh its channels (``False``)."""
        created: list[bool] = []

        def change(c: Community | None) -> Community:
            created.clear()
            if c is None:
                created.append(True)
                c = Community(key=key, set_up_by=by.display_name or by.user_id)
            c.stories_channel = stories_channel or c.stories_channel
            c.gallery_channel = gallery_channel or c.gallery_channel
            c.moderator_role = moderator_role or c.moderator_role
            return c

        return await self.docs.update(key, change), bool(created)

    async def _change(self, key: str, edit: object) -> Community:
        def change(c: Community | None) -> Community:
            if c is None:
                raise BadRequest("this chat is not set up as a community yet: an admin sends "
                                 "/setup")
            edit(c)  # type: ignore[operator]
            return c

        return await self.docs.update(key, change)

    async def set_setting(self, key: str, name: str, raw: str) -> Community:
        field, value = parse_setting(name, raw)

        def edit(c: Community) -> None:
            c.settings = CommunitySettings.model_validate(
                {**c.settings.model_dump(), field: value})

        return await self._change(key, edit)

    async def set_moderator(self, key: str, user: UserRef, on: bool) -> Community:
        def edit(c: Community) -> None:
            if on:
                c.moderators[user.key] = user.display_name or user.user_id
            else:
                c.moderators.pop(user.key, None)

        return await self._change(key, edit)

    async def reserve_start(self, key: str, member: UserRef, at: float | None = None
                            ) -> Community:
        """Count a story start against the member's daily quota, or raise :class:`QuotaHit`."""
        at = time.time() if at is None else at
        slot = f"sl:community:rate:{key}:{member.key}"
        if not await self.redis.set(slot, "1", ex=self.RATE_S, nx=True):
            left = max(1, int(await self.redis.ttl(slot)))
            raise QuotaHit(f"one story at a time, please: you can start another in {left} s")

        def edit(c: Community) -> None:
            quota = c.settings.quota_per_day
            today = c.starts_today(member.key, at)
            if quota is not None and len(today) >= quota:
                reset = min(today) + DAY_S
                raise QuotaHit(f"you have started {len(today)} of your {quota} stories for today; "
                               f"you can start another at {when_text(reset, at)}")
            c.starts[member.key] = [*today, at]

        try:
            return await self._change(key, edit)
        except QuotaHit:
            await self.redis.delete(slot)  # a refused start does not hold the member back
            raise

    async def add_story(self, key: str, story_id: str) -> None:
        def edit(c: Community) -> None:
            if story_id not in c.stories:
                c.stories = ([*c.stories, story_id])[-STORIES_KEEP:]

        await self._change(key, edit)

    async def record_spend(self, story: Story) -> bool:
        """Set the story's spend per month in the ledger; ``True`` when it changed."""
        if story.community is None:
            return False
        months: dict[str, float] = {}
        for cost in story.costs:
            m = month_of(cost.at)
            months[m] = round(months.get(m, 0.0) + cost.usd, 6)
        current = await self.get(story.community)
        if current is None:
            return False
        lines = {f"{story.id}:{m}": usd for m, usd in months.items() if usd > 0}
        if all(k in current.spend and abs(current.spend[k].usd - v) < 1e-9
               for k, v in lines.items()):
            return False
        name = story.owner.display_name or story.owner.user_id

        def edit(c: Community) -> None:
            for k, usd in lines.items():
                c.spend[k] = SpendLine(story_id=story.id, member=story.owner.key, name=name,
                                       month=k.split(":", 1)[1], usd=usd)

        await self._change(story.community, edit)
        return True

    async def add_to_gallery(self, story: Story, url: str = "") -> bool:
        """Record a finished story in the gallery once; ``True`` the first time."""
        if story.community is None or story.video is None:
            return False
        credits = story.credits()
        entry = GalleryEntry(
            story_id=story.id, title=story.title or story.idea[:80],
            owner=story.owner.display_name or story.owner.user_id, voters=credits.voters,
            contributors=credits.contributors, cost_usd=story.cost_usd,
            duration_s=story.video.duration_s, video_key=story.video.media.key, url=url)
        added: list[bool] = []

        def edit(c: Community) -> None:
            added.clear()
            if any(g.story_id == story.id for g in c.gallery):
                return
            added.append(True)
            c.gallery = ([*c.gallery, entry])[-GALLERY_KEEP:]

        await self._change(story.community, edit)
        return bool(added)
