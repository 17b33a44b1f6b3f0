"""The Discord bot: a discord.py ``commands.Bot`` translating interactions into intents.

Slash commands, button presses (:class:`~bots.discord.render.StoryButton`, whose custom_id
carries a signed core token, so buttons outlive restarts), modal submits, mentions and reactions
become :mod:`bots.core.intents`; the conversation core answers; answers go back as ephemeral
followups. Every interaction is acknowledged first (a defer, or the modal it opens) and answered
after, well inside Discord's 3 seconds. The event pump (:class:`bots.core.pump.EventPump`) runs
beside the client and posts each story's status, storyboard and video in the story's thread.
Uploads are limited per server: each interaction reports the limit, the gateway tells the boost
tier, and a 413 lowers it (:mod:`bots.discord.uploads`); the video's size cap for a new story is
taken from it. The bot needs no privileged intent: slash commands and mentions carry their text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bots.core import intents as it
from bots.core.conversation import (
    CHOICES,
    SCENE_MAX,
    AdminCheck,
    Conversation,
    started_story,
)
from bots.core.pump import EventPump, stop_task
from bots.core.tokens import BadToken
from bots.core.views import AnyView, StatusView, Text
from bots.discord.render import (
    BUTTON_ID,
    MODAL_PREFIX,
    NO_MENTIONS,
    DiscordRenderer,
    make_view,
    status_md,
    text_md,
    view_md,
)
from bots.discord.uploads import UploadLimits
from pipeline.models import ChatRef, Platform, UserRef
from pipeline.runtime import Runtime
from pipeline.settings import Settings

log = logging.getLogger(__name__)

CAP_SHARE = 0.97  # the video's size cap, as a share of the upload limit (room for the container)
_ID = re.compile(r"^[a-z0-9]{4,16}$")


def api_base_url(raw: str) -> str:
    """The REST base as discord.py's ``Route.BASE`` wants it (``…/api/v10``)."""
    base = raw.strip().rstrip("/")
    return base if re.search(r"/api/v\d+$", base) else f"{base}/api/v10"


def user_ref(person: discord.abc.User | None, uid: int | None = None) -> UserRef:
    if person is None:
        return UserRef(platform=Platform.discord, user_id=str(uid or 0))
    return UserRef(platform=Platform.discord, user_id=str(person.id),
                   display_name=person.display_name or person.name)


