"""A fake Telegram Bot API for the real python-telegram-bot client (docs: offline-clients.md, section 1).

Every call is `POST /bot<token>/<method>` with a form-encoded body (non-string values JSON-encoded);
answers are `{"ok": true, "result": ...}`, errors carry the HTTP status PTB maps to its exceptions
(400 BadRequest, 401 InvalidToken, 429 + retry_after RetryAfter). Methods the fake does not know
answer 400, never 404: PTB reads 404 as a bad token and stops polling.

The fake keeps the chats and their messages, so deleting a message twice fails the way Telegram
does. Knobs: `admins` per chat, `bot_member` (the bot's own status per chat), `too_old` (messages
Telegram refuses to delete), `flood(n, retry_after)` (the next n deletes get a 429) and
`drop_polls` (the next getUpdates calls lose their connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import Any

from aiohttp import web

from . import Recorder, start_fake

BOT = {"id": 7000001, "is_bot": True, "first_name": "PharmaMod", "username": "pharmamod_bot"}
ADMIN_RIGHTS = {
    "can_be_edited": False, "is_anonymous": False, "can_manage_chat": True, "can_delete_messages": True,
    "can_manage_video_chats": True, "can_restrict_members": True, "can_promote_members": False,
    "can_change_info": True, "can_invite_users": True, "can_post_stories": False, "can_edit_stories": False,
    "can_delete_stories": False, "can_pin_messages": True,
}


def user(uid: int, first_name: str, username: str | None = None) -> dict[str, Any]:
    u = {"id": uid, "is_bot": False, "first_name": first_name}
    if username:
        u["username"] = username
    return u


def ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def err(status: int, description: str, **parameters: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


class FakeTelegram:
    def __init__(self, token: str = "7000001:AAE-fake-secret-token-value") -> None:
        self.token = token
        self.rec = Recorder()
        self.port = 0
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # what is visible in each chat
        self.deleted: list[tuple[int, int]] = []
        self.admins: dict[int, set[int]] = {}  # chat -> user ids that are administrators
        self.bot_member: dict[int, dict[str, Any]] = {}  # chat -> the bot's ChatMember (default: full admin)
        self.too_old: set[tuple[int, int]] = set()
        self.updates: list[dict[str, Any]] = []
        self.new_update = asyncio.Event()
        self.drop_polls = 0
        self._flood: list[float] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = {}
        self._closing = False
        self._runner: web.AppRunner | None = None

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> "FakeTelegram":
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self.dispatch)
        self._runner, self.port = await start_fake(app)
        return self

    async def stop(self) -> None:
        self._closing = True
        self.new_update.set()  # free a parked long poll, or cleanup waits out its timeout
        if self._runner is not None:
            await self._runner.cleanup()

    # -- world set-up ---------------------------------------------------------------------------

    def add_group(self, chat_id: int, title: str, username: str | None = None, admins: tuple[int, ...] = ()) -> None:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        if username:
            chat["username"] = username
        self.chats[chat_id] = chat
        self.admins[chat_id] = set(admins)
        self._message_ids[chat_id] = itertools.count(1000)

    def flood(self, times: int = 1, retry_after: float = 0.2) -> None:
        """The next `times` deleteMessage calls are answered 429 Too Many Requests."""
        self._flood.extend([retry_after] * times)

    def member(self, chat_id: int, u: dict[str, Any]) -> dict[str, Any]:
        if u["id"] == BOT["id"]:
            return self.bot_member.get(chat_id) or {"status": "administrator", "user": BOT, **ADMIN_RIGHTS}
        if u["id"] in self.admins.get(chat_id, ()):
            return {"status": "administrator", "user": u, **ADMIN_RIGHTS}
        return {"status": "member", "user": u}

    # -- what users do --------------------------------------------------------------------------

    def push_update(self, **update: Any) -> int:
        uid = next(self._update_ids)
        self.updates.append({"update_id": uid, **update})
        self.new_update.set()
        return uid

    def post(self, chat_id: int, author: dict[str, Any], text: str, *, reply_to: dict[str, Any] | None = None,
             age_seconds: float = 0) -> dict[str, Any]:
        """A user writes in a group: the message exists in the chat and arrives as an update."""
        mid = next(self._message_ids[chat_id])
        msg = {"message_id": mid, "date": int(time.time() - age_seconds), "chat": self.chats[chat_id],
               "from": author, "text": text}
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        self.messages[(chat_id, mid)] = msg
        self.push_update(message=msg)
        return msg

    def edit(self, msg: dict[str, Any], text: str) -> dict[str, Any]:
        new = {**msg, "text": text, "edit_date": int(time.time())}
        self.messages[(msg["chat"]["id"], msg["message_id"])] = new
        self.push_update(edited_message=new)
        return new

    def click(self, u: dict[str, Any], data: str, message: dict[str, Any]) -> str:
        qid = f"cbq-{next(self._update_ids)}"
        self.push_update(callback_query={"id": qid, "from": u, "chat_instance": "ci-1", "data": data,
                                         "message": message})
        return qid

    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot posted in a chat (and that are still there), oldest first."""
        return [m for (c, _), m in sorted(self.messages.items()) if c == chat_id and m["from"]["id"] == BOT["id"]]

    # -- the Bot API ----------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return err(401, "Unauthorized")
        method = request.match_info["method"]
        params = dict(await request.post())
        self.rec.record(method, method, params)
        handler = getattr(self, f"m_{method}", None)
        if handler is None:
            return err(400, f"Bad Request: the fake does not implement {method}")
        return await handler(params, request)

    def _chat(self, p: dict[str, Any]) -> int | None:
        chat = int(p["chat_id"])
        return chat if chat in self.chats else None

    async def m_getMe(self, p, request):
        return ok(BOT)

    async def m_deleteWebhook(self, p, request):
        return ok(True)

    async def m_getUpdates(self, p, request):
        if self.drop_polls > 0:
            self.drop_polls -= 1
            request.transport.close()  # the connection drops mid-request, as on a flaky network
            return web.Response(status=502)
        offset, timeout = int(p.get("offset", 0)), float(p.get("timeout", 0))
        self.updates = [u for u in self.updates if u["update_id"] >= offset]  # offset acknowledges
        if not self.updates and timeout and not self._closing:
            self.new_update.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.new_update.wait(), timeout)
        return ok(self.updates)

    async def m_getChatMember(self, p, request):
        chat = self._chat(p)
        if chat is None:
            return err(400, "Bad Request: chat not found")
        uid = int(p["user_id"])
        if uid == BOT["id"]:
            return ok(self.member(chat, BOT))
        return ok(self.member(chat, user(uid, f"user{uid}")))

    async def m_getChatAdministrators(self, p, request):
        chat = self._chat(p)
        if chat is None:
            return err(400, "Bad Request: chat not found")
        admins = [self.member(chat, user(a, f"user{a}")) for a in sorted(self.admins[chat])]
        return ok([self.member(chat, BOT), *admins])

    async def m_deleteMessage(self, p, request):
        chat = self._chat(p)
        if chat is None:
            return err(400, "Bad Request: chat not found")
        key = (chat, int(p["message_id"]))
        if self._flood:
            return err(429, f"Too Many Requests: retry after {self._flood[0]}", retry_after=self._flood.pop(0))
        me = self.member(chat, BOT)
        if me["status"] != "administrator" or not me.get("can_delete_messages"):
            return err(400, "Bad Request: message can't be deleted")
        if key not in self.messages:
            return err(400, "Bad Request: message to delete not found")
        if key in self.too_old:
            return err(400, "Bad Request: message can't be deleted for everyone")
        del self.messages[key]
        self.deleted.append(key)
        return ok(True)

    async def m_sendMessage(self, p, request):
        chat = self._chat(p)
        if chat is None:
            return err(400, "Bad Request: chat not found")
        msg = {"message_id": next(self._message_ids[chat]), "date": int(time.time()), "chat": self.chats[chat],
               "from": BOT, "text": p["text"]}
        if "reply_markup" in p:
            msg["reply_markup"] = json.loads(p["reply_markup"])
        self.messages[(chat, msg["message_id"])] = msg
        return ok(msg)

    async def m_editMessageText(self, p, request):
        chat = self._chat(p)
        key = (chat, int(p.get("message_id", 0)))
        if chat is None or key not in self.messages:
            return err(400, "Bad Request: message to edit not found")
        old = self.messages[key]
        markup = json.loads(p["reply_markup"]) if "reply_markup" in p else None
        if old["text"] == p["text"] and old.get("reply_markup") == markup:
            return err(400, "Bad Request: message is not modified: specified new message content and reply "
                            "markup are exactly the same as a current content and reply markup of the message")
        new = {**old, "text": p["text"], "edit_date": int(time.time())}
        new.pop("reply_markup", None)
        if markup is not None:
            new["reply_markup"] = markup
        self.messages[key] = new
        return ok(new)

    async def m_answerCallbackQuery(self, p, request):
        return ok(True)
