"""A fake Discord: the REST API (v10) and the gateway websocket on 127.0.0.1, in Discord's shapes.

The real discord.py client logs in, identifies on the gateway, receives READY and GUILD_CREATE,
and then whatever the test injects: slash commands, button presses, modal submits
(INTERACTION_CREATE), mentions (MESSAGE_CREATE) and reactions (MESSAGE_REACTION_ADD). Every REST
call is recorded, and the server keeps each channel's messages (with their edits) so a test can
assert what a person would see. Discord's limits are enforced as Discord answers them: content of
at most 2000 characters, at most 5 action rows of 5 buttons, custom_id of at most 100
characters, at most 10 attachments, the server's upload limit (10 MiB unless boosted, or a limit
the test sets) applied to the whole request (every file plus ``payload_json``: 413, code 40005),
an interaction callback at most 3 seconds after the interaction (and only once), followups with
the interaction's token for 15 minutes, and per-route rate limits: each channel's messages are one
bucket (its major parameter), every answer carries ``X-RateLimit-*`` headers with the route's
bucket hash, and a 429 carries ``retry_after``, ``global`` and ``X-RateLimit-Scope``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.base import RECORDED, FakeService

TOKEN = "MTIzNDU2.fake-discord-token.never-real"
APP_ID = 900_000_000_000_000_001
BOT_ID = APP_ID
OWNER_ID = 900_000_000_000_000_002
MiB = 1024 * 1024
TIER_LIMITS = {0: 10 * MiB, 1: 10 * MiB, 2: 50 * MiB, 3: 100 * MiB}
MESSAGES_BUCKET = "2d3c5a3bd6e2c4d8b0b1e1ab1e9c3f70"  # one hash for the route; channels split it
TOKEN_TTL_S = 15 * 60  # an interaction token works for followups this long
ALL_PERMISSIONS = (1 << 50) - 1
MEMBER_PERMISSIONS = 0x0000_0000_0000_0400 | 0x0000_0000_0000_0800 | 0x40 | 0x8000 | 0x10000 \
    | 0x0000_0008_0000_0000 | 0x0000_0040_0000_0000  # view, send, add reactions, attach, history..
MANAGE_MESSAGES = 0x2000
PERMISSION_BITS = {"send_messages": 0x800, "attach_files": 0x8000,
                   "create_public_threads": 0x0000_0008_0000_0000,
                   "send_messages_in_threads": 0x0000_0040_0000_0000}


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON exactly as Discord labels it (discord.py wants ``application/json`` and no charset)."""
    return web.Response(body=json.dumps(body).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time(), UTC).isoformat()


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = headers or {}


def user(uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": str(uid), "username": name.lower(), "discriminator": "0", "global_name": name,
            "avatar": None, "bot": bot, "public_flags": 0}


BOT_USER = user(BOT_ID, "Storyloom", bot=True)


@dataclass
class Msg:
    channel_id: int
    id: int
    author_id: int
    content: str = ""
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    edits: int = 0
    deleted: bool = False
    interaction: int | None = None  # the interaction this message answers (followups)

    @property
    def from_bot(self) -> bool:
        return self.author_id == BOT_ID

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)

    def buttons(self) -> list[dict[str, Any]]:
        return [c for row in self.components for c in row.get("components", [])]

    def button_labels(self) -> list[str]:
        return [b.get("label", "") for b in self.buttons()]

    def button(self, label_part: str) -> dict[str, Any]:
        for b in self.buttons():
            if label_part in b.get("label", ""):
                return b
        raise AssertionError(f"no button with {label_part!r} in {self.button_labels()}")


@dataclass
class Upload:
    """One multipart request: its whole size (files plus form fields) and the limit then."""

    path: str
    size: int
    limit: int
    files: int


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    user_id: int
    created: float
    data: dict[str, Any]
    responses: list[dict[str, Any]] = field(default_factory=list)  # callback bodies
    original: int | None = None  # message id of the original response
    refused: list[str] = field(default_factory=list)  # why a late or double callback failed
    message_id: int | None = None  # the message whose component was used


