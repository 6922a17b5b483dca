"""The Telegram adapter: screens group messages and edits, holds by deleting, reviews with inline buttons.

Telegram has no true hold (see docs/domain.md section 3): a held message is deleted, and an
approved one is reposted by the bot with attribution. Bots may delete messages only while they are
less than 48 hours old, and only as administrators with the right "Delete messages"; the adapter
checks that right in every screened group before it starts, and turns a delete Telegram refuses
into a permanent `ActionError` that the core shows to moderators on the case.

Review rooms are Telegram groups (`review_room = "telegram:<chat id>"`). A case is posted there as
plain text with four buttons; a click is honoured only when the clicker is an administrator (or the
creator) of the group the message came from, checked with getChatMember at click time. Every other
click is answered with a refusal and recorded with `core.refuse`.

Polling is the adapter's own getUpdates loop, not python-telegram-bot's Updater: the Updater asks
for the next batch (which acknowledges the last one) while that batch is still being stored, so a
crash then would lose it. Here the offset moves past an update only once its handler returned,
i.e. once the message is stored; after a crash Telegram sends the rest of the batch again and the
store drops what it already has. Network errors, timeouts and 5xx answers are retried for as long
as the bot runs: after 1 s, then 1.5 times longer each time up to 30 s, back to no wait after a
good poll; a flood-control answer waits the time Telegram asks for. Only a rejected token ends the
loop, and then `start` raises `AdapterError`. Updates Telegram kept while the bot was down (24
hours) are fetched on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from telegram import (Bot, CallbackQuery, ChatMember, InlineKeyboardButton, InlineKeyboardMarkup,
                      LinkPreviewOptions, ReplyParameters, Update)
from telegram import Message as TgMessage
from telegram.error import (BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter,
                            TelegramError)
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.cases import OPEN_STATES, TRANSITIONS, Actor, Refused
from bot.config import ConfigError, secret
from bot.models import Author, Message, ReplyContext
from bot.outbox import Delivery

from .base import DECISIONS, ActionError, Adapter, AdapterError, Core

log = logging.getLogger("pharmamod.telegram")

PLATFORM = "telegram"
MAX_TEXT = 4000  # Telegram allows 4096 (UTF-16 units) in one message; the rest is margin
MAX_ANSWER = 200  # ... and for the text of a callback answer
QUOTE_CHARS = 2500  # of the held message, in a review post
READY_WAIT = 10.0  # how long a delivery waits for the adapter to connect at start-up
SUBMIT_TRIES = 4
ADMIN_STATUSES = (ChatMember.ADMINISTRATOR, ChatMember.OWNER)
BUTTONS = {"approve": "Approve", "reject": "Reject", "escalate": "Escalate to PV", "not_ae": "Not an AE"}
# The reason code a button click records (REASONS in bot.cases); the note says who clicked.
CLICK_REASON = {"approve": "compliant", "reject": "drug_name", "escalate": "pharmacovigilance"}
TOO_OLD = "older than 48 hours: Telegram does not let bots delete it; remove it by hand"


# -- configuration -------------------------------------------------------------------------------


class TelegramSettings(BaseModel):
    """`[adapters.telegram]`: which groups are screened as which community, and how to reach Telegram."""

    model_config = ConfigDict(extra="forbid")

    token_env: str = "PHARMAMOD_TELEGRAM_TOKEN"  # the environment variable holding the bot token
    api_url: str = "https://api.telegram.org/bot"  # the token is appended; tests point this at a fake
    communities: dict[str, int | list[int]] = Field(min_length=1)  # community name -> chat id(s)
    poll_timeout: float = Field(30.0, gt=0, le=60)  # seconds one getUpdates long poll may wait

    @field_validator("api_url")
    @classmethod
    def _https(cls, v: str) -> str:
        parts = urlsplit(v)
        local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not (parts.scheme == "https" and parts.hostname) and not local:
            raise ValueError("api_url must be https:// (the bot token travels in the URL); "
                             "plain http only to 127.0.0.1/localhost, for testing")
        return v.rstrip("/")

    @field_validator("communities")
    @classmethod
    def _one_community_per_chat(cls, v: dict[str, int | list[int]]) -> dict[str, int | list[int]]:
        seen: dict[int, str] = {}
        for name, ids in v.items():
            for chat in ids if isinstance(ids, list) else [ids]:
                if chat in seen:
                    raise ValueError(f"chat {chat} is mapped to both {seen[chat]!r} and {name!r}")
                seen[chat] = name
        return v

    def chats(self) -> dict[int, str]:
        """chat id -> community name."""
        return {chat: name for name, ids in self.communities.items()
                for chat in (ids if isinstance(ids, list) else [ids])}

    @property
    def file_url(self) -> str:
        return self.api_url[: -len("/bot")] + "/file/bot" if self.api_url.endswith("/bot") else \
            "https://api.telegram.org/file/bot"


def parse_settings(name: str, raw: Any) -> TelegramSettings:
    if isinstance(raw, TelegramSettings):
        return raw
    try:
        return TelegramSettings.model_validate(raw or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in ("adapters", name, *err["loc"]))
            lines.append(f"[{where}] {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


# -- keeping the token out of logs ---------------------------------------------------------------


class _Redact(logging.Filter):
    """Replace the bot token in log records: httpx logs every request URL at INFO, and PTB puts
    the token in the message of the InvalidToken it raises at start-up."""

    def __init__(self, token: str) -> None:
        super().__init__("telegram-token")
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the handler's problem, not ours
            return True
        if self.token in msg:
            record.msg, record.args = msg.replace(self.token, "<token>"), None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if self.token in text:
                record.exc_text = text.replace(self.token, "<token>")
        return True


def redact_token(token: str) -> None:
    """Filter `token` out of the records of the loggers that could carry it. Filters stay for the
    life of the process: the core still delivers through the adapter after stopping it."""
    names = ["httpx", "httpcore", "telegram"] + [n for n in list(logging.root.manager.loggerDict)
                                                  if n.startswith(("telegram.", "httpx.", "httpcore."))]
    for lg in (logging.getLogger(n) for n in dict.fromkeys(names)):
        if not any(isinstance(f, _Redact) and f.token == token for f in lg.filters):
            lg.addFilter(_Redact(token))


# -- platform errors to the core's -----------------------------------------------------------------

# BadRequest descriptions (lower case) -> what moderators read on the case. A 400 never gets
# better by retrying, so every BadRequest is permanent.
_BAD_REQUEST = (
    ("message to delete not found", "the message is gone: deleted by its author or an admin, or "
                                    "already held (a restored repost must be deleted by hand)"),
    ("chat not found", "the bot cannot see this chat: add it to the group"),
    ("not enough rights", "the bot lacks the right for this in the chat: make it an administrator"),
    ("message is too long", "the text is longer than Telegram allows"),
)


def action_error(exc: TelegramError, what: str, token: str = "") -> ActionError:
    """Translate a python-telegram-bot exception into the core's ActionError (one table, here)."""
    text = str(exc.message if hasattr(exc, "message") else exc)
    if token:
        text = text.replace(token, "<token>")
    if isinstance(exc, RetryAfter):
        seconds = exc._retry_after.total_seconds()  # the public attribute warns (PTB v22.2 deprecation)
        return ActionError(f"{what}: Telegram flood control, retry in {seconds:g} s", retry_after=seconds)
    if isinstance(exc, BadRequest):
        low = text.lower()
        for needle, why in _BAD_REQUEST:
            if needle in low:
                return ActionError(f"{what}: {why} (Telegram: {text})", permanent=True)
        return ActionError(f"{what}: Telegram refused it: {text}", permanent=True)
    if isinstance(exc, ChatMigrated):
        return ActionError(f"{what}: the group became a supergroup with chat id {exc.new_chat_id}; put that id "
                           "in [adapters.telegram] communities / review_room", permanent=True)
    if isinstance(exc, Forbidden):
        return ActionError(f"{what}: the bot was removed from the chat or lacks the right ({text}); "
                           "make it an administrator there", permanent=True)
    if isinstance(exc, InvalidToken):
        return ActionError(f"{what}: Telegram rejected the bot token (revoked?); retrying")
    if isinstance(exc, NetworkError):  # includes TimedOut and 5xx answers
        return ActionError(f"{what}: network trouble talking to Telegram: {text}")
    return ActionError(f"{what}: {text}")


