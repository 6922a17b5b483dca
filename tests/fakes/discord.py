"""A fake Discord: the REST API and the gateway, enough for discord.py 2.7 to log in, receive
guild messages and button clicks, and moderate (see offline-clients.md, section 3).

One guild with three text channels (#general and #offtopic screened, #review for moderators),
a "moderator" role and the bot's member with a role whose permissions the test chooses. Every
REST call is recorded as (method, path without /api/v10, JSON body); the gateway's IDENTIFY as
("GATEWAY", "IDENTIFY", d). An endpoint the fake does not serve answers 400 and is kept in
`unhandled`, so a test fails loudly instead of the client guessing. JSON answers carry exactly
`Content-Type: application/json` (discord.py compares the header as a string).
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timezone
from typing import Any

from aiohttp import WSMsgType, web

from . import Recorder, start_fake

GUILD = 100
GENERAL, OFFTOPIC, REVIEW = 200, 201, 300
EVERYONE, MODERATOR_ROLE, BOT_ROLE = GUILD, 500, 501
BOT = APP = 1000
OWNER, ALICE, MIRA, BOB = 1, 42, 43, 44

# Permission bits (Discord's documented values)
VIEW_CHANNEL, SEND_MESSAGES, MANAGE_MESSAGES, EMBED_LINKS = 1 << 10, 1 << 11, 1 << 13, 1 << 14
READ_MESSAGE_HISTORY, MANAGE_WEBHOOKS = 1 << 16, 1 << 29
MESSAGE_CONTENT_INTENT = 1 << 15
BOT_PERMISSIONS = MANAGE_MESSAGES | EMBED_LINKS | MANAGE_WEBHOOKS | SEND_MESSAGES
EVERYONE_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY

USERS = {
    OWNER: ("owner", "Owner"),
    ALICE: ("alice", "Alice"),
    MIRA: ("mira", "Mira"),
    BOB: ("bob", "Bob"),
}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def user(uid: int) -> dict[str, Any]:
    if uid == BOT:
        return {"id": str(BOT), "username": "pharmamod", "discriminator": "0", "global_name": None,
                "avatar": None, "bot": True, "flags": 0, "mfa_enabled": True, "verified": True}
    username, name = USERS[uid]
    return {"id": str(uid), "username": username, "discriminator": "0", "global_name": name,
            "avatar": "a1b2c3" if uid == ALICE else None, "bot": False, "public_flags": 0}


def member(uid: int, roles: tuple[int, ...] = ()) -> dict[str, Any]:
    return {"user": user(uid), "roles": [str(r) for r in roles], "joined_at": "2025-01-01T00:00:00+00:00",
            "nick": None, "deaf": False, "mute": False, "flags": 0}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


def _error(status: int, message: str, code: int = 0) -> web.Response:
    return _json({"message": message, "code": code}, status)


class FakeDiscord:
    def __init__(self, token: str = "fake-discord-token", *, bot_permissions: int = BOT_PERMISSIONS,
                 dm_closed: bool = False, message_content_enabled: bool = True) -> None:
        self.token = token
        self.bot_permissions = bot_permissions
        self.dm_closed = dm_closed
        self.message_content_enabled = message_content_enabled  # the privileged intent, in the developer portal
        self.rec = Recorder()
        self.unhandled: list[str] = []
        self.delete_plan: list[int] = []  # statuses for the next DELETEs (429 once, 404, 403); then 204
        self.messages: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.ids = itertools.count(1_300_000_000_000_000_000)
        self.ws: web.WebSocketResponse | None = None
        self.seq = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/gw/", self.gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self.rest)
        self.app = app
        # (method, path pattern, handler, needs the bot token)
        self.routes = [
            ("GET", r"/users/@me", self.get_me, True),
            ("GET", r"/oauth2/applications/@me", self.get_application, True),
            ("GET", r"/users/(\d+)", self.get_user, True),
            ("POST", r"/users/@me/channels", self.open_dm, True),
            ("GET", r"/channels/(\d+)", self.get_channel, True),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self.get_message, True),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self.delete_message, True),
            ("POST", r"/channels/(\d+)/messages", self.create_message, True),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self.edit_message, True),
            ("GET", r"/channels/(\d+)/webhooks", self.list_webhooks, True),
            ("POST", r"/channels/(\d+)/webhooks", self.create_webhook, True),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self.execute_webhook, False),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self.interaction_callback, False),
        ]

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        self._runner, self.port = await start_fake(self.app)
        return self

    async def stop(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gw/"

    # -- the guild -------------------------------------------------------------------------------

    def channel(self, cid: int) -> dict[str, Any]:
        names = {GENERAL: "general", OFFTOPIC: "offtopic", REVIEW: "review"}
        return {"id": str(cid), "type": 0, "guild_id": str(GUILD), "name": names[cid], "position": cid - GENERAL,
                "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0}

    def guild(self) -> dict[str, Any]:
        def role(rid, name, perms, position):
            return {"id": str(rid), "name": name, "permissions": str(perms), "position": position, "color": 0,
                    "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        return {
            "id": str(GUILD), "name": "T2D support", "owner_id": str(OWNER), "member_count": 4, "large": False,
            "unavailable": False, "features": [], "emojis": [], "stickers": [], "icon": None,
            "channels": [{k: v for k, v in self.channel(c).items() if k != "guild_id"}
                         for c in (GENERAL, OFFTOPIC, REVIEW)],
            "roles": [role(EVERYONE, "@everyone", EVERYONE_PERMISSIONS, 0), role(MODERATOR_ROLE, "moderator", 0, 1),
                      role(BOT_ROLE, "pharmamod", self.bot_permissions, 2)],
            "members": [member(BOT, (BOT_ROLE,))], "threads": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [], "voice_states": [], "presences": [],
        }

    # -- REST ------------------------------------------------------------------------------------

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == "application/json" else raw.decode() or None
        for method, pattern, handler, auth in self.routes:
            m = re.fullmatch(pattern, path)
            if m and method == request.method:
                if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                    self.rec.record(request.method, path, body)
                    return _error(401, "401: Unauthorized")
                self.rec.record(request.method, path, body)
                return await handler(request, body, *m.groups())
        self.unhandled.append(f"{request.method} {path}")
        self.rec.record(request.method, path, body)
        return _error(400, f"the fake Discord does not serve {request.method} {path}")

    async def get_me(self, request, body):
        return _json(user(BOT))

    async def get_application(self, request, body):
        return _json({"id": str(APP), "name": "pharmamod", "description": "", "icon": None, "bot_public": False,
                      "bot_require_code_grant": False, "owner": user(OWNER), "verify_key": "00" * 32, "flags": 0})

    async def get_user(self, request, body, uid):
        return _json(user(int(uid))) if int(uid) in USERS else _error(404, "Unknown User", 10013)

    async def get_channel(self, request, body, cid):
        if int(cid) in (GENERAL, OFFTOPIC, REVIEW):
            return _json(self.channel(int(cid)))
        return _error(404, "Unknown Channel", 10003)

    async def get_message(self, request, body, cid, mid):
        msg = self.messages.get(int(mid))
        return _json(msg) if msg else _error(404, "Unknown Message", 10008)

    async def delete_message(self, request, body, cid, mid):
        status = self.delete_plan.pop(0) if self.delete_plan else 204
        if status == 429:
            return _json({"message": "You are being rate limited.", "retry_after": 0.05, "global": False}, 429,
                         {"Via": "1.1 google", "Retry-After": "1"})
        if status == 404:
            return _error(404, "Unknown Message", 10008)
        if status == 403:
            return _error(403, "Missing Permissions", 50013)
        self.messages.pop(int(mid), None)
        return web.Response(status=204)

    def _message(self, cid: int, author: dict[str, Any], body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        mid = next(self.ids)
        msg = {"id": str(mid), "channel_id": str(cid), "author": author, "content": body.get("content") or "",
               "timestamp": now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
               "mentions": [], "mention_roles": [], "attachments": [], "embeds": body.get("embeds") or [],
               "components": body.get("components") or [], "pinned": False, "type": 0,
               "flags": body.get("flags", 0), **extra}
        if cid in (GENERAL, OFFTOPIC, REVIEW):
            msg["guild_id"] = str(GUILD)
        if body.get("nonce") is not None:
            msg["nonce"] = body["nonce"]
        self.messages[mid] = msg
        return msg

    async def create_message(self, request, body, cid):
        cid = int(cid)
        if cid >= 700_000 and cid < 800_000 and self.dm_closed:
            return _error(403, "Cannot send messages to this user", 50007)
        return _json(self._message(cid, user(BOT), body))

    async def edit_message(self, request, body, cid, mid):
        msg = self.messages.get(int(mid))
        if msg is None:
            return _error(404, "Unknown Message", 10008)
        for k in ("content", "embeds", "components"):
            if k in body:
                msg[k] = body[k]
        msg["edited_timestamp"] = now_iso()
        return _json(msg)

    async def open_dm(self, request, body):
        uid = int(body["recipient_id"])
        return _json({"id": str(700_000 + uid), "type": 1, "recipients": [user(uid)], "last_message_id": None})

    async def list_webhooks(self, request, body, cid):
        return _json([w for w in self.webhooks.values() if w["channel_id"] == cid])

    async def create_webhook(self, request, body, cid):
        if not self.bot_permissions & MANAGE_WEBHOOKS:
            return _error(403, "Missing Permissions", 50013)
        wid = next(self.ids)
        hook = {"id": str(wid), "type": 1, "token": f"whtok{wid}", "channel_id": cid, "guild_id": str(GUILD),
                "name": body["name"], "avatar": None, "application_id": str(APP), "user": user(BOT)}
        self.webhooks[wid] = hook
        return _json(hook)

    async def execute_webhook(self, request, body, wid, token):
        if int(wid) == APP:  # an interaction follow-up
            return _json(self._message(REVIEW, user(BOT), body))
        hook = self.webhooks.get(int(wid))
        if hook is None or hook["token"] != token:
            return _error(404, "Unknown Webhook", 10015)
        author = {"id": wid, "username": body.get("username") or hook["name"], "avatar": None, "bot": True,
                  "discriminator": "0000"}
        return _json(self._message(int(hook["channel_id"]), author, body, webhook_id=wid))

    async def interaction_callback(self, request, body, iid, token):
        return _json({"interaction": {"id": iid, "type": 3,
                                      "response_message_ephemeral": bool((body.get("data") or {}).get("flags", 0)
                                                                         & 64)}})

    # -- gateway ---------------------------------------------------------------------------------

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 45000}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            d = json.loads(msg.data)
            if d["op"] == 1:
                await ws.send_json({"op": 11})
            elif d["op"] == 2:
                if d["d"]["token"] != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                self.rec.record("GATEWAY", "IDENTIFY", {"intents": d["d"]["intents"]})
                if d["d"]["intents"] & MESSAGE_CONTENT_INTENT and not self.message_content_enabled:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                await self.dispatch("READY", {
                    "v": 10, "user": user(BOT), "session_id": "s1", "resume_gateway_url": self.gateway_url,
                    "guilds": [{"id": str(GUILD), "unavailable": True}], "application": {"id": str(APP), "flags": 0},
                })
                await self.dispatch("GUILD_CREATE", self.guild())
            elif d["op"] == 6:  # RESUME after a dropped connection: replay nothing, carry on
                self.rec.record("GATEWAY", "RESUME", {"session_id": d["d"]["session_id"], "seq": d["d"]["seq"]})
                await self.dispatch("RESUMED", {})
        return ws

    async def drop(self) -> None:
        """The connection breaks (Discord closes it with 4000, "unknown error": the client resumes)."""
        await self.ws.close(code=4000, message=b"Unknown error.")

    async def dispatch(self, event: str, d: dict[str, Any]) -> None:
        assert self.ws is not None and not self.ws.closed, "no client connected to the fake gateway"
        self.seq += 1
        await self.ws.send_json({"op": 0, "t": event, "s": self.seq, "d": d})

    # -- what people do --------------------------------------------------------------------------

    async def say(self, content: str, *, author: int = ALICE, channel: int = GENERAL, roles: tuple[int, ...] = (),
                  reply_to: int | None = None, dispatch: bool = True) -> int:
        """Someone posts in the guild: MESSAGE_CREATE (a reply carries the message it answers).
        `dispatch=False`: it was posted while the bot was away (the fake only keeps it)."""
        extra: dict[str, Any] = {"member": {k: v for k, v in member(author, roles).items() if k != "user"}}
        if reply_to is not None:
            extra.update(type=19, message_reference={"type": 0, "message_id": str(reply_to),
                                                     "channel_id": str(channel), "guild_id": str(GUILD)},
                         referenced_message=self.messages.get(reply_to))
        msg = self._message(channel, user(author), {"content": content}, **extra)
        if dispatch:
            await self.dispatch("MESSAGE_CREATE", msg)
        return int(msg["id"])

    async def edit(self, mid: int, content: str) -> None:
        msg = self.messages[mid]
        msg.update(content=content, edited_timestamp=now_iso())
        await self.dispatch("MESSAGE_UPDATE", msg)

    def _interaction(self, kind: int, data: dict[str, Any], message_id: int, uid: int,
                     roles: tuple[int, ...]) -> tuple[int, dict[str, Any]]:
        iid = next(self.ids)
        msg = self.messages[message_id]
        return iid, {
            "id": str(iid), "application_id": str(APP), "type": kind, "token": f"itok{iid}", "version": 1,
            "guild_id": str(GUILD), "channel_id": msg["channel_id"],
            "channel": {"id": msg["channel_id"], "type": 0, "guild_id": str(GUILD), "name": "review"},
            "member": {**member(uid, roles), "permissions": str(EVERYONE_PERMISSIONS)}, "data": data,
            "message": msg, "locale": "en-US", "guild_locale": "en-US", "app_permissions": str(self.bot_permissions),
            "entitlements": [], "authorizing_integration_owners": {"0": str(GUILD)}, "context": 0,
            "attachment_size_limit": 8 * 1024 * 1024,
        }

    async def click(self, message_id: int, custom_id: str, *, by: int, roles: tuple[int, ...] = ()) -> int:
        """A member clicks a button of a message the bot posted: INTERACTION_CREATE type 3."""
        iid, d = self._interaction(3, {"custom_id": custom_id, "component_type": 2}, message_id, by, roles)
        await self.dispatch("INTERACTION_CREATE", d)
        return iid

    async def submit_modal(self, message_id: int, modal: dict[str, Any], values: list[str], *, by: int,
                           roles: tuple[int, ...] = ()) -> int:
        """The clicker fills in the modal the bot opened (`modal` = its callback `data`): type 5."""
        inputs = [c for row in modal["components"] for c in row.get("components", [row])]
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": c["custom_id"], "value": v}]}
                for c, v in zip(inputs, values)]
        iid, d = self._interaction(5, {"custom_id": modal["custom_id"], "components": rows}, message_id, by, roles)
        await self.dispatch("INTERACTION_CREATE", d)
        return iid

    # -- what the bot did ------------------------------------------------------------------------

    def callbacks(self) -> list[dict[str, Any]]:
        return self.rec.called("POST", "/callback")

    def posted(self, channel: int) -> list[dict[str, Any]]:
        return self.rec.called("POST", f"/channels/{channel}/messages")

    def last_message(self, channel: int) -> dict[str, Any]:
        """The newest message the fake holds in a channel (with the id it gave it)."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel)][-1]