class FakeDiscord(FakeService):
    def __init__(self, *, channel_limit: tuple[int, float] = (50, 1.0),
                 deadline_s: float = 3.0) -> None:
        self.ids = itertools.count(1_200_000_000_000_000_000)
        self.guilds: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.members: dict[tuple[int, int], dict[str, Any]] = {}  # (guild, user) -> member
        self.messages: dict[int, Msg] = {}
        self.interactions: dict[int, Interaction] = {}
        self.denied: dict[int, set[str]] = {}  # channel -> permissions the bot lacks there
        self.commands: list[dict[str, Any]] = []
        self.command_puts = 0
        self.identifies: list[dict[str, Any]] = []
        self.errors: list[tuple[str, int, str]] = []  # (path, code, message) of every 4xx
        self.nonces: dict[str, int] = {}  # nonce -> message id, for enforce_nonce
        self.nonce_repeats = 0  # posts answered with an earlier message of the same nonce
        self.floods: list[str] = []  # the channel of every 429
        self.uploads: list[Upload] = []  # every request with files, refused or not
        self.too_large = 0  # 413s
        self.upload_limits: dict[int, int] = {}  # guild -> a limit set by the test
        self.flooded: dict[int, float] = {}  # channel -> when its long rate limit ends
        self.modals: list[dict[str, Any]] = []  # modal callbacks (type 9), newest last
        self.channel_limit = channel_limit
        self.deadline_s = deadline_s
        self._buckets: dict[int, list[float]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = itertools.count(1)
        super().__init__()

    # ------------------------------------------------------------------ world building

    def snowflake(self) -> int:
        return next(self.ids)

    def guild(self, name: str = "Story club", *, owner: int = OWNER_ID, premium_tier: int = 0,
              moderator_role: str = "") -> dict[str, Any]:
        gid = self.snowflake()
        roles = [{"id": str(gid), "name": "@everyone", "permissions": str(MEMBER_PERMISSIONS),
                  "position": 0, "color": 0, "hoist": False, "managed": False,
                  "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}]
        roles.append({"id": str(self.snowflake()), "name": "Helpers",
                      "permissions": str(MEMBER_PERMISSIONS | MANAGE_MESSAGES), "position": 2,
                      "color": 0, "hoist": False, "managed": False, "mentionable": False,
                      "flags": 0, "icon": None, "unicode_emoji": None})
        if moderator_role:
            roles.append({"id": str(self.snowflake()), "name": moderator_role,
                          "permissions": str(MEMBER_PERMISSIONS), "position": 1, "color": 0,
                          "hoist": False, "managed": False, "mentionable": False, "flags": 0,
                          "icon": None, "unicode_emoji": None})
        g = {"id": str(gid), "name": name, "owner_id": str(owner), "roles": roles,
             "premium_tier": premium_tier, "features": [], "emojis": [], "stickers": [],
             "member_count": 3, "large": False, "unavailable": False, "joined_at": iso(),
             "verification_level": 0, "default_message_notifications": 0,
             "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0,
             "preferred_locale": "en-US", "system_channel_id": None, "icon": None,
             "_channels": [], "_threads": []}
        self.guilds[gid] = g
        self.members[(gid, BOT_ID)] = self._member_json(gid, BOT_USER, [])
        return g

    def text_channel(self, guild: dict[str, Any], name: str = "stories") -> dict[str, Any]:
        cid = self.snowflake()
        ch = {"id": str(cid), "type": 0, "guild_id": guild["id"], "name": name, "position": 0,
              "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
              "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}
        self.channels[cid] = ch
        guild["_channels"].append(cid)
        return ch

    def dm(self, person: dict[str, Any]) -> dict[str, Any]:
        cid = self.snowflake()
        ch = {"id": str(cid), "type": 1, "recipients": [person], "last_message_id": None,
              "flags": 0}
        self.channels[cid] = ch
        return ch

    def role_id(self, guild: dict[str, Any], name: str) -> str:
        return next(r["id"] for r in guild["roles"] if r["name"] == name)

    def _member_json(self, gid: int, person: dict[str, Any], roles: list[str]) -> dict[str, Any]:
        return {"user": person, "roles": roles, "joined_at": iso(), "deaf": False, "mute": False,
                "flags": 0, "nick": None, "avatar": None, "pending": False,
                "premium_since": None, "communication_disabled_until": None}

    def join(self, guild: dict[str, Any], person: dict[str, Any], *, roles: tuple[str, ...] = (),
             manage_messages: bool = False) -> dict[str, Any]:
        gid = int(guild["id"])
        names = [*roles, *(["Helpers"] if manage_messages else [])]
        m = self._member_json(gid, person, [self.role_id(guild, r) for r in names])
        self.members[(gid, int(person["id"]))] = m
        return m

    def deny(self, channel: dict[str, Any], *perms: str) -> None:
        self.denied.setdefault(int(channel["id"]), set()).update(perms)

    def _perms_for(self, gid: int, uid: int) -> int:
        g = self.guilds[gid]
        if str(uid) == g["owner_id"]:
            return ALL_PERMISSIONS
        m = self.members.get((gid, uid), {})
        perms = 0
        for role in g["roles"]:
            if role["id"] == g["id"] or role["id"] in m.get("roles", []):
                perms |= int(role["permissions"])
        return perms

    def _public_member(self, gid: int, uid: int) -> dict[str, Any]:
        m = {k: v for k, v in self.members[(gid, uid)].items() if not k.startswith("_")}
        return m

    def guild_json(self, gid: int) -> dict[str, Any]:
        g = self.guilds[gid]
        out = {k: v for k, v in g.items() if not k.startswith("_")}
        out["channels"] = [self.channels[c] for c in g["_channels"]]
        out["threads"] = [self.channels[c] for c in g["_threads"] if c in self.channels]
        out["members"] = [self._public_member(gid, BOT_ID)]
        return out

    # ------------------------------------------------------------------ server plumbing

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/gateway", self.gateway)
        router.add_route("*", "/api/v10/{path:.*}", self.rest)

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway"

    # ------------------------------------------------------------------ the gateway

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                msg = json.loads(frame.data)
                op = msg.get("op")
                if op == 1:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._identify(ws, msg["d"])
                elif op == 6:  # no resumable sessions here: identify afresh
                    await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> None:
        if d.get("token") != TOKEN:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identifies.append({k: v for k, v in d.items() if k != "token"})
        shard = d.get("shard") or [0, 1]
        mine = [gid for gid in self.guilds if (gid >> 22) % shard[1] == shard[0]]
        ready = {"v": 10, "user": {**BOT_USER, "verified": True, "mfa_enabled": False,
                                   "flags": 0},
                 "guilds": [{"id": str(g), "unavailable": True} for g in mine],
                 "session_id": f"session{len(self.identifies)}",
                 "resume_gateway_url": self.ws_url, "shard": shard,
                 "application": {"id": str(APP_ID), "flags": 0},
                 "private_channels": [], "relationships": [], "user_settings": {}}
        await self._send(ws, "READY", ready)
        for gid in mine:
            await self._send(ws, "GUILD_CREATE", self.guild_json(gid))
        self._sockets.append(ws)

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        await ws.send_json({"op": 0, "t": event, "s": next(self._seq), "d": data})

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        for ws in list(self._sockets):
            if not ws.closed:
                await self._send(ws, event, data)

    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    # ------------------------------------------------------------------ what people do

    def _where(self, channel: dict[str, Any], person: dict[str, Any]) -> dict[str, Any]:
        """The guild/member or user part of an interaction or message from ``person``."""
        if channel["type"] == 1:
            return {"user": person}
        gid = int(channel["guild_id"])
        member = self._public_member(gid, int(person["id"]))
        return {"guild_id": str(gid),
                "member": {**member, "permissions": str(self._perms_for(gid, int(person["id"])))}}

    async def _interact(self, itype: int, channel: dict[str, Any], person: dict[str, Any],
                        data: dict[str, Any], message: Msg | None = None,
                        age_s: float = 0.0) -> Interaction:
        iid = self.snowflake()
        token = f"itok{iid}"
        it = Interaction(iid, token, itype, int(channel["id"]), int(person["id"]),
                         time.monotonic() - age_s, data)
        self.interactions[iid] = it
        if message is not None:  # @original of a component interaction is its message
            it.message_id = it.original = message.id
        gid = channel.get("guild_id")
        payload: dict[str, Any] = {
            "id": str(iid), "application_id": str(APP_ID), "type": itype, "token": token,
            "version": 1, "channel_id": channel["id"], "channel": channel, "data": data,
            "locale": "en-US", "app_permissions": str(MEMBER_PERMISSIONS), "entitlements": [],
            "authorizing_integration_owners": {"0": gid} if gid else {"1": person["id"]},
            "context": 0 if gid else 1,
            "attachment_size_limit": self._upload_limit(channel),
            **self._where(channel, person),
        }
        if gid:
            payload["guild_locale"] = "en-US"
            payload["guild"] = {"id": gid, "locale": "en-US", "features": []}
        if message is not None:
            payload["message"] = self.message_json(message)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it

    async def slash(self, channel: dict[str, Any], person: dict[str, Any], name: str,
                    age_s: float = 0.0, **options: Any) -> Interaction:
        """A slash command; ``age_s`` makes it arrive that late (a slow gateway)."""
        cmd = next((c for c in self.commands if c["name"] == name), None)
        assert cmd is not None, f"/{name} was never registered"
        kinds = {o["name"]: o["type"] for o in cmd.get("options", [])}
        opts = [{"name": k, "type": kinds[k], "value": v} for k, v in options.items()
                if v is not None]
        return await self._interact(2, channel, person, {"id": cmd["id"], "name": name,
                                                         "type": 1, "options": opts},
                                    age_s=age_s)

    async def press(self, channel: dict[str, Any], person: dict[str, Any], message: Msg,
                    custom_id: str) -> Interaction:
        return await self._interact(3, channel, person, {"custom_id": custom_id,
                                                         "component_type": 2}, message)

    async def submit(self, channel: dict[str, Any], person: dict[str, Any],
                     modal: dict[str, Any], value: str) -> Interaction:
        """Submit a modal the bot opened, with ``value`` in its (first) text input."""
        rows = []
        for row in modal["components"]:
            inner = row.get("components") or [row.get("component")]
            rows.append({"type": row["type"], "components" if row["type"] == 1 else "component":
                         [{"type": 4, "custom_id": c["custom_id"], "value": value}
                          for c in inner] if row["type"] == 1 else
                         {"type": 4, "custom_id": inner[0]["custom_id"], "value": value}})
        return await self._interact(5, channel, person, {"custom_id": modal["custom_id"],
                                                         "components": rows})

    async def mention(self, channel: dict[str, Any], person: dict[str, Any], text: str) -> Msg:
        """A person writes ``<@bot> text`` (or just ``text`` in a DM)."""
        mid = self.snowflake()
        content = text if channel["type"] == 1 else f"<@{BOT_ID}> {text}"
        msg = Msg(int(channel["id"]), mid, int(person["id"]), content=content)
        self.messages[mid] = msg
        payload = self.message_json(msg)
        payload["author"] = person
        payload["mentions"] = [] if channel["type"] == 1 else [BOT_USER]
        if channel["type"] != 1:
            gid = int(channel["guild_id"])
            payload["guild_id"] = str(gid)
            payload["member"] = {k: v for k, v in self._public_member(gid, int(person["id"])
                                                                      ).items() if k != "user"}
        await self.dispatch("MESSAGE_CREATE", payload)
        return msg

    async def react(self, channel: dict[str, Any], person: dict[str, Any], message_id: int,
                    emoji: str) -> None:
        data: dict[str, Any] = {"user_id": person["id"], "channel_id": channel["id"],
                                "message_id": str(message_id),
                                "emoji": {"id": None, "name": emoji}, "burst": False,
                                "type": 0, "burst_colors": []}
        if channel.get("guild_id"):
            gid = int(channel["guild_id"])
            data["guild_id"] = str(gid)
            data["member"] = self._public_member(gid, int(person["id"]))
        await self.dispatch("MESSAGE_REACTION_ADD", data)

    async def delete_channel(self, channel: dict[str, Any]) -> None:
        cid = int(channel["id"])
        self.channels.pop(cid, None)
        await self.dispatch("THREAD_DELETE" if channel["type"] == 11 else "CHANNEL_DELETE",
                            {"id": str(cid), "guild_id": channel.get("guild_id"),
                             "parent_id": channel.get("parent_id"), "type": channel["type"]})

    async def archive(self, thread: dict[str, Any]) -> None:
        """Archive a thread as Discord does after inactivity: edits are refused (50083) until
        a new message, which unarchives it."""
        thread["thread_metadata"]["archived"] = True
        await self.dispatch("THREAD_UPDATE", thread)

    async def set_tier(self, guild: dict[str, Any], tier: int) -> None:
        """The server gains or loses boosts: Discord tells the bot with GUILD_UPDATE."""
        guild["premium_tier"] = tier
        await self.dispatch("GUILD_UPDATE", {k: v for k, v in guild.items()
                                             if not k.startswith("_")})

    async def _unarchive(self, ch: dict[str, Any]) -> None:
        meta = ch.get("thread_metadata")
        if meta and meta["archived"]:
            meta["archived"] = False
            await self.dispatch("THREAD_UPDATE", ch)

    # ------------------------------------------------------------------ what the test reads

    def log(self, channel_id: int | str, *, bot_only: bool = True,
            ephemeral: bool = False) -> list[Msg]:
        cid = int(channel_id)
        out = [m for m in self.messages.values() if m.channel_id == cid and not m.deleted]
        out = [m for m in out if m.ephemeral == ephemeral or (ephemeral and m.ephemeral)]
        return sorted([m for m in out if m.from_bot or not bot_only], key=lambda m: m.id)

    def find(self, channel_id: int | str, needle: str) -> list[Msg]:
        return [m for m in self.log(channel_id) if needle in m.content]

    def one(self, channel_id: int | str, needle: str) -> Msg:
        found = self.find(channel_id, needle)
        assert len(found) == 1, f"{len(found)} messages with {needle!r}:\n{self.dump(channel_id)}"
        return found[0]

    def threads_of(self, channel: dict[str, Any]) -> list[dict[str, Any]]:
        return [c for c in self.channels.values()
                if c["type"] == 11 and c.get("parent_id") == channel["id"]]

    def replies(self, it: Interaction) -> list[str]:
        """What the person who interacted was told (callback messages and followups)."""
        out = [r["data"].get("content", "") for r in it.responses
               if r.get("type") == 4 and r.get("data")]
        out += [m.content for m in self.messages.values() if m.interaction == it.id]
        return [t for t in out if t]

    def dump(self, channel_id: int | str) -> str:
        return "\n".join(f"#{m.id} {m.content[:90]!r} {m.button_labels()} "
                         f"{[a['filename'] for a in m.attachments]}"
                         for m in self.log(channel_id, bot_only=False))

    async def wait_for(self, pred: Any, within: float = 15.0, what: str = "",
                       channel_id: int | str | None = None) -> Any:
        deadline = time.monotonic() + within
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                extra = f"\n{self.dump(channel_id)}" if channel_id is not None else ""
                raise AssertionError(f"timed out waiting for {what or pred}{extra}")
            await asyncio.sleep(0.03)

    async def answered(self, it: Interaction, within: float = 10.0) -> list[str]:
        return await self.wait_for(lambda: self.replies(it), within=within,
                                   what=f"an answer to interaction {it.data}")

    # ------------------------------------------------------------------ REST

    async def rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        rec = request[RECORDED]
        body, files = self._body(rec)
        parts = path.strip("/").split("/")
        webhook = parts[0] in ("interactions", "webhooks")
        if not webhook and request.headers.get("Authorization") != f"Bot {TOKEN}":
            return reply({"message": "401: Unauthorized", "code": 0}, status=401)
        try:
            self._check_upload(path, parts, rec)
            status, result, headers = await self._route(request.method, parts, body, files,
                                                        dict(request.query))
        except ApiError as err:
            self.errors.append((path, err.code, err.message))
            out: dict[str, Any] = {"message": err.message, "code": err.code, **err.extra}
            headers = err.headers if err.status == 429 else {}
            return reply(out, status=err.status, headers=headers)
        if status == 204:
            return web.Response(status=204, headers=headers)
        return reply(result, status=status, headers=headers)

    @staticmethod
    def _body(rec: Any) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        if rec.form or rec.files:
            body = json.loads(rec.form.get("payload_json", "{}"))
            return body, [(name, data) for _f, name, data in rec.files]
        if rec.json is not None:
            return rec.json, []
        return {}, []

    async def _route(self, method: str, p: list[str], body: dict[str, Any],
                     files: list[tuple[str, bytes]], query: dict[str, str]
                     ) -> tuple[int, Any, dict[str, str]]:
        match method, p:
            case "GET", ["users", "@me"]:
                return 200, {**BOT_USER, "verified": True, "mfa_enabled": False, "flags": 0}, {}
            case "GET", ["oauth2", "applications", "@me"]:
                return 200, self._application(), {}
            case "GET", ["gateway", "bot"]:
                return 200, {"url": self.ws_url, "shards": 1, "session_start_limit": {
                    "total": 1000, "remaining": 999, "reset_after": 0,
                    "max_concurrency": 1}}, {}
            case "PUT", ["applications", _app, "commands"]:
                return 200, self._put_commands(body), {}
            case "GET", ["applications", _app, "commands"]:
                return 200, self.commands, {}
            case "GET", ["channels", cid]:
                return 200, self._channel(int(cid)), {}
            case "POST", ["channels", cid, "messages"]:
                ch = self._channel(int(cid))
                headers = self._limit(int(cid))
                nonce = body.get("nonce")
                if nonce is not None and len(str(nonce)) > 25:
                    raise ApiError(400, 50035, "Invalid Form Body: nonce: Must be 25 or fewer "
                                   "in length.")
                if body.get("enforce_nonce") and str(nonce) in self.nonces:
                    # Discord: the same author's message with this nonce (a few minutes back)
                    # is returned, and no new message is created
                    self.nonce_repeats += 1
                    return 200, self.message_json(self.messages[self.nonces[str(nonce)]]), headers
                msg = self._new_message(ch, body, files, need="send_messages")
                if nonce is not None:
                    self.nonces[str(nonce)] = msg.id
                await self._unarchive(ch)  # a new message reopens an archived thread
                return 200, self.message_json(msg), headers
            case "PATCH", ["channels", cid, "messages", mid]:
                headers = self._limit(int(cid))
                return 200, self.message_json(self._edit(int(cid), int(mid), body, files)), \
                    headers
            case "DELETE", ["channels", cid, "messages", mid]:
                self._message(int(cid), int(mid)).deleted = True
                return 204, None, {}
            case "POST", ["channels", cid, "threads"]:
                return 201, await self._thread(int(cid), body), {}
            case "POST", ["interactions", iid, token, "callback"]:
                return 200, self._callback(int(iid), token, body, files), {}
            case "POST", ["webhooks", _app, token]:
                msg = self._followup(token, body, files)
                return 200, self.message_json(msg), {}
            case "PATCH", ["webhooks", _app, token, "messages", which]:
                it = self._by_token(token)
                mid = it.original if which == "@original" else int(which)
                if mid is None:
                    raise ApiError(404, 10008, "Unknown Message")
                msg = self._edit(self._message_any(mid).channel_id, mid, body, files)
                return 200, self.message_json(msg), {}
            case "GET", ["webhooks", _app, token, "messages", "@original"]:
                it = self._by_token(token)
                if it.original is None:
                    raise ApiError(404, 10008, "Unknown Message")
                return 200, self.message_json(self._message_any(it.original)), {}
        raise ApiError(404, 0, "404: Not Found")

    def _application(self) -> dict[str, Any]:
        return {"id": str(APP_ID), "name": "Storyloom", "icon": None, "description": "",
                "bot_public": True, "bot_require_code_grant": False,
                "owner": user(OWNER_ID, "Owner"), "team": None, "verify_key": "00" * 32,
                "flags": 0, "summary": "", "rpc_origins": [], "redirect_uris": [],
                "interactions_endpoint_url": None}

    def _put_commands(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, list) or len(body) > 100:
            raise ApiError(400, 50035, "Invalid Form Body")
        out = []
        for c in body:
            name, desc = c.get("name", ""), c.get("description", "")
            if not (1 <= len(name) <= 32 and name == name.lower() and 1 <= len(desc) <= 100):
                raise ApiError(400, 50035, "Invalid Form Body")
            opts = c.get("options", [])
            required_seen_optional = False
            for o in opts:
                if not (1 <= len(o.get("description", "")) <= 100) or len(o.get("choices", [])
                                                                           ) > 25:
                    raise ApiError(400, 50035, "Invalid Form Body")
                if o.get("required"):
                    if required_seen_optional:
                        raise ApiError(400, 50035, "Invalid Form Body: required options "
                                       "must be placed before non-required options")
                else:
                    required_seen_optional = True
            out.append({**c, "id": str(self.snowflake()), "application_id": str(APP_ID),
                        "version": str(self.snowflake()), "type": c.get("type", 1)})
        self.commands = out
        self.command_puts += 1
        return out

    def _channel(self, cid: int) -> dict[str, Any]:
        ch = self.channels.get(cid)
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return ch

    def _message(self, cid: int, mid: int) -> Msg:
        self._channel(cid)
        msg = self.messages.get(mid)
        if msg is None or msg.channel_id != cid or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _message_any(self, mid: int) -> Msg:
        msg = self.messages.get(mid)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _can(self, ch: dict[str, Any], perm: str) -> bool:
        denied = self.denied.get(int(ch["id"]), set())
        if ch["type"] == 11 and ch.get("parent_id"):
            denied = denied | self.denied.get(int(ch["parent_id"]), set())
        return perm not in denied

    def flood(self, channel: dict[str, Any], seconds: float) -> None:
        """Put a channel's message bucket in a long rate limit (as after a burst of posts)."""
        self.flooded[int(channel["id"])] = time.monotonic() + seconds

    def _limit(self, cid: int) -> dict[str, str]:
        """The channel's message bucket: ``n`` per ``period``, and any long limit it is in."""
        n, period = self.channel_limit
        now = time.monotonic()
        hits = [t for t in self._buckets.get(cid, []) if now - t < period]
        wait = 0.0
        if self.flooded.get(cid, 0.0) > now:
            wait = self.flooded[cid] - now
        elif len(hits) >= n:
            wait = period - (now - hits[0]) + 0.01
        if wait > 0:
            self.floods.append(str(cid))
            wait = round(wait, 3)
            headers = {"Via": "1.1 google", "Retry-After": str(max(1, round(wait))),
                       "X-RateLimit-Limit": str(n), "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset-After": str(wait),
                       "X-RateLimit-Reset": str(time.time() + wait),
                       "X-RateLimit-Bucket": MESSAGES_BUCKET, "X-RateLimit-Scope": "user"}
            raise ApiError(429, 0, "You are being rate limited.", retry_after=wait,
                           headers=headers, **{"global": False})
        hits.append(now)
        self._buckets[cid] = hits
        reset = round(period - (now - hits[0]), 3)
        return {"X-RateLimit-Limit": str(n), "X-RateLimit-Remaining": str(n - len(hits)),
                "X-RateLimit-Reset-After": str(max(reset, 0.001)),
                "X-RateLimit-Reset": str(time.time() + max(reset, 0.001)),
                "X-RateLimit-Bucket": MESSAGES_BUCKET}

    def _check_content(self, body: dict[str, Any]) -> None:
        content = body.get("content")
        if content is not None and len(content) > 2000:
            raise ApiError(400, 50035, "Invalid Form Body", errors={"content": {"_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH",
                 "message": "Must be 2000 or fewer in length."}]}})
        rows = body.get("components")
        if rows is None:
            return
        if len(rows) > 5:
            raise ApiError(400, 50035, "Invalid Form Body: components: Must be 5 or fewer in "
                           "length.")
        for row in rows:
            inner = row.get("components", [])
            if row.get("type") != 1 or not 1 <= len(inner) <= 5:
                raise ApiError(400, 50035, "Invalid Form Body: an action row holds 1 to 5 "
                               "buttons")
            for b in inner:
                cid = b.get("custom_id")
                if b.get("style") != 5 and (not cid or len(cid) > 100):
                    raise ApiError(400, 50035, "Invalid Form Body: custom_id: Must be between "
                                   "1 and 100 in length.")
                if len(b.get("label", "")) > 80:
                    raise ApiError(400, 50035, "Invalid Form Body: label: Must be 80 or fewer "
                                   "in length.")

    def _upload_limit(self, ch: dict[str, Any] | None) -> int:
        gid = ch.get("guild_id") if ch is not None else None
        if not gid:
            return 10 * MiB
        if int(gid) in self.upload_limits:
            return self.upload_limits[int(gid)]
        return TIER_LIMITS[self.guilds[int(gid)]["premium_tier"]]

    def _upload_target(self, parts: list[str]) -> dict[str, Any] | None:
        """The channel a request with files posts into (for its upload limit)."""
        if parts[0] == "channels" and len(parts) > 1 and parts[1].isdigit():
            return self.channels.get(int(parts[1]))
        token = parts[2] if len(parts) > 2 else ""
        it = next((i for i in self.interactions.values() if i.token == token), None)
        return self.channels.get(it.channel_id) if it is not None else None

    def _check_upload(self, path: str, parts: list[str], rec: Any) -> None:
        """Discord's limit is on the whole request: all its files and its JSON payload."""
        if not rec.files:
            return
        size = sum(len(data) for _f, _n, data in rec.files) + sum(
            len(v.encode()) for v in rec.form.values())
        limit = self._upload_limit(self._upload_target(parts))
        self.uploads.append(Upload(path, size, limit, len(rec.files)))
        if size > limit:
            self.too_large += 1
            raise ApiError(413, 40005, "Request entity too large")

    def _attachments(self, ch: dict[str, Any] | None, body: dict[str, Any],
                     files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        if not files:
            return []
        if ch is not None and not self._can(ch, "attach_files"):
            raise ApiError(403, 50013, "Missing Permissions")
        if len(files) > 10:
            raise ApiError(400, 50035, "Invalid Form Body: at most 10 attachments")
        out = []
        for name, data in files:
            aid = self.snowflake()
            out.append({"id": str(aid), "filename": name, "size": len(data),
                        "url": f"{self.url}/cdn/{aid}/{name}",
                        "proxy_url": f"{self.url}/cdn/{aid}/{name}"})
        return out

    def _new_message(self, ch: dict[str, Any], body: dict[str, Any],
                     files: list[tuple[str, bytes]], *, need: str) -> Msg:
        if ch["type"] == 11 and not self._can(ch, "send_messages_in_threads"):
            raise ApiError(403, 50013, "Missing Permissions")
        if not self._can(ch, need):
            raise ApiError(403, 50013, "Missing Permissions")
        self._check_content(body)
        attachments = self._attachments(ch, body, files)
        if not body.get("content") and not attachments and not body.get("embeds"):
            raise ApiError(400, 50006, "Cannot send an empty message")
        msg = Msg(int(ch["id"]), self.snowflake(), BOT_ID, content=body.get("content") or "",
                  components=body.get("components") or [], attachments=attachments,
                  flags=int(body.get("flags") or 0))
        self.messages[msg.id] = msg
        return msg

    def _edit(self, cid: int, mid: int, body: dict[str, Any],
              files: list[tuple[str, bytes]]) -> Msg:
        msg = self._message(cid, mid)
        if self.channels.get(cid, {}).get("thread_metadata", {}).get("archived"):
            raise ApiError(400, 50083, "Thread is archived")
        if not msg.from_bot:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._check_content(body)
        if "content" in body:
            msg.content = body["content"] or ""
        if "components" in body:
            msg.components = body["components"] or []
        if "attachments" in body:  # only the listed existing ones stay, plus new uploads
            keep = {str(a.get("id")) for a in body["attachments"]}
            msg.attachments = [a for a in msg.attachments if a["id"] in keep]
        if files:
            msg.attachments += self._attachments(self.channels.get(cid), body, files)
        msg.edits += 1
        return msg

    async def _thread(self, cid: int, body: dict[str, Any]) -> dict[str, Any]:
        parent = self._channel(cid)
        if parent["type"] != 0:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if not self._can(parent, "create_public_threads"):
            raise ApiError(403, 50013, "Missing Permissions")
        name = body.get("name", "")
        if not 1 <= len(name) <= 100:
            raise ApiError(400, 50035, "Invalid Form Body: name: Must be between 1 and 100 "
                           "in length.")
        tid = self.snowflake()
        th = {"id": str(tid), "type": body.get("type", 11), "guild_id": parent["guild_id"],
              "parent_id": parent["id"], "owner_id": str(BOT_ID), "name": name,
              "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0,
              "member_count": 1, "total_message_sent": 0, "flags": 0,
              "thread_metadata": {"archived": False, "locked": False,
                                  "auto_archive_duration": body.get("auto_archive_duration",
                                                                    1440),
                                  "archive_timestamp": iso(), "create_timestamp": iso()},
              "member": {"id": str(tid), "user_id": str(BOT_ID), "join_timestamp": iso(),
                         "flags": 0}}
        self.channels[tid] = th
        self.guilds[int(parent["guild_id"])]["_threads"].append(tid)
        await self.dispatch("THREAD_CREATE", {**th, "newly_created": True})
        return th

    def _by_token(self, token: str) -> Interaction:
        it = next((i for i in self.interactions.values() if i.token == token), None)
        if it is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        if time.monotonic() - it.created > TOKEN_TTL_S:
            it.refused.append("token expired")
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return it

    def _callback(self, iid: int, token: str, body: dict[str, Any],
                  files: list[tuple[str, bytes]]) -> dict[str, Any]:
        it = self.interactions.get(iid)
        if it is None or it.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        if time.monotonic() - it.created > self.deadline_s:
            it.refused.append("late")
            raise ApiError(404, 10062, "Unknown interaction")
        if it.responses:
            it.refused.append("twice")
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        kind = body.get("type")
        data = body.get("data") or {}
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 5: {4, 5, 6, 7}}[it.type]
        if kind not in allowed:
            raise ApiError(400, 50035, f"Invalid Form Body: callback type {kind} for an "
                           f"interaction of type {it.type}")
        resource: dict[str, Any] = {"type": kind}
        if kind == 9:
            if not data.get("custom_id") or len(data["custom_id"]) > 100 or \
                    not 1 <= len(data.get("title", "")) <= 45 or \
                    not 1 <= len(data.get("components", [])) <= 5:
                raise ApiError(400, 50035, "Invalid Form Body: modal")
            self.modals.append(data)
        elif kind in (4, 5):
            self._check_content(data)
            msg = Msg(it.channel_id, self.snowflake(), BOT_ID,
                      content=data.get("content") or "",
                      components=data.get("components") or [],
                      attachments=self._attachments(None, data, files),
                      flags=int(data.get("flags") or 0), interaction=it.id)
            if kind == 5:
                msg.content = ""  # "Storyloom is thinking…"
            self.messages[msg.id] = msg
            it.original = msg.id
            resource["message"] = self.message_json(msg)
        elif kind == 7:
            if it.message_id is None:
                raise ApiError(400, 50035, "Invalid Form Body: no message to update")
            self._edit(it.channel_id, it.message_id, data, files)
        it.responses.append(body)
        return {"interaction": {"id": str(iid), "type": it.type,
                                "response_message_id": str(it.original) if it.original else None,
                                "response_message_loading": kind == 5,
                                "response_message_ephemeral": bool(data.get("flags", 0) & 64)},
                "resource": resource}

    def _followup(self, token: str, body: dict[str, Any],
                  files: list[tuple[str, bytes]]) -> Msg:
        it = self._by_token(token)
        if not it.responses:
            raise ApiError(404, 10015, "Unknown Webhook")
        self._check_content(body)
        first = it.responses[0].get("type")
        if first == 5 and it.original is not None and not self.messages[it.original].content \
                and not self.messages[it.original].edits:
            # the first followup after a "thinking" defer replaces the thinking message
            msg = self.messages[it.original]
            msg.content = body.get("content") or ""
            msg.components = body.get("components") or []
            msg.attachments = self._attachments(None, body, files)
            msg.edits += 1
            return msg
        flags = int(body.get("flags") or 0)
        if first == 5 and it.original is not None:
            flags |= self.messages[it.original].flags & 64
        msg = Msg(it.channel_id, self.snowflake(), BOT_ID, content=body.get("content") or "",
                  components=body.get("components") or [],
                  attachments=self._attachments(None, body, files), flags=flags,
                  interaction=it.id)
        if not msg.content and not msg.attachments:
            raise ApiError(400, 50006, "Cannot send an empty message")
        self.messages[msg.id] = msg
        return msg

    def message_json(self, msg: Msg) -> dict[str, Any]:
        ch = self.channels.get(msg.channel_id, {})
        out: dict[str, Any] = {
            "id": str(msg.id), "channel_id": str(msg.channel_id),
            "author": BOT_USER if msg.from_bot else {"id": str(msg.author_id),
                                                     "username": "someone",
                                                     "discriminator": "0", "avatar": None,
                                                     "global_name": "Someone"},
            "content": msg.content, "timestamp": iso(), "edited_timestamp": None,
            "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": msg.attachments, "embeds": [], "pinned": False, "type": 0,
            "flags": msg.flags, "components": msg.components,
        }
        if ch.get("guild_id"):
            out["guild_id"] = ch["guild_id"]
        return out
