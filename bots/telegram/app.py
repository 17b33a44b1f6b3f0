"""The Telegram bot: a python-telegram-bot ``Application`` translating updates into intents.

Handlers build :mod:`bots.core.intents` from commands, text, button presses and reactions, ask
the conversation core, and send its views back. The event pump (:class:`bots.core.pump.EventPump`)
runs beside the application and posts each story's status, storyboard and video. Long polling is
the default; with ``STORYLOOM_TELEGRAM_WEBHOOK_URL`` set, a small aiohttp server receives updates
and checks Telegram's secret-token header.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable
from typing import Any

from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    Message,
    MessageEntity,
    MessageReactionUpdated,
    ReactionTypeEmoji,
    Update,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    MessageReactionHandler,
    filters,
)

from bots.core import intents as it
from bots.core.conversation import AdminCheck, Conversation
from bots.core.delivery import ChatGone
from bots.core.pump import EventPump, stop_task
from bots.core.views import AnyView, Text
from bots.telegram.flood import ChatRateLimiter, Limits
from bots.telegram.render import TelegramRenderer
from bots.telegram.split import SplitJoiner
from pipeline.models import ChatRef, Platform, UserRef
from pipeline.runtime import Runtime
from pipeline.settings import Settings

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query", "message_reaction", "my_chat_member"]
COMMANDS = [
    ("story", "Start a story: /story <idea>"),
    ("settings", "Aspect, scenes, style and voice for new stories"),
    ("status", "How the latest story is doing"),
    ("mystories", "Your stories"),
    ("cancel", "Stop a story"),
    ("help", "How Storyloom works"),
]
# Updates handled at once: a handler whose reply waits out one chat's flood wait must not keep
# the others (a button press elsewhere) waiting for a free slot.
CONCURRENT_UPDATES = 64
QUESTION_TTL_S = 900  # as long as the conversation waits for a scene's new text


# --------------------------------------------------------------------------- identities


def chat_ref(chat: Chat, message: Message | None = None) -> ChatRef:
    thread = None
    if message is not None and message.is_topic_message and message.message_thread_id:
        thread = str(message.message_thread_id)
    return ChatRef(platform=Platform.telegram, chat_id=str(chat.id), thread_id=thread,
                   is_group=chat.type in (Chat.GROUP, Chat.SUPERGROUP))


def user_ref(user: Any) -> UserRef:
    name = (user.first_name or user.username or "") if user is not None else ""
    uid = str(user.id) if user is not None else "0"
    return UserRef(platform=Platform.telegram, user_id=uid, display_name=name)


# --------------------------------------------------------------------------- the bot


class TelegramBot:
    def __init__(
        self,
        rt: Runtime,
        conv: Conversation,
        *,
        token: str,
        base_url: str = "https://api.telegram.org",
        limits: Limits | None = None,
        status_interval_s: tuple[float, float] = (3.0, 6.0),
        consumer: str = "main",
        poll_timeout_s: int = 10,
    ) -> None:
        self.rt = rt
        self.conv = conv
        self.poll_timeout_s = poll_timeout_s
        base = base_url.rstrip("/")
        self.limiter = ChatRateLimiter(limits or Limits())
        self.app: Application[Any, Any, Any, Any, Any, Any] = (
            Application.builder()
            .token(token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .rate_limiter(self.limiter)
            .concurrent_updates(CONCURRENT_UPDATES)
            .build()
        )
        self.renderer = TelegramRenderer(self.app.bot, upload_limit_bytes=conv.size_cap_bytes
                                         or 50_000_000)
        self.pump = EventPump(conv, self.renderer, consumer=consumer,
                              status_interval_s=status_interval_s)
        self._pump_task: asyncio.Task[None] | None = None
        self._admins: dict[tuple[str, str], tuple[float, bool]] = {}
        self._webhook: Any = None
        self._joiner = SplitJoiner()
        self._add_handlers()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, webhook_url: str = "", webhook_secret: str = "",
                    webhook_listen: str = "0.0.0.0:8443") -> None:
        await self.app.initialize()
        await self.app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
        await self.app.start()
        if webhook_url:
            await self._start_webhook(webhook_url, webhook_secret, webhook_listen)
        else:
            assert self.app.updater is not None
            await self.app.updater.start_polling(
                poll_interval=0.0, timeout=self.poll_timeout_s, allowed_updates=ALLOWED_UPDATES,
            )
        self._pump_task = asyncio.create_task(self.pump.run(), name="telegram-event-pump")

    async def stop(self) -> None:
        await stop_task(self._pump_task)
        self._pump_task = None
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self._webhook is not None:
            await self._webhook.cleanup()
            self._webhook = None
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def _start_webhook(self, url: str, secret: str, listen: str) -> None:
        from aiohttp import web

        secret = secret or secrets.token_urlsafe(32)
        bot = self.app.bot

        async def receive(request: web.Request) -> web.Response:
            given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                return web.Response(status=403)
            try:
                update = Update.de_json(await request.json(), bot)
            except Exception:
                return web.Response(status=400)
            if update is not None:
                await self.app.update_queue.put(update)
            return web.Response(text="ok")

        web_app = web.Application()
        path = "/" + url.split("://", 1)[-1].partition("/")[2].strip("/")
        web_app.router.add_post(path if path != "/" else "/telegram", receive)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        host, _, port = listen.rpartition(":")
        await web.TCPSite(runner, host or "0.0.0.0", int(port or 8443)).start()
        self._webhook = runner
        await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

    # ------------------------------------------------------------------ handlers

    def _add_handlers(self) -> None:
        a = self.app
        msg_only = filters.UpdateType.MESSAGE
        for name, fn in (("start", self.on_start), ("help", self.on_help),
                         ("story", self.on_story), ("settings", self.on_settings),
                         ("cancel", self.on_cancel), ("status", self.on_status),
                         ("mystories", self.on_mystories)):
            a.add_handler(CommandHandler(name, fn, filters=msg_only))
        a.add_handler(MessageHandler(filters.COMMAND & msg_only, self.on_unknown_command))
        a.add_handler(CallbackQueryHandler(self.on_button))
        a.add_handler(MessageReactionHandler(self.on_reaction))
        a.add_handler(ChatMemberHandler(self.on_membership, ChatMemberHandler.MY_CHAT_MEMBER))
        a.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & msg_only, self.on_text))
        a.add_handler(MessageHandler(~filters.TEXT & ~filters.COMMAND & msg_only &
                                     ~filters.StatusUpdate.ALL, self.on_other))
        a.add_error_handler(self.on_error)

    def _admin_check(self, chat: ChatRef, user: UserRef) -> AdminCheck:
        async def check() -> bool:
            key = (chat.chat_id, user.user_id)
            hit = self._admins.get(key)
            if hit is not None and time.monotonic() - hit[0] < 60:
                return hit[1]
            member = await self.app.bot.get_chat_member(int(chat.chat_id), int(user.user_id))
            ok = member.status in ("administrator", "creator")
            self._admins[key] = (time.monotonic(), ok)
            return ok

        return check

    async def _answer(self, update: Update, intent: it.Intent) -> None:
        msg = update.effective_message
        if msg is None or update.effective_chat is None:
            return
        chat = chat_ref(update.effective_chat, msg)
        user = user_ref(update.effective_user)
        views = await self.conv.handle(intent, user, chat, self._admin_check(chat, user))
        await self._send_all(chat, user, views, reply_to=msg.message_id)

    async def _send_all(self, chat: ChatRef, user: UserRef, views: list[AnyView], *,
                        reply_to: int | None = None, source: Message | None = None) -> None:
        for view in views:
            try:
                if isinstance(view, Text) and view.replace_source and source is not None:
                    await self.renderer.edit_source(chat, source.message_id, view)
                    continue
                refs = await self.renderer.reply(chat, view, reply_to=reply_to,
                                                 mention=(user.user_id, user.display_name))
                if isinstance(view, Text) and view.ask_reply:
                    for ref in refs:
                        await self._asked(chat, ref, user)
            except ChatGone:
                await self.conv.delivery.mark_gone(chat)
                return

    def _bot_username(self) -> str:
        return self.app.bot.username or ""

    async def on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, it.Welcome())

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, it.Help())

    def _whole(self, msg: Message) -> Awaitable[str | None]:
        """The text of ``msg`` joined with the parts a client split it into (None for a part
        that continues another message). Called before a handler's first ``await``."""
        user = msg.from_user.id if msg.from_user is not None else 0
        return self._joiner.whole(msg.chat.id, user, msg.message_id, msg.text or "")

    async def on_story(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        idea = " ".join(context.args or [])
        msg = update.effective_message
        if msg is not None and msg.text:  # keep the idea's own spacing and line breaks
            text = await self._whole(msg)
            idea = re.sub(r"^/\S+\s?", "", text or msg.text, count=1)
        await self._answer(update, it.StartStory(idea=idea))

    async def on_settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, it.ChangeSettings())

    async def on_cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, it.Cancel(story_id=_story_id(_first(context.args))))

    async def on_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, it.ShowStatus(story_id=_story_id(_first(context.args))))

    async def on_mystories(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(update, it.MyStories())

    async def on_unknown_command(self, update: Update,
                                 context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None or not msg.text:
            return
        command = msg.text.split()[0]
        name, _, target = command.partition("@")
        if chat.type != Chat.PRIVATE and target.lower() != self._bot_username().lower():
            return  # a command for another bot in the group
        await self._answer(update, it.UnknownCommand(command=name))

    # A question the bot asked (sent with ForceReply) is remembered with the person it asked,
    # for as long as the conversation keeps the pending answer.
    def _question_key(self, chat: ChatRef, ref: str) -> str:
        return f"sl:bot:telegram:asked:{chat.chat_id}:{ref}"

    async def _asked(self, chat: ChatRef, ref: str, user: UserRef) -> None:
        await self.rt.redis.set(self._question_key(chat, ref), user.user_id, ex=QUESTION_TTL_S)

    async def _answers_question(self, msg: Message, take: bool) -> bool:
        """Is ``msg`` a reply to a question the bot asked its sender? With ``take``, the
        question counts as answered: a second reply to it is chatter again."""
        reply = msg.reply_to_message
        if reply is None or reply.from_user is None or reply.from_user.id != self.app.bot.id:
            return False
        key = self._question_key(chat_ref(msg.chat), str(reply.message_id))
        asked = await self.rt.redis.get(key)
        if asked is None or msg.from_user is None:
            return False
        if (asked.decode() if isinstance(asked, bytes) else str(asked)) != str(msg.from_user.id):
            return False
        if take:
            await self.rt.redis.delete(key)
        return True

    async def _addressed(self, msg: Message, text: str | None = None, *,
                         take: bool = False) -> tuple[bool, str]:
        """In a group: is this message for the bot? A mention is; a reply only when it answers
        a question the bot asked that person (a plain reply to a bot message is chatter).
        Returns the text (``msg``'s own unless given) without the mention."""
        text = text if text is not None else msg.text or msg.caption or ""
        me = self._bot_username()
        mention = f"@{me}".lower()
        if me and mention in text.lower():
            idx = text.lower().index(mention)
            return True, (text[:idx] + text[idx + len(mention):]).strip()
        return await self._answers_question(msg, take), text

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return
        whole = await self._whole(msg)
        if whole is None:
            return  # the rest of a message a client split: answered with its first part
        if chat.type == Chat.PRIVATE:
            await self._answer(update, it.FreeText(text=whole))
            return
        addressed, text = await self._addressed(msg, whole, take=True)
        if not addressed:
            return
        if not text.strip():
            await self._answer(update, it.Help())
            return
        await self._answer(update, it.FreeText(text=text))

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None:
            return
        command = self._caption_command(msg)
        if command is not None:
            name, idea = command
            if name == "story":
                await self._answer(update, it.StartStory(idea=idea, photo=msg.photo[-1].file_id))
                return
        if chat.type != Chat.PRIVATE and not (await self._addressed(msg))[0]:
            return
        what = "sticker" if msg.sticker else "photo" if msg.photo else "message"
        await self._answer(update, it.NotText(what=what))

    def _caption_command(self, msg: Message) -> tuple[str, str] | None:
        """A photo captioned with a command for this bot: its name and the rest of the caption.
        Telegram marks it as a ``bot_command`` entity of the caption, which PTB's command
        handler does not look at."""
        caption = msg.caption or ""
        if not msg.photo or not any(e.type == MessageEntity.BOT_COMMAND and e.offset == 0
                                    for e in msg.caption_entities):
            return None
        m = _CAPTION_COMMAND.match(caption)
        if m is None:
            return None
        name, target, rest = m.groups()
        if target and target.lower() != self._bot_username().lower():
            return None  # a command for another bot in the group
        return name.lower(), (rest or "").strip()

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query: CallbackQuery | None = update.callback_query
        if query is None:
            return
        source = query.message if isinstance(query.message, Message) else None
        if source is None or not query.data:
            await query.answer("This button has expired.")
            return
        chat = chat_ref(source.chat, source)
        user = user_ref(query.from_user)
        views = await self.conv.press(query.data, user, chat, self._admin_check(chat, user))
        toast = next((v for v in views if isinstance(v, Text) and v.toast), None)
        if toast is not None:
            await query.answer(toast.text[:200], show_alert=toast.error and len(toast.text) > 60)
        else:
            await query.answer()
        rest = [v for v in views if not (isinstance(v, Text) and v.toast)]
        await self._send_all(chat, user, rest, source=source)

    async def on_reaction(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        r: MessageReactionUpdated | None = update.message_reaction
        if r is None or r.user is None:
            return  # anonymous reactions cannot be checked against permissions
        old = {x.emoji for x in r.old_reaction if isinstance(x, ReactionTypeEmoji)}
        added = [x.emoji for x in r.new_reaction
                 if isinstance(x, ReactionTypeEmoji) and x.emoji not in old]
        chat = chat_ref(r.chat)
        user = user_ref(r.user)
        for emoji in added:
            views = await self.conv.react(chat, str(r.message_id), emoji, user,
                                          self._admin_check(chat, user))
            await self._send_all(chat, user, views, reply_to=r.message_id)

    async def on_membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        if change is None:
            return
        chat = chat_ref(change.chat)
        if change.new_chat_member.status in ("left", "kicked"):
            await self.conv.delivery.mark_gone(chat)
            log.info("removed from a chat", extra={"chat": chat.key})
        elif change.new_chat_member.status in ("member", "administrator"):
            await self.conv.delivery.clear_gone(chat)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        err = context.error
        if isinstance(err, ChatGone) and isinstance(update, Update) and update.effective_chat:
            await self.conv.delivery.mark_gone(chat_ref(update.effective_chat))
            return
        log.error("update failed: %s", type(err).__name__, exc_info=err)


def _first(args: list[str] | None) -> str | None:
    return args[0] if args else None


_CAPTION_COMMAND = re.compile(r"/(\w+)(?:@(\w+))?(?:\s+(.*))?$", re.S)
_ID = re.compile(r"^[a-z0-9]{4,16}$")


def _story_id(raw: str | None) -> str | None:
    if raw is None:
        return None
    raw = raw.strip().lower()
    return raw if _ID.match(raw) else "-" if raw else None


# --------------------------------------------------------------------------- running it


async def build_bot(rt: Runtime, settings: Settings, **kw: Any) -> TelegramBot:
    cap = int(settings.telegram_upload_mb * 1_000_000)
    conv = await Conversation.create(rt, Platform.telegram, size_cap_bytes=cap)
    return TelegramBot(rt, conv, token=settings.telegram_token.get_secret_value(),
                       base_url=settings.telegram_base_url, **kw)


async def run(settings: Settings, *, with_worker: bool | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Run the bot until ``stop`` is set (or forever); optionally with an in-process worker."""
    from bots.core.runner import serve

    class Process:
        def __init__(self, bot: TelegramBot) -> None:
            self.bot = bot

        async def start(self) -> str:
            await self.bot.start(
                webhook_url=settings.telegram_webhook_url,
                webhook_secret=settings.telegram_webhook_secret.get_secret_value(),
                webhook_listen=settings.telegram_webhook_listen,
            )
            return f"@{self.bot.app.bot.username}"

        async def stop(self) -> None:
            await self.bot.stop()

    async def make(rt: Runtime) -> Process:
        return Process(await build_bot(rt, settings))

    await serve("telegram", settings, make, with_worker=with_worker, stop=stop)
