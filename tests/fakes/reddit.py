"""A fake Reddit for adapter tests: the OAuth and API endpoints asyncpraw uses, on real HTTP.

asyncpraw is pointed at it with `oauth_url`/`reddit_url` (see shared docs, offline-clients.md
section 2). It serves the script-app token, the comment and new-post listings of one or more
subreddits ("a+b") newest first and honouring `before`, `api/info`, remove (with the removal
reason's mod note), approve, reply, removal messages, modmail to a subreddit, the moderator list
and the mod log. Like Reddit, the bot's own remove and approve appear in the mod log, and its
replies in the comment listing. Every call is recorded; an endpoint it does not know is answered
with a loud 400 and kept in `unknown`, which tests assert is empty.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

from aiohttp import web

from . import Recorder, start_fake

TOKEN = "fake-reddit-access-token"


def _listing(children: list[dict], kind: str = "Listing") -> dict:
    return {"kind": kind, "data": {"children": children, "after": None, "before": None, "dist": len(children)}}


def _newer_than(items: list[dict], before: str | None, key: str, limit: int) -> list[dict]:
    """Reddit's `before`: the page of items just newer than the named one (the `limit` closest to
    it, newest first), so a reader that asks again with the newest it got pages forward and
    misses nothing; none if the item is unknown. Without `before`: the newest `limit`."""
    newest_first = list(reversed(items))
    if not before:
        return newest_first[:limit]
    ids = [i["data"][key] for i in newest_first]
    if before not in ids:
        return []
    newer = newest_first[:ids.index(before)]
    return newer[-limit:]


class FakeReddit:
    def __init__(self, *, bot: str = "pharmamod-bot", client_id: str = "cid", client_secret: str = "csecret",
                 password: str = "pw", moderators: dict[str, list[dict]] | None = None) -> None:
        self.bot, self.client_id, self.client_secret, self.password = bot, client_id, client_secret, password
        self.rec = Recorder()
        self.comments: list[dict] = []  # oldest first; served newest first
        self.submissions: list[dict] = []
        self.log: list[dict] = []
        self.items: dict[str, dict] = {}  # fullname -> the thing's data
        # subreddit (lower case) -> moderator entries; the bot moderates with all rights unless told otherwise
        self.moderators = moderators
        self.fail: list[tuple[str, str, int, dict[str, str]]] = []  # (method, path part, status, headers), once each
        self.unknown: list[str] = []
        self._ids = itertools.count(1)
        self._last = 0.0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> "FakeReddit":
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.dispatch)
        self.runner, port = await start_fake(app)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    # -- what a test puts on the platform -----------------------------------------------------

    def _now(self) -> float:
        """Real time, strictly increasing: the mod log is compared with the cases' times."""
        self._last = max(time.time(), self._last + 0.001)
        return self._last

    def add_submission(self, sub: str, title: str, selftext: str = "", author: str = "poster",
                       id: str | None = None) -> str:
        id = id or f"p{next(self._ids)}"
        data = {"id": id, "name": f"t3_{id}", "title": title, "selftext": selftext, "is_self": True,
                "url": f"https://www.reddit.com/r/{sub}/comments/{id}/", "author": author, "subreddit": sub,
                "created_utc": self._now(), "permalink": f"/r/{sub}/comments/{id}/x/", "edited": False,
                "num_comments": 0, "removed": False, "approved": False}
        self.items[data["name"]] = data
        self.submissions.append({"kind": "t3", "data": data})
        return data["name"]

    def add_comment(self, sub: str, body: str, author: str = "commenter", parent: str | None = None,
                    id: str | None = None) -> str:
        """A comment under `parent` (a post or comment fullname); under a fresh post when None."""
        id = id or f"c{next(self._ids)}"
        parent = parent or self.add_submission(sub, "a post")
        link = parent if parent.startswith("t3_") else self.items[parent]["link_id"]
        data = {"id": id, "name": f"t1_{id}", "body": body, "author": author, "subreddit": sub,
                "link_id": link, "parent_id": parent, "created_utc": self._now(),
                "permalink": f"/r/{sub}/comments/{link[3:]}/x/{id}/", "edited": False,
                "removed": False, "approved": False}
        self.items[data["name"]] = data
        self.comments.append({"kind": "t1", "data": data})
        return data["name"]

    def edit(self, fullname: str, text: str) -> None:
        item = self.items[fullname]
        item["body" if fullname.startswith("t1_") else "selftext"] = text
        item["edited"] = self._now()

    def mod_action(self, mod: str, action: str, target: str, details: str = "") -> str:
        """A moderator acts in Reddit's own modqueue; it shows in the mod log."""
        item = self.items.get(target, {})
        entry = {"id": f"ModAction_{next(self._ids):08d}-0000-0000-0000-000000000000", "action": action,
                 "mod": mod, "mod_id36": mod, "target_fullname": target, "target_author": item.get("author"),
                 "target_permalink": item.get("permalink"), "created_utc": self._now(),
                 "details": details, "description": None, "subreddit": item.get("subreddit", ""),
                 "sr_id36": "sr1"}
        if action.startswith("approve"):
            item.update(removed=False, approved=True)
        elif action.startswith(("remove", "spam")):
            item.update(removed=True, approved=False)
        self.log.append({"kind": "modaction", "data": entry})
        return entry["id"]

    def fail_once(self, method: str, path_part: str, status: int = 429, **headers: str) -> None:
        self.fail.append((method, path_part, status, headers))

    # -- the wire -------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"].strip("/")
        params = dict(request.query)
        form = dict(await request.post()) if request.method == "POST" else {}
        self.rec.record(request.method, path, {**params, **form})
        if path == "/api/v1/access_token":
            return self.access_token(request, form)
        if request.headers.get("Authorization") != f"bearer {TOKEN}":
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        for i, (method, part, status, headers) in enumerate(self.fail):
            if method == request.method and part in path:
                del self.fail[i]
                return web.json_response({"message": "Too Many Requests", "error": status}, status=status,
                                         headers=headers)
        parts = path.strip("/").split("/")
        if parts[0] == "r" and len(parts) >= 3:
            subs = {s.lower() for s in parts[1].split("+")}
            rest = "/".join(parts[2:])
            handler = {"comments": self.r_comments, "new": self.r_new, "about/log": self.r_log,
                       "about/moderators": self.r_moderators}.get(rest)
            if handler and request.method == "GET":
                return await handler(subs, params)
        handler = {("GET", "/api/info"): self.api_info, ("POST", "/api/remove"): self.api_remove,
                   ("POST", "/api/approve"): self.api_approve, ("POST", "/api/comment"): self.api_comment,
                   ("POST", "/api/compose"): self.api_compose,
                   ("POST", "/api/v1/modactions/removal_reasons"): self.api_ok,
                   ("POST", "/api/v1/modactions/removal_comment_message"): self.api_ok,
                   ("POST", "/api/v1/modactions/removal_link_message"): self.api_ok,
                   }.get((request.method, path))
        if handler:
            return await handler({**params, **form})
        self.unknown.append(f"{request.method} {path}")
        return web.json_response({"message": f"fake Reddit does not implement {request.method} {path}",
                                  "error": 400}, status=400)

    def access_token(self, request: web.Request, form: dict) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if form.get("grant_type") != "password" or form.get("username") != self.bot \
                or form.get("password") != self.password:
            return web.json_response({"error": "invalid_grant"})  # Reddit answers 200 with an error key
        return web.json_response({"access_token": TOKEN, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    @staticmethod
    def _in(subs: set[str], children: list[dict]) -> list[dict]:
        return [c for c in children if c["data"]["subreddit"].lower() in subs]

    async def r_comments(self, subs: set[str], p: dict) -> web.Response:
        items = _newer_than(self._in(subs, self.comments), p.get("before"), "name", int(p.get("limit", 25)))
        return web.json_response(_listing(items))

    async def r_new(self, subs: set[str], p: dict) -> web.Response:
        items = _newer_than(self._in(subs, self.submissions), p.get("before"), "name", int(p.get("limit", 25)))
        return web.json_response(_listing(items))

    async def r_log(self, subs: set[str], p: dict) -> web.Response:
        items = _newer_than(self._in(subs, self.log), p.get("before"), "id", int(p.get("limit", 25)))
        return web.json_response(_listing(items))

    async def r_moderators(self, subs: set[str], p: dict) -> web.Response:
        (sub,) = subs
        mods = (self.moderators or {}).get(sub)
        if mods is None:
            mods = [{"name": self.bot, "mod_permissions": ["all"]}]
        user = p.get("user")
        children = [{"date": 1.0e9, "id": f"t2_{m['name']}", "rel_id": "rb_1", **m}
                    for m in mods if user is None or m["name"].lower() == user.lower()]
        return web.json_response({"kind": "UserList", "data": {"children": children}})

    async def api_info(self, p: dict) -> web.Response:
        found = [self.items[f] for f in p.get("id", "").split(",") if f in self.items]
        return web.json_response(_listing([{"kind": d["name"][:2], "data": d} for d in found]))

    async def api_remove(self, p: dict) -> web.Response:
        kind = "comment" if p["id"].startswith("t1_") else "link"
        self.mod_action(self.bot, f"remove{kind}", p["id"], details="remove")
        return web.json_response({})

    async def api_approve(self, p: dict) -> web.Response:
        kind = "comment" if p["id"].startswith("t1_") else "link"
        self.mod_action(self.bot, f"approve{kind}", p["id"])
        return web.json_response({})

    async def api_comment(self, p: dict) -> web.Response:
        parent = self.items[p["thing_id"]]
        name = self.add_comment(parent["subreddit"], p["text"], author=self.bot, parent=p["thing_id"])
        return web.json_response({"json": {"errors": [], "data": {"things": [{"kind": "t1",
                                                                               "data": self.items[name]}]}}})

    async def api_compose(self, p: dict) -> web.Response:
        return web.json_response({"json": {"errors": []}})

    async def api_ok(self, p: dict) -> web.Response:
        return web.json_response({})

    # -- what a test reads back -----------------------------------------------------------------

    def form_json(self, path_part: str) -> list[dict[str, Any]]:
        """The decoded `json` form field of each POST to a modactions endpoint."""
        return [json.loads(b["json"]) for b in self.rec.called("POST", path_part)]