# -- Telegram messages to core messages -----------------------------------------------------------


def _text(m: TgMessage) -> str:
    return m.text or m.caption or ""


def to_message(m: TgMessage, community: str) -> Message | None:
    """A group message (or the new version of an edited one) as the core's Message; None when
    there is nothing to screen (a sticker, a photo without caption, a service message)."""
    text = _text(m)
    if not text:
        return None
    chat = m.chat
    if m.sender_chat is not None:  # an anonymous admin or a linked channel speaks as the chat
        author = Author(id=str(m.sender_chat.id), display_name=m.sender_chat.title or m.sender_chat.username or "")
    elif m.from_user is not None:
        author = Author(id=str(m.from_user.id), display_name=m.from_user.full_name)
    else:
        author = Author()
    reply = None
    if m.reply_to_message is not None:
        reply = ReplyContext(message_id=f"{chat.id}:{m.reply_to_message.message_id}", text=_text(m.reply_to_message))
    return Message(
        platform=PLATFORM, community=community, channel=str(chat.id), message_id=f"{chat.id}:{m.message_id}",
        author=author, text=text, created_at=m.date, reply_to=reply,
        permalink=f"https://t.me/{chat.username}/{m.message_id}" if chat.username else None)


def _seconds(value: Any) -> float:
    """RetryAfter.retry_after is seconds now and a timedelta in a later python-telegram-bot."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _split_ref(ref: str) -> tuple[int, int]:
    """ "<chat id>:<message id>" -> (chat, message); chat ids of groups are negative."""
    chat, _, mid = str(ref).rpartition(":")
    return int(chat), int(mid)


def _room_chat(room: str) -> int:
    kind, _, rid = room.partition(":")
    if kind != PLATFORM or not rid.lstrip("-").isdigit():
        raise ValueError(f"review room {room!r} is not \"telegram:<chat id>\"")
    return int(rid)


# -- the case card as a Telegram message -----------------------------------------------------------


def render_card(card: dict[str, Any]) -> str:
    """The case card (bot.cases.CaseBook.card) as plain text: no parse mode, so nothing to escape."""
    lines = [f"Case #{card['case_id']} · {str(card['state']).upper()} · community {card['community']}"]
    last = card.get("last_decision")
    if last:
        lines.append(f"{last['state']} by {last['actor_platform']}:{last['actor']} ({last['reason_code']}) "
                     f"at {last['at']}")
    if card.get("action_error"):
        lines.append(f"⚠ ACTION FAILED: {card['action_error']}")
    lines.append("")
    who = card.get("author_name") or card.get("author") or "unknown"
    lines.append(f"From {who} (id {card.get('author')}) on {card['platform']}, message {card['message_id']}")
    if card.get("permalink"):
        lines.append(str(card["permalink"]))
    text = card.get("text")
    if text is None:
        lines.append("(text purged by the retention policy)")
    else:
        quoted = text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + " […]"
        lines.append("“" + quoted + "”")
    if card.get("hits"):
        lines.append("")
        lines.append("Why it was held:")
        for h in card["hits"]:
            lines.append(f"• {h['rule']} [{h['category']}]: {h['explanation']}")
    pv = card.get("pv")
    if pv:
        lines.append("")
        flags = ", ".join(pv["kinds"]) + (" · SERIOUS" if pv["serious"] else "")
        lines.append(f"PV case {pv['report_id']} ({pv['status']}): {flags}")
        lines.append(f"Report due {pv['due'] or 'n/a'}"
                     + (f" · missing: {', '.join(pv['missing'])}" if pv.get("missing") else " · complete"))
    if card.get("respond_by") and card["state"] in OPEN_STATES:
        lines.append(f"Respond by {card['respond_by']}")
    out = "\n".join(lines)
    return out if len(out) <= MAX_TEXT else out[: MAX_TEXT - 1] + "…"


def keyboard(card: dict[str, Any]) -> InlineKeyboardMarkup | None:
    """The buttons the case's state allows: decisions from bot.cases.TRANSITIONS, "Not an AE" while
    the case is open or its PV case is."""
    state = card["state"]
    shown = [d for d in ("approve", "reject", "escalate") if d in TRANSITIONS.get(state, {})]
    pv = card.get("pv")
    if state in OPEN_STATES or (pv and pv.get("status") == "open"):
        shown.append("not_ae")
    if not shown:
        return None
    buttons = [InlineKeyboardButton(BUTTONS[d], callback_data=f"pm:{d}:{card['case_id']}") for d in shown]
    return InlineKeyboardMarkup([buttons[i:i + 2] for i in range(0, len(buttons), 2)])


def _chunks(text: str, size: int = MAX_TEXT) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


# -- the adapter -------------------------------------------------------------------------------------


class TelegramAdapter(Adapter):
    platform = PLATFORM

    def __init__(self, name: str, settings: Any, base_dir: Any = None) -> None:
        super().__init__(name, parse_settings(name, settings), base_dir)
        self.chats = self.settings.chats()  # chat id -> community
        self.core: Core | None = None
        self._token = ""
        self._app: Application | None = None
        self._live = False  # polling and the application's HTTP client are up
        self._ready = asyncio.Event()  # set once start connected, failed or was stopped
        self._stopping = asyncio.Event()
        self._failed = ""
        self._titles: dict[int, str] = {}

    # -- start and stop -----------------------------------------------------------------------

    def _build(self, token: str) -> Application:
        s = self.settings
        return (ApplicationBuilder().token(token).base_url(s.api_url).base_file_url(s.file_url)
                .job_queue(None).concurrent_updates(False).build())

    async def start(self, core: Core) -> None:
        self.core = core
        try:
            try:
                self._token = secret(self.settings.token_env) or ""
            except ConfigError as exc:
                raise AdapterError(f"[adapters.{self.name}]: {exc} (the Telegram bot token from @BotFather)") from None
            redact_token(self._token)
            app = self._build(self._token)
            try:
                await self._connect(app, core)
                app.add_handler(MessageHandler(filters.UpdateType.MESSAGES & filters.ChatType.GROUPS, self._on_message))
                app.add_handler(CallbackQueryHandler(self._on_callback))
                app.add_error_handler(self._on_error)
                await app.start()
                self._app, self._live = app, True
                self._ready.set()
                log.info("telegram: screening %d group(s) as @%s", len(self.chats), app.bot.username)
                await self._until_stopped(app)
            finally:
                self._live = False
                await self._close(app)
        except AdapterError as exc:
            self._failed = str(exc)
            raise
        finally:
            self._ready.set()

    async def _connect(self, app: Application, core: Core) -> None:
        """getMe, then the bot's rights: delete in every screened group, post in every review room."""
        where = f"Telegram at {self.settings.api_url}"
        try:
            await app.initialize()
        except InvalidToken:
            # PTB's message quotes the token: never pass it on.
            raise AdapterError(f"Telegram rejected the bot token in {self.settings.token_env}; "
                               "check it with @BotFather (/token) and export it again") from None
        except TelegramError as exc:
            raise AdapterError(f"cannot reach {where}: {self._clean(exc)}") from None
        bot = app.bot
        problems: list[str] = []
        rooms: dict[int, list[str]] = {}  # every Telegram review room, whichever platform its communities are on
        for room, communities in core.review_rooms().items():
            if not room.startswith(PLATFORM + ":"):
                continue
            try:
                rooms.setdefault(_room_chat(room), []).extend(communities)
            except ValueError as exc:
                problems.append(f"communities {', '.join(communities)}: {exc}")
        for chat, community in self.chats.items():
            group = f"group {chat} (community {community!r})"
            if chat in rooms:
                problems.append(f"{group} is also the review room of {', '.join(rooms[chat])}: review posts "
                                "quote held messages, so use a separate moderators' group")
            member = await self._bot_member(bot, chat, group, problems)
            if member is None:
                continue
            if member.status not in ADMIN_STATUSES:
                problems.append(f"{group}: the bot is not an administrator (it is {member.status}); make it "
                                "an administrator with the right \"Delete messages\" (can_delete_messages)")
            elif member.status == ChatMember.ADMINISTRATOR and not getattr(member, "can_delete_messages", False):
                problems.append(f"{group}: the bot is an administrator without the right \"Delete messages\" "
                                "(can_delete_messages); turn that right on")
        for chat, communities in rooms.items():
            group = f"review room {chat} (of {', '.join(repr(c) for c in communities)})"
            member = await self._bot_member(bot, chat, group, problems)
            if member is None:
                continue
            if member.status in (ChatMember.LEFT, ChatMember.BANNED) or (
                    member.status == ChatMember.RESTRICTED and not getattr(member, "can_send_messages", True)):
                problems.append(f"{group}: the bot cannot post there (it is {member.status}); add it to the "
                                "group and let it send messages")
        if problems:
            raise AdapterError("the Telegram bot is not set up to moderate:\n  " + "\n  ".join(problems))

    async def _bot_member(self, bot: Bot, chat: int, group: str, problems: list[str]) -> ChatMember | None:
        try:
            return await bot.get_chat_member(chat, bot.id)
        except (BadRequest, Forbidden) as exc:
            problems.append(f"{group}: the bot cannot see this chat ({self._clean(exc)}); add the bot to it "
                            "(and check the chat id)")
        except TelegramError as exc:
            raise AdapterError(f"cannot check the bot's rights in {group}: {self._clean(exc)}") from None
        return None

    async def _until_stopped(self, app: Application) -> None:
        stop = asyncio.create_task(self._stopping.wait())
        polling = asyncio.create_task(self._poll(app))
        try:
            await asyncio.wait([stop, polling], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not polling.done():
                polling.cancel()  # a parked long poll: nothing of it was acknowledged
                with contextlib.suppress(asyncio.CancelledError):
                    await polling
        if polling.done() and not polling.cancelled() and polling.exception():
            raise polling.exception()

    async def _poll(self, app: Application) -> None:
        """getUpdates for as long as the bot runs; an update is acknowledged (the next offset) only
        after its handler returned, so nothing Telegram delivered is lost to a crash."""
        offset: int | None = None
        delay = 0.0
        while not self._stopping.is_set():
            try:
                updates = await app.bot.get_updates(
                    offset=offset, timeout=self.settings.poll_timeout,
                    allowed_updates=["message", "edited_message", "callback_query"])
            except InvalidToken:
                raise AdapterError(f"Telegram polling stopped: Telegram rejected the bot token; check the bot "
                                   f"token in {self.settings.token_env}") from None
            except RetryAfter as exc:
                self._on_poll_error(exc)
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except TelegramError as exc:  # network errors, timeouts, 5xx, 409: try again with backoff
                self._on_poll_error(exc)
                delay = min(30.0, max(1.0, delay * 1.5))
                await asyncio.sleep(delay)
                continue
            delay = 0.0
            for update in updates:
                await app.process_update(update)  # handlers run in order; errors go to _on_error
                offset = update.update_id + 1

    async def _close(self, app: Application) -> None:
        with contextlib.suppress(Exception):
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
        with contextlib.suppress(Exception):
            if app.running:
                await app.stop()
        with contextlib.suppress(Exception):
            await app.shutdown()

    async def stop(self) -> None:
        self._stopping.set()
        self._ready.set()

    # -- incoming updates ---------------------------------------------------------------------

    def _on_poll_error(self, exc: TelegramError) -> None:
        log.warning("telegram: polling failed (%s); retrying with backoff (1 s, growing to 30 s)", self._clean(exc))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        uid = update.update_id if isinstance(update, Update) else "?"
        log.error("telegram: update %s was not handled: %s", uid, self._clean(context.error),
                  exc_info=context.error)

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        m = update.effective_message
        if m is None:
            return
        self._follow_migration(m)
        if m.chat.id not in self.chats:
            return
        if m.chat.title:
            self._titles[m.chat.id] = m.chat.title
        msg = to_message(m, self.chats[m.chat.id])
        if msg is None:
            return
        for attempt in range(SUBMIT_TRIES):
            try:
                await self.core.submit(msg)
                return
            except Exception as exc:  # noqa: BLE001 - the store failed; Telegram will not send it again
                if attempt == SUBMIT_TRIES - 1:
                    log.error("telegram: message %s could NOT be stored: %s", msg.message_id, exc)
                    return
                await asyncio.sleep(0.5 * 2 ** attempt)

    def _follow_migration(self, m: TgMessage) -> None:
        """A group upgraded to a supergroup gets a new chat id; keep screening it under the same
        community (the service message arrives in both chats) and tell the owner to update the config."""
        old, new = (m.chat.id, m.migrate_to_chat_id) if m.migrate_to_chat_id else (m.migrate_from_chat_id, m.chat.id)
        if old in self.chats and new and new not in self.chats:
            self.chats[new] = self.chats[old]
            log.warning("telegram: group %s of community %r became supergroup %s; screening it, but put %s in "
                        "[adapters.%s] communities before the next start", old, self.chats[old], new, new, self.name)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A review button: decide for admins of the case's source group; refuse (and record) the rest."""
        q = update.callback_query
        answer = "Something went wrong; try again in a moment."
        try:
            answer = await self._decide(q)
        except Exception:  # noqa: BLE001 - the clicker must get an answer whatever happens
            log.exception("telegram: button %r failed", q.data)
        finally:
            with contextlib.suppress(TelegramError):
                await q.answer(answer[:MAX_ANSWER], show_alert=not answer.startswith("✓"))

    async def _decide(self, q: CallbackQuery) -> str:
        parts = (q.data or "").split(":")
        if len(parts) != 3 or parts[0] != "pm" or parts[1] not in DECISIONS or not parts[2].isdigit():
            return "This button is not one of pharmamod's."
        decision, case_id = parts[1], int(parts[2])
        user = q.from_user
        try:
            card = await self.core.card(case_id)
        except Refused as exc:
            return str(exc)
        # Who may decide: admins of the group the message came from; for a case from another
        # platform reviewed here, admins of this room when it is the community's review room.
        room = q.message.chat.id if q.message is not None else None
        if card["platform"] == PLATFORM:
            source = int(card["channel"])
            group = self._titles.get(source) or f"the group of community {card['community']!r} ({source})"
        elif room is not None and self.core.community(card["community"]).review_room == f"{PLATFORM}:{room}":
            source, group = room, f"this review room ({room})"
        else:
            source, group = None, f"community {card['community']!r}"
        status = "unknown"
        if source is not None:
            try:
                member = await q.get_bot().get_chat_member(source, user.id)
                status = member.status
            except BadRequest:
                status = "not a member"
            except TelegramError as exc:
                return f"Could not check your rights on Telegram ({self._clean(exc)}); try again."
        who = str(user.id)
        if status not in ADMIN_STATUSES:
            why = f"only admins of {group} can decide"
            await self.core.refuse(Actor(id=who, platform=PLATFORM, roles=(status,)), case_id, decision, why)
            return f"Refused: {why}."
        actor = Actor(id=who, platform=PLATFORM, roles=(ChatMember.ADMINISTRATOR,), verified=True)
        name = user.full_name + (f" (@{user.username})" if user.username else "")
        try:
            if decision == "not_ae":
                # A richer reason (a form) is out of scope for a button; the note says who and where.
                report = await self.core.not_an_ae(case_id, actor, f"marked not an AE in Telegram by {name}")
                return f"✓ PV case {report} marked not an AE."
            new = await self.core.decide(case_id, decision, actor, CLICK_REASON[decision],
                                         note=f"decided in Telegram by {name}")
        except Refused as exc:
            return str(exc)
        return f"✓ Case #{case_id} is now {new}."

    # -- actions --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _bot(self) -> AsyncIterator[Bot]:
        """The running application's bot; after `stop` (the core drains its outbox after stopping
        the adapters) a short-lived one for each delivery."""
        if not self._ready.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), READY_WAIT)
        if self._live and self._app is not None:
            yield self._app.bot
            return
        if not self._token or self._failed:
            raise ActionError(f"the telegram adapter is not connected{': ' + self._failed if self._failed else ''}")
        bot = Bot(self._token, base_url=self.settings.api_url, base_file_url=self.settings.file_url)
        async with bot:
            yield bot

    async def perform(self, delivery: Delivery) -> dict[str, Any]:
        handler = getattr(self, f"_do_{delivery.kind}", None)
        if handler is None:
            raise ActionError(f"the telegram adapter cannot {delivery.kind}", permanent=True)
        try:
            async with self._bot() as bot:
                return await handler(bot, delivery)
        except TelegramError as exc:
            raise action_error(exc, delivery.kind, self._token) from exc

    async def _do_hold(self, bot: Bot, d: Delivery) -> dict[str, Any]:
        if d.payload.get("reposted"):  # reopened after approval: the original is gone, its reposts are up
            return await self._delete_reposts(bot, d.payload["reposted"])
        chat, mid = _split_ref(d.payload["message_id"])
        try:
            await bot.delete_message(chat, mid)
        except BadRequest as exc:
            low = exc.message.lower()
            if "message to delete not found" in low and d.attempts > 1:
                return {"deleted": d.payload["message_id"], "already": True}  # an earlier attempt did it
            if "can't be deleted" in low:
                raise await self._why_undeletable(bot, chat, mid) from exc
            raise
        return {"deleted": d.payload["message_id"]}

    async def _delete_reposts(self, bot: Bot, refs: list[str]) -> dict[str, Any]:
        for ref in refs:
            chat, mid = _split_ref(ref)
            try:
                await bot.delete_message(chat, mid)
            except BadRequest as exc:
                if "message to delete not found" not in exc.message.lower():
                    raise
        return {"deleted_reposts": refs}

    async def _why_undeletable(self, bot: Bot, chat: int, mid: int) -> ActionError:
        """Telegram says "message can't be deleted" both for messages older than 48 hours and when
        the bot lost its right: ask which, so moderators know what to do."""
        with contextlib.suppress(TelegramError):
            me = await bot.get_chat_member(chat, bot.id)
            if me.status not in ADMIN_STATUSES or (me.status == ChatMember.ADMINISTRATOR
                                                   and not getattr(me, "can_delete_messages", False)):
                return ActionError(f"message {chat}:{mid}: the bot is no longer an administrator with the right "
                                   "\"Delete messages\" in this group; give it back, then `pharmamod outbox retry`",
                                   permanent=True)
        return ActionError(f"message {chat}:{mid} is {TOO_OLD}", permanent=True)

    async def _hold_failed(self, case_id: int) -> bool:
        """The case's hold failed for good (too old, no right): the message is still in the group."""
        with contextlib.suppress(Refused):
            return str((await self.core.card(case_id)).get("action_error") or "").startswith("hold failed")
        return False

    async def _do_restore(self, bot: Bot, d: Delivery) -> dict[str, Any]:
        p = d.payload
        if await self._hold_failed(int(p["case_id"])):
            return {"skipped": "the message was never removed, so it is not reposted"}
        if p.get("text") is None:
            raise ActionError("the message text was purged by the retention policy; nothing to repost", permanent=True)
        chat = int(p["channel"])
        who = p.get("author_name") or p.get("author") or "someone"
        sent = []
        for part in _chunks(f"{who} wrote (restored after review): {p['text']}"):
            m = await bot.send_message(chat, part, link_preview_options=LinkPreviewOptions(is_disabled=True))
            sent.append(f"{chat}:{m.message_id}")
        return {"reposted": sent}

    async def _do_notify(self, bot: Bot, d: Delivery) -> dict[str, Any]:
        p = d.payload
        chat = int(p["channel"])
        if await self._hold_failed(int(p["case_id"])):
            return {"skipped": "the message was not removed, so the author is not told it was held"}
        name = p.get("author_name")
        if not name:
            with contextlib.suppress(Refused):
                name = (await self.core.card(int(p["case_id"])))["author_name"]
        label = html.escape(name or "Hello")
        author = str(p.get("author") or "")
        # A mention that works without a @username; anonymous senders (chats) cannot be mentioned.
        mention = f'<a href="tg://user?id={author}">{label}</a>' if author.isdigit() else label
        m = await bot.send_message(chat, f"{mention}, {html.escape(p['text'])}"[:MAX_TEXT], parse_mode="HTML",
                                   link_preview_options=LinkPreviewOptions(is_disabled=True))
        return {"notice": f"{chat}:{m.message_id}"}

    async def _do_review_post(self, bot: Bot, d: Delivery) -> dict[str, Any]:
        room = self._room(d.payload["room"])
        m = await bot.send_message(room, render_card(d.payload), reply_markup=keyboard(d.payload),
                                   link_preview_options=LinkPreviewOptions(is_disabled=True))
        return {"ref": f"{room}:{m.message_id}"}

    async def _do_review_update(self, bot: Bot, d: Delivery) -> dict[str, Any]:
        p = d.payload
        ref = await self.core.review_post(int(p["case_id"]), p["room"])
        if ref:
            chat, mid = _split_ref(ref)
            try:
                await bot.edit_message_text(render_card(p), chat_id=chat, message_id=mid, reply_markup=keyboard(p),
                                            link_preview_options=LinkPreviewOptions(is_disabled=True))
                return {"edited": ref}
            except BadRequest as exc:
                if "message is not modified" in exc.message.lower():
                    return {"edited": ref, "unchanged": True}
                if "message to edit not found" not in exc.message.lower() and \
                        "message can't be edited" not in exc.message.lower():
                    raise
        detail = await self._do_review_post(bot, d)  # no post to edit (deleted, or never posted): post anew
        return {**detail, "reposted": True}

    async def _do_remind(self, bot: Bot, d: Delivery) -> dict[str, Any]:
        """A response-time reminder in the review room, as a reply to the case's review post."""
        p = d.payload
        room = p.get("room") or self.core.community(p["community"]).review_room
        if not room.startswith(PLATFORM + ":"):
            raise ActionError(f"reminder for case {p['case_id']}: community {p['community']!r} has no Telegram "
                              "review room", permanent=True)
        chat = self._room(room)
        ref = await self.core.review_post(int(p["case_id"]), room)
        reply = ReplyParameters(message_id=_split_ref(ref)[1], allow_sending_without_reply=True) if ref else None
        m = await bot.send_message(chat, f"Reminder: case #{p['case_id']} of {p['community']} needs a decision "
                                         f"by {p['respond_by']}.", reply_parameters=reply)
        return {"reminder": f"{chat}:{m.message_id}"}

    # -- helpers ----------------------------------------------------------------------------------

    def _room(self, room: str) -> int:
        try:
            return _room_chat(room)
        except ValueError as exc:
            raise ActionError(str(exc), permanent=True) from None

    def _clean(self, exc: BaseException | None) -> str:
        text = str(getattr(exc, "message", exc))
        return text.replace(self._token, "<token>") if self._token else text


__all__ = ["TelegramAdapter", "TelegramSettings", "action_error", "keyboard", "render_card", "to_message"]