def _story_id(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    raw = raw.strip().lower()
    return raw if _ID.match(raw) else "-"


class _Hooks:
    """What the Storyloom bot adds to discord.py's client classes."""

    storyloom: DiscordBot

    async def setup_hook(self) -> None:
        await self.storyloom.setup()


class StoryBot(_Hooks, commands.Bot):
    pass


class ShardedStoryBot(_Hooks, commands.AutoShardedBot):
    pass


class SceneModal(discord.ui.Modal):
    """The form ✏️ Edit scene opens. Its submit is handled by :meth:`DiscordBot.on_modal` for
    every modal with our prefix, so a form opened before a restart still works after it."""

    def __init__(self, token: str, scene: int, text: str) -> None:
        super().__init__(title=f"Edit scene {scene + 1}", custom_id=MODAL_PREFIX + token,
                         timeout=900)
        self.text: discord.ui.TextInput[SceneModal] = discord.ui.TextInput(
            label="Scene text", style=discord.TextStyle.paragraph, custom_id="text",
            default=text[:SCENE_MAX], min_length=1, max_length=SCENE_MAX, required=True)
        self.add_item(self.text)

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        return None


def modal_value(data: Any) -> str:
    """The first text input's value in a modal submit (action rows, or the newer labels)."""
    for row in (data or {}).get("components", []):
        inner = row.get("components") or ([row["component"]] if row.get("component") else [])
        for c in inner:
            if c.get("type") == 4:
                return str(c.get("value") or "")
    return ""


class DiscordBot:
    def __init__(
        self,
        rt: Runtime,
        conv: Conversation,
        *,
        token: str,
        api_base: str = "",
        sharded: bool = False,
        moderator_role: str = "",
        status_interval_s: tuple[float, float] = (3.0, 3.0),
        consumer: str = "main",
        guild_ready_timeout: float = 2.0,
        thread_wait_s: float = 3.0,
    ) -> None:
        self.rt = rt
        self.conv = conv
        self._token = token
        self.api_base = api_base_url(api_base) if api_base else ""
        self.moderator_role = moderator_role.strip()
        self.thread_wait_s = thread_wait_s
        self.prefix = conv.delivery.prefix
        self.redis: Any = rt.redis
        intents = discord.Intents.default()
        intents.message_content = False  # privileged; mentions and DMs carry their text anyway
        cls = ShardedStoryBot if sharded else StoryBot
        self.client: StoryBot | ShardedStoryBot = cls(
            command_prefix=commands.when_mentioned, intents=intents, help_command=None,
            allowed_mentions=NO_MENTIONS, guild_ready_timeout=guild_ready_timeout,
            max_messages=None,
        )
        self.client.storyloom = self
        self.limits = UploadLimits(self.redis, self.prefix, self._server_of)
        self.renderer = DiscordRenderer(self.client, conv.delivery, self.limits)
        self.pump = EventPump(conv, self.renderer, consumer=consumer,
                              status_interval_s=status_interval_s)
        conv.size_cap_for = self._cap_for
        self._pump_task: asyncio.Task[None] | None = None
        self._conn_task: asyncio.Task[None] | None = None
        self._add_commands()
        self.client.add_listener(self.on_message, "on_message")
        self.client.add_listener(self.on_raw_reaction_add, "on_raw_reaction_add")
        self.client.add_listener(self.on_interaction, "on_interaction")
        self.client.tree.on_error = self.on_command_error  # type: ignore[method-assign]

    # ------------------------------------------------------------------ lifecycle

    async def start(self, ready_timeout_s: float = 60.0) -> None:
        if self.api_base:
            discord.http.Route.BASE = self.api_base
        await self.client.login(self._token)
        self._conn_task = asyncio.create_task(self.client.connect(), name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._conn_task}, timeout=ready_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            failed = self._conn_task in done and self._conn_task.exception() is not None
            why = type(self._conn_task.exception()).__name__ if failed else ""
            await self.stop()
            if failed:
                raise RuntimeError(f"the Discord gateway refused the connection: {why}")
            raise RuntimeError("the Discord gateway did not get ready in time")
        self._pump_task = asyncio.create_task(self.pump.run(), name="discord-event-pump")

    async def stop(self) -> None:
        await stop_task(self._pump_task)
        self._pump_task = None
        if not self.client.is_closed():
            await self.client.close()
        if self._conn_task is not None:
            with contextlib.suppress(BaseException):
                await self._conn_task
            self._conn_task = None

    async def setup(self) -> None:
        """Once per process, after login (not on every reconnect): find the gateway behind a
        REST proxy and register the slash commands if they changed."""
        if self.api_base:
            _, url, _ = await self.client.http.get_bot_gateway()
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await self.sync_commands()

    async def sync_commands(self, force: bool = False) -> bool:
        tree = self.client.tree
        payload = [c.to_dict(tree) for c in tree.get_commands()]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = f"{self.prefix}commands:{self.client.application_id}"
        if not force and await self.redis.get(key) in (digest, digest.encode()):
            return False
        await tree.sync()
        await self.redis.set(key, digest)
        log.info("slash commands synced", extra={"commands": len(payload)})
        return True

    # ------------------------------------------------------------------ identities and limits

    async def chat_of(self, channel: Any, channel_id: int | None = None,
                      guild_id: int | None = None) -> ChatRef:
        """The neutral chat of a channel: a thread belongs to its parent channel's chat."""
        cid = channel.id if channel is not None else channel_id
        if channel is None and cid is not None:
            channel = self.client.get_channel(cid)
        if isinstance(channel, discord.Thread) and channel.parent_id:
            return ChatRef(platform=Platform.discord, chat_id=str(channel.parent_id),
                           thread_id=str(channel.id), is_group=True)
        if isinstance(channel, discord.DMChannel | discord.GroupChannel):
            return ChatRef(platform=Platform.discord, chat_id=str(channel.id))
        gid = getattr(getattr(channel, "guild", None), "id", None) or guild_id
        if gid is not None and cid is not None and channel is None:
            parent = await self.renderer.parent_of(cid)
            if parent is not None:
                return ChatRef(platform=Platform.discord, chat_id=str(parent),
                               thread_id=str(cid), is_group=True)
            with contextlib.suppress(discord.HTTPException):
                fetched = await self.client.fetch_channel(cid)
                return await self.chat_of(fetched)
        return ChatRef(platform=Platform.discord, chat_id=str(cid), is_group=gid is not None)

    def _server_of(self, chat: ChatRef) -> tuple[str, int | None]:
        """The key of a chat's server (uploads are limited per server; a DM by itself) and the
        limit its boost tier implies, as the gateway last told it."""
        channel = self.client.get_channel(int(chat.chat_id))
        guild = getattr(channel, "guild", None)
        if guild is None:
            return f"c{chat.chat_id}", None
        return f"g{guild.id}", int(guild.filesize_limit)

    def _cap_for(self, chat: ChatRef) -> int | None:
        return int(self.limits.cached(chat) * CAP_SHARE)

    def _admin_check(self, person: Any, perms: discord.Permissions | None) -> AdminCheck:
        role = self.moderator_role

        async def check() -> bool:
            if not isinstance(person, discord.Member):
                return False
            if person.guild.owner_id == person.id:
                return True
            granted = perms if perms is not None else person.guild_permissions
            if granted.manage_messages or granted.administrator:
                return True
            return bool(role) and any(r.name == role or str(r.id) == role for r in person.roles)

        return check

    def _interaction_admin(self, interaction: discord.Interaction[Any]) -> AdminCheck:
        return self._admin_check(interaction.user, interaction.permissions)

    # ------------------------------------------------------------------ answering

    async def _followups(self, interaction: discord.Interaction[Any], views: list[AnyView], *,
                         source: bool = False) -> None:
        for view in views:
            try:
                if isinstance(view, Text) and view.replace_source and source:
                    await interaction.edit_original_response(content=text_md(view),
                                                             view=make_view(view.buttons))
                    continue
                content = status_md(view) if isinstance(view, StatusView) else view_md(view)
                kw: dict[str, Any] = {"ephemeral": True, "allowed_mentions": NO_MENTIONS}
                markup = make_view(view.buttons)
                if markup is not None:
                    kw["view"] = markup
                await interaction.followup.send(content, **kw)
            except discord.HTTPException as err:
                log.warning("could not answer an interaction",
                            extra={"status": err.status, "code": err.code})
                return

    async def _chat(self, interaction: discord.Interaction[Any]) -> ChatRef:
        """The interaction's chat; and the upload limit Discord reports there, remembered."""
        chat = await self.chat_of(interaction.channel, interaction.channel_id,
                                  interaction.guild_id)
        await self.limits.reported(chat, int(interaction.filesize_limit or 0))
        return chat

    async def _answer(self, interaction: discord.Interaction[Any], intent: it.Intent) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        chat = await self._chat(interaction)
        views = await self.conv.handle(intent, user_ref(interaction.user), chat,
                                       self._interaction_admin(interaction))
        if not views:
            views = [Text(text="Done.")]
        await self._followups(interaction, views)

    async def _started(self, intent: it.Intent, user: UserRef, chat: ChatRef,
                       admin: AdminCheck) -> tuple[list[AnyView], str | None]:
        """Handle ``intent``; and the id of the story it started, if it started one."""
        started_story.set(None)
        views = await self.conv.handle(intent, user, chat, admin)
        return views, started_story.get()

    async def _where_story(self, story_id: str | None, chat: ChatRef) -> str:
        """Where the story this command started shows (its thread, once the pump opened it)."""
        if story_id is None or not chat.is_group or chat.thread_id:
            return "📖 Your story has started; the script and storyboard follow here."
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.thread_wait_s
        while loop.time() < deadline:
            raw = await self.redis.get(f"{self.prefix}thread:{story_id}")
            if raw is not None:
                value = raw.decode() if isinstance(raw, bytes) else str(raw)
                if value.isdigit():
                    return f"📖 Your story has started in <#{value}>."
                return "📖 Your story has started in this channel."
            await asyncio.sleep(0.1)
        return "📖 Your story has started; it gets its own thread here in a moment."

    # ------------------------------------------------------------------ slash commands

    def _add_commands(self) -> None:
        tree = self.client.tree
        aspects = [app_commands.Choice(name=a, value=a) for a in CHOICES["aspect"]]
        styles = [app_commands.Choice(name=s, value=s) for s in CHOICES["style"]][:25]
        counts = [app_commands.Choice(name=n, value=int(n)) for n in CHOICES["scenes"]]

        @app_commands.command(name="story", description="Start a story from an idea")
        @app_commands.describe(idea="Your story idea, e.g. a lighthouse keeper befriends a whale",
                               scenes="How many scenes", aspect="The video's shape",
                               style="The look of the pictures")
        @app_commands.choices(scenes=counts, aspect=aspects, style=styles)  # type: ignore[misc]
        async def story(interaction: discord.Interaction[Any], idea: str,
                        scenes: int | None = None, aspect: str | None = None,
                        style: str | None = None) -> None:
            await self.cmd_story(interaction, idea, scenes, aspect, style)

        @app_commands.command(name="settings", description="Aspect, scenes, style and voice "
                              "for new stories here")
        async def settings(interaction: discord.Interaction[Any]) -> None:
            await self._answer(interaction, it.ChangeSettings())

        @app_commands.command(name="cancel", description="Stop a story")
        @app_commands.describe(story="The story's id (default: your latest here)")
        async def cancel(interaction: discord.Interaction[Any], story: str | None = None
                         ) -> None:
            await self._answer(interaction, it.Cancel(story_id=_story_id(story)))

        @app_commands.command(name="status", description="How the latest story is doing")
        @app_commands.describe(story="The story's id (default: the latest here)")
        async def status(interaction: discord.Interaction[Any], story: str | None = None
                         ) -> None:
            await self._answer(interaction, it.ShowStatus(story_id=_story_id(story)))

        @app_commands.command(name="mystories", description="Your stories")
        async def mystories(interaction: discord.Interaction[Any]) -> None:
            await self._answer(interaction, it.MyStories())

        @app_commands.command(name="help", description="How Storyloom works")
        async def help_(interaction: discord.Interaction[Any]) -> None:
            await self._answer(interaction, it.Help())

        commands_: list[app_commands.Command[Any, Any, None]] = [
            story, settings, cancel, status, mystories, help_]
        for cmd in commands_:
            tree.add_command(cmd)

    async def cmd_story(self, interaction: discord.Interaction[Any], idea: str,
                        scenes: int | None, aspect: str | None, style: str | None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        chat = await self._chat(interaction)
        user = user_ref(interaction.user)
        views, story_id = await self._started(
            it.StartStory(idea=idea, scenes=scenes, aspect=aspect, style=style), user, chat,
            self._interaction_admin(interaction))
        if not views:
            views = [Text(text=await self._where_story(story_id, chat))]
        await self._followups(interaction, views)

    async def on_command_error(self, interaction: discord.Interaction[Any],
                               error: app_commands.AppCommandError) -> None:
        cause = getattr(error, "original", error)
        if isinstance(cause, discord.NotFound) and cause.code == 10062:
            log.warning("an interaction expired before it was acknowledged")
            return
        log.error("slash command failed: %s", type(error).__name__, exc_info=error)
        with contextlib.suppress(discord.HTTPException):
            text = "⚠️ Something went wrong; try again in a moment."
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)

    # ------------------------------------------------------------------ buttons and modals

    async def on_button(self, interaction: discord.Interaction[Any], token: str) -> None:
        chat = await self._chat(interaction)
        user = user_ref(interaction.user)
        admin = self._interaction_admin(interaction)
        try:
            intent = self.conv.intent_of(chat, token)
        except BadToken:
            log.warning("refused a button token", extra={"chat": chat.key})
            await interaction.response.send_message("This button is not valid here.",
                                                    ephemeral=True)
            return
        if isinstance(intent, it.EditScene) and intent.text is None:
            got = await self.conv.scene_text(intent, user, chat, admin)
            if isinstance(got, str):
                await interaction.response.send_modal(SceneModal(token, intent.scene, got))
            else:
                first = next((v for v in got if isinstance(v, Text)), None)
                await interaction.response.send_message(
                    text_md(first) if first else "Nothing to edit.", ephemeral=True)
            return
        await interaction.response.defer()  # acknowledged; the answer follows
        views = await self.conv.press(token, user, chat, admin)
        await self._followups(interaction, views, source=True)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Buttons and forms are routed by their custom_id template, never by a stored view."""
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if interaction.type == discord.InteractionType.component:
            match = BUTTON_ID.match(custom_id)
            if match is not None:
                await self.on_button(interaction, match["token"])
            elif custom_id.startswith("sl"):
                await interaction.response.send_message("This button is not valid here.",
                                                        ephemeral=True)
        elif interaction.type == discord.InteractionType.modal_submit and \
                custom_id.startswith(MODAL_PREFIX):
            await self.on_modal(interaction, custom_id.removeprefix(MODAL_PREFIX))

    async def on_modal(self, interaction: discord.Interaction[Any], token: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        chat = await self._chat(interaction)
        try:
            intent = self.conv.intent_of(chat, token)
        except BadToken:
            intent = it.Ignore()
        if not isinstance(intent, it.EditScene):
            await self._followups(interaction, [Text(text="This form is not valid here.",
                                                     error=True)])
            return
        text = modal_value(interaction.data)
        views = await self.conv.handle(intent.model_copy(update={"text": text}),
                                       user_ref(interaction.user), chat,
                                       self._interaction_admin(interaction))
        await self._followups(interaction, views or [Text(text="Done.")])

    # ------------------------------------------------------------------ mentions and reactions

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if me is None or message.author.bot or message.type not in (
                discord.MessageType.default, discord.MessageType.reply):
            return
        in_guild = message.guild is not None
        if in_guild and not any(u.id == me.id for u in message.mentions):
            return
        text = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        if text.lower() == "sync" and await self.client.is_owner(message.author):
            synced = await self.sync_commands(force=True)
            await self._reply(message, Text(text="Slash commands synced." if synced else
                                            "Slash commands are up to date."))
            return
        chat = await self.chat_of(message.channel)
        user = user_ref(message.author)
        intent: it.Intent = it.FreeText(text=text) if text else it.Help()
        perms = message.channel.permissions_for(message.author) \
            if in_guild and isinstance(message.author, discord.Member) else None
        views, story_id = await self._started(intent, user, chat,
                                              self._admin_check(message.author, perms))
        if not views and story_id is not None:
            views = [Text(text=await self._where_story(story_id, chat))]
        for view in views:
            await self._reply(message, view)

    async def _reply(self, message: discord.Message, view: AnyView) -> None:
        try:
            markup = make_view(view.buttons)
            await message.reply(view_md(view), view=markup or discord.utils.MISSING,
                                mention_author=False, allowed_mentions=NO_MENTIONS)
        except (discord.Forbidden, discord.NotFound):
            log.info("could not reply", extra={"channel": message.channel.id})

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        me = self.client.user
        if me is None or payload.user_id == me.id:
            return
        if payload.member is not None and payload.member.bot:
            return
        chat = await self.chat_of(None, payload.channel_id, payload.guild_id)
        user = user_ref(payload.member, payload.user_id)
        ref = f"{payload.channel_id}/{payload.message_id}"
        views = await self.conv.react(chat, ref, str(payload.emoji), user,
                                      self._admin_check(payload.member, None))
        if not views:
            return
        target = self.client.get_partial_messageable(payload.channel_id)
        source = target.get_partial_message(payload.message_id)
        for view in views:  # reactions have no private answer: a short-lived reply
            try:
                await source.reply(f"<@{payload.user_id}> {view_md(view)}", mention_author=False,
                                   allowed_mentions=NO_MENTIONS, delete_after=30)
            except (discord.Forbidden, discord.NotFound):
                return


# --------------------------------------------------------------------------- running it


async def build_bot(rt: Runtime, settings: Settings, **kw: Any) -> DiscordBot:
    conv = await Conversation.create(rt, Platform.discord)
    return DiscordBot(rt, conv, token=settings.discord_token.get_secret_value(),
                      api_base=settings.discord_api_base, sharded=settings.discord_sharded,
                      moderator_role=settings.discord_moderator_role, **kw)


async def run(settings: Settings, *, with_worker: bool | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Run the bot until ``stop`` is set (or forever); optionally with an in-process worker."""
    from bots.core.runner import serve

    class Process:
        def __init__(self, bot: DiscordBot) -> None:
            self.bot = bot

        async def start(self) -> str:
            await self.bot.start()
            return str(self.bot.client.user)

        async def stop(self) -> None:
            await self.bot.stop()

    async def make(rt: Runtime) -> Process:
        return Process(await build_bot(rt, settings))

    await serve("discord", settings, make, with_worker=with_worker, stop=stop)
