"""The Reddit adapter: subreddits screened as they are written, holds in Reddit's own modqueue.

Reddit is the one platform with a true hold (see docs/domain.md section 3): `hold` removes the
comment or post (`mod.remove` with a mod note naming the case and the rules), so it disappears
from view and waits in the modqueue; `restore` approves it, which brings back the original.

Input. Three listings of the configured subreddits (one request each, all subreddits at once as
"a+b") are polled every `poll_seconds` with asyncpraw's streams: new comments, new posts and
the mod log. The streams run with `pause_after=-1`, so asyncpraw never sleeps by itself (its own
backoff reaches 16 s); the adapter decides the pace. A comment carries the text it answers
(`ReplyContext`): its parent comment, or the post for a top-level comment, fetched with
`api/info` when the adapter has not seen it and kept in a bounded cache, so "it gives me
headaches" under a post about a medicine is understood.

Start. With `skip_existing = false` (the default) the newest 100 comments and posts are read
again at start: the store knows every message it has seen, so nothing is acted on twice, and
what was written while the bot was down is screened. The mod log is read the same way.

Edits. Reddit has no stream of edits. Every `edit_check_seconds` the adapter re-reads the
latest `edit_check_items` comments and posts it has seen (`api/info`, 100 per request) and
submits the ones whose text changed; the core screens them again as edits. An edit to an older
item, or made after the item left that window, is not seen. Text replaced by "[deleted]" or
"[removed]" is not an edit and keeps the stored original.

Human decisions. A moderator who approves or removes a held item in Reddit's own modqueue shows
in the mod log; the adapter records it as that moderator's decision (`approve` ... "compliant",
`reject`), so the audit log is complete whichever tool was used. The bot's own actions and
those of AutoModerator and Reddit's admins are not decisions; log entries older than the
case's current hold (a decision already recorded, a restart reading the log again) are skipped.

Review rooms. Reddit has no review room for pharmamod's case cards and buttons; its modqueue
is where the held items wait, and decisions taken there are recorded (above). Set the
community's `review_room` to a Discord or Telegram room (cross-platform review): a `reddit:`
room stops the start with a message that says so, and a review post, update or reminder sent
here anyway fails for good with the same message.

Errors. Platform exceptions are translated into `ActionError` with one table (`action_error`):
rate limits are retried after the time Reddit asks for, missing rights or a vanished item are
permanent, connection and server errors are retried. Listing errors never end the run: the
stream is opened again with a growing pause (up to `reconnect_max_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import asyncpraw
import asyncprawcore
from asyncpraw.exceptions import RedditAPIException
from asyncpraw.models import Comment, Submission
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.cases import TRANSITIONS, Actor, Refused
from bot.config import ConfigError, secret
from bot.models import Author, Message, ReplyContext
from bot.outbox import Delivery
from bot.store import parse_time

from .base import ActionError, Adapter, AdapterError, Core

LISTING_LIMIT = 100  # items in one listing page, the most a stream's poll returns

log = logging.getLogger("pharmamod.reddit")

# Mod log actions that are a moderator's decision on an item: action -> (decision, reason code).
DECISIONS: dict[str, tuple[str, str]] = {
    "approvecomment": ("approve", "compliant"),
    "approvelink": ("approve", "compliant"),
    "removecomment": ("reject", "other"),
    "removelink": ("reject", "other"),
    "spamcomment": ("reject", "spam"),
    "spamlink": ("reject", "spam"),
}
# Accounts that act in the mod log but are not a human moderator deciding a case.
NOT_HUMAN = {"automoderator", "reddit", "anti-evil operations"}
GONE = ("[deleted]", "[removed]")
MOD_NOTE_MAX = 100  # Reddit's limit for a removal reason's mod note
RETRY_LATER = ("RATELIMIT", "INVALID_ID")  # INVALID_ID: a removal message before the removal landed
_RATELIMIT = re.compile(r"(\d+) (milliseconds?|seconds?|minutes?)")
NO_REVIEW_ROOM = ("Reddit has no review room ({room}): set review_room to a Discord or Telegram room; held items "
                  "also wait in Reddit's modqueue, where an approve or remove is recorded as a decision")
# Reddit down, slow or busy: worth trying again later.
TRANSIENT = (asyncprawcore.RequestException, asyncprawcore.ServerError, asyncprawcore.InvalidToken,
             asyncprawcore.TooManyRequests, aiohttp.ClientError, asyncio.TimeoutError, OSError)
_SUBREDDIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{1,20}")


class RedditSettings(BaseModel):
    """`[adapters.reddit]`: the secrets are named, never written here."""

    model_config = ConfigDict(extra="forbid")

    client_id_env: str = "REDDIT_CLIENT_ID"
    client_secret_env: str = "REDDIT_CLIENT_SECRET"
    username_env: str = "REDDIT_USERNAME"
    password_env: str = "REDDIT_PASSWORD"
    user_agent: str = ""  # default: "python:pharmamod:0.1 (by /u/<bot account>)", as Reddit asks
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"
    communities: dict[str, str] = Field(min_length=1)  # community name -> subreddit name
    poll_seconds: float = Field(5.0, gt=0)  # pause between two polls of each listing
    skip_existing: bool = False  # true: ignore what was posted before the bot started
    mod_log: bool = True  # record human approvals and removals made in Reddit's modqueue
    edit_check_seconds: float = Field(120.0, ge=0)  # 0: edits are not looked for
    edit_check_items: int = Field(100, ge=1, le=1000)
    notify: Literal["private", "public", "reply"] = "private"  # removal message by modmail, sticky, plain reply
    notice_title: str = "Held for review"  # the subject of a private removal message
    context_cache: int = Field(2048, ge=16)  # texts of parents kept for reply context
    reconnect_seconds: float = Field(1.0, gt=0)  # first pause after a listing error, doubled up to the max
    reconnect_max_seconds: float = Field(300.0, gt=0)
    timeout: int = Field(16, ge=1)  # seconds per HTTP request

    @field_validator("communities")
    @classmethod
    def _subreddits(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for community, sub in v.items():
            name = sub.strip().removeprefix("/").removeprefix("r/")
            if not _SUBREDDIT.fullmatch(name):
                raise ValueError(f"{sub!r} (community {community!r}) is not a subreddit name; write it as \"pharma\"")
            out[community] = name
        if len({s.lower() for s in out.values()}) != len(out):
            raise ValueError("two communities map to the same subreddit")
        return out

    @field_validator("oauth_url", "reddit_url")
    @classmethod
    def _https(cls, v: str) -> str:
        parts = urlsplit(v)
        local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not (parts.scheme == "https" and parts.hostname) and not local:
            raise ValueError("must be https:// (plain http only to 127.0.0.1/localhost, for testing)")
        return v.rstrip("/")


def _settings(name: str, settings: Any) -> RedditSettings:
    if isinstance(settings, RedditSettings):
        return settings
    try:
        return RedditSettings.model_validate(settings or {})
    except ValidationError as exc:
        lines = [f"[adapters.{name}.{'.'.join(str(p) for p in e['loc'])}] {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def action_error(exc: BaseException) -> ActionError:
    """The one table from Reddit's exceptions to the outbox's: wait, give up, or try again."""
    if isinstance(exc, ActionError):
        return exc
    if isinstance(exc, asyncprawcore.TooManyRequests):
        try:
            after = float(exc.retry_after) if exc.retry_after else None
        except ValueError:
            after = None
        return ActionError("Reddit rate limit (429)", retry_after=after)
    if isinstance(exc, RedditAPIException):
        for item in exc.items:
            if item.error_type == "RATELIMIT":
                m = _RATELIMIT.search(item.message or "")
                after = None
                if m:
                    after = int(m[1]) * (60 if m[2].startswith("minute") else 1)
                    after = 1.0 if m[2].startswith("millisecond") else float(after)
                return ActionError(f"Reddit rate limit: {item.message}", retry_after=after)
        permanent = not any(i.error_type in RETRY_LATER for i in exc.items)
        return ActionError(f"Reddit refused: {exc}", permanent=permanent)
    if isinstance(exc, (asyncprawcore.Forbidden, asyncprawcore.InsufficientScope)):
        return ActionError("Reddit answered 403: the bot account lacks the moderator right for this "
                           "(it needs the posts permission)", permanent=True)
    if isinstance(exc, (asyncprawcore.NotFound, asyncprawcore.Redirect, asyncprawcore.UnavailableForLegalReasons)):
        return ActionError(f"the item is gone from Reddit ({type(exc).__name__})", permanent=True)
    if isinstance(exc, (asyncprawcore.BadRequest, asyncprawcore.TooLarge, asyncprawcore.OAuthException)):
        return ActionError(f"Reddit refused the request ({type(exc).__name__}: {exc})", permanent=True)
    if isinstance(exc, TRANSIENT):
        return ActionError(f"Reddit not reachable or failing ({type(exc).__name__}: {exc})")
    return ActionError(f"{type(exc).__name__}: {exc}")


def _text(item: Comment | Submission) -> str:
    if isinstance(item, Comment):
        return item.body or ""
    body = item.selftext if item.is_self else item.url
    return f"{item.title}\n\n{body}".strip() if body else item.title


def _fullname_kind(fullname: str) -> str:
    return {"t1": "comment", "t3": "post"}.get(fullname[:2], "")


class _Bounded(OrderedDict):
    """A dict that forgets its oldest keys beyond `size`; reads refresh a key (LRU)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)

    def hit(self, key: str) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None


class RedditAdapter(Adapter):
    platform = "reddit"

    def __init__(self, name: str, settings: Any, base_dir: Any = None) -> None:
        super().__init__(name, _settings(name, settings), base_dir)
        s: RedditSettings = self.settings
        self.community_of = {sub.lower(): community for community, sub in s.communities.items()}
        self.subreddit_of = dict(s.communities)
        self.reddit: asyncpraw.Reddit | None = None
        self.core: Core | None = None
        self.username = ""
        self._stopping = asyncio.Event()
        self._closed = False
        self._seen = _Bounded(max(1000, s.edit_check_items))  # fullname -> text submitted
        self._context = _Bounded(s.context_cache)  # fullname -> text, for replies
        self._log_done = _Bounded(2000)  # mod log entry ids handled

    # -- start and stop ---------------------------------------------------------------------------

    def _credentials(self) -> dict[str, str]:
        s = self.settings
        out = {}
        for key, env in (("client_id", s.client_id_env), ("client_secret", s.client_secret_env),
                         ("username", s.username_env), ("password", s.password_env)):
            try:
                out[key] = secret(env)
            except ConfigError as exc:
                raise AdapterError(f"[adapters.{self.name}] {key}: {exc}") from None
        return out

    def _client(self, creds: dict[str, str]) -> asyncpraw.Reddit:
        s = self.settings
        agent = s.user_agent or f"python:pharmamod:0.1 (by /u/{creds['username']})"
        return asyncpraw.Reddit(
            client_id=creds["client_id"], client_secret=creds["client_secret"], username=creds["username"],
            password=creds["password"], user_agent=agent, oauth_url=s.oauth_url, reddit_url=s.reddit_url,
            short_url=s.reddit_url, check_for_updates=False, ratelimit_seconds=0, timeout=s.timeout)

    async def _check_rights(self) -> None:
        """The bot account must moderate each subreddit with the posts permission (remove, approve)."""
        for community, name in self.subreddit_of.items():
            sub = await self.reddit.subreddit(name)
            try:
                mods = await sub.moderator(redditor=self.username)
            except asyncprawcore.OAuthException as exc:
                raise AdapterError(
                    f"Reddit refused the login of u/{self.username} ({exc.error}): check "
                    f"{self.settings.username_env} and {self.settings.password_env}, and that the app is a "
                    "script app with this account as a developer") from None
            except asyncprawcore.ResponseException as exc:
                if isinstance(exc, (asyncprawcore.ServerError, asyncprawcore.TooManyRequests)):
                    raise
                status = exc.response.status
                if status == 401:
                    raise AdapterError(
                        f"Reddit refused the app credentials (401): check {self.settings.client_id_env} and "
                        f"{self.settings.client_secret_env} (the script app's id and secret)") from None
                raise AdapterError(
                    f"r/{name} (community {community!r}): Reddit answered {status} to the moderator list; "
                    f"the subreddit does not exist or u/{self.username} cannot see it") from None
            if not mods:
                raise AdapterError(
                    f"u/{self.username} is not a moderator of r/{name} (community {community!r}): invite it as a "
                    "moderator with the \"Manage Posts & Comments\" (posts) permission and accept the invitation")
            perms = set(getattr(mods[0], "mod_permissions", []) or [])
            if not perms & {"all", "posts"}:
                raise AdapterError(
                    f"u/{self.username} moderates r/{name} (community {community!r}) without the posts permission "
                    f"(has: {', '.join(sorted(perms)) or 'none'}); give it \"Manage Posts & Comments\" so it can "
                    "remove and approve")
            log.info("r/%s: u/%s moderates with %s", name, self.username, ", ".join(sorted(perms)))

    def _check_review_rooms(self) -> None:
        for room, names in self.core.review_rooms().items():
            if room.split(":", 1)[0] == self.platform:
                raise AdapterError(f"community {', '.join(names)}: " + NO_REVIEW_ROOM.format(room=room))

    async def _start_up(self) -> None:
        """Check rights; Reddit being down or slow at start is waited out, wrong settings are not."""
        failures = 0
        while True:
            try:
                return await self._check_rights()
            except TRANSIENT as exc:
                failures += 1
                delay = self._backoff(failures)
                log.warning("Reddit start-up check failed (%s); trying again in %.1f s", action_error(exc), delay)
                if await self._sleep(delay):
                    return

    async def start(self, core: Core) -> None:
        self.core = core
        self._check_review_rooms()
        creds = self._credentials()
        self.username = creds["username"]
        self.reddit = self._client(creds)
        del creds
        tasks: list[asyncio.Task] = []
        try:
            await self._start_up()
            if self._stopping.is_set():
                return
            s = self.settings
            multi = await self.reddit.subreddit("+".join(self.subreddit_of.values()))
            # Only the first opening skips what exists; opened again after an error, a stream reads
            # the newest items again and `_seen` drops what was handled.
            skip = {"comments": s.skip_existing, "posts": s.skip_existing}

            def comments() -> AsyncIterator:
                return multi.stream.comments(pause_after=-1, skip_existing=skip.pop("comments", False))

            def posts() -> AsyncIterator:
                return multi.stream.submissions(pause_after=-1, skip_existing=skip.pop("posts", False))

            tasks.append(asyncio.create_task(self._follow("comments", comments, self._on_item)))
            tasks.append(asyncio.create_task(self._follow("posts", posts, self._on_item)))
            if s.mod_log:
                tasks.append(asyncio.create_task(self._follow(
                    "mod log", lambda: multi.mod.stream.log(pause_after=-1), self._on_mod_action)))
            if s.edit_check_seconds:
                tasks.append(asyncio.create_task(self._edits()))
            log.info("reddit: following %s", ", ".join(f"r/{n}" for n in self.subreddit_of.values()))
            await self._stopping.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._closed = True
            await self.reddit.close()

    async def stop(self) -> None:
        self._stopping.set()

    def _backoff(self, failures: int) -> float:
        s = self.settings
        return min(s.reconnect_seconds * 2 ** min(failures - 1, 20), s.reconnect_max_seconds)

    async def _sleep(self, seconds: float) -> bool:
        """Wait, or less when stopping; True when the adapter is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        return self._stopping.is_set()

    async def _follow(self, what: str, open_stream: Callable[[], AsyncIterator],
                      handle: Callable[[Any], Awaitable[None]]) -> None:
        """Poll one listing for ever; an error opens the stream again after a growing pause.

        A stream opened again reads the newest 100 items again; what was handled is skipped
        (`_seen`, `_log_done`) and what was not (an item whose `submit` failed) is handled now."""
        failures = 0
        while not self._stopping.is_set():
            stream = open_stream()
            got = 0
            try:
                async for item in stream:
                    if item is None:  # one poll done
                        failures = 0
                        # A full page (Reddit's listing limit) means more may be waiting: poll again at once.
                        if got >= LISTING_LIMIT:
                            if self._stopping.is_set():
                                return
                        elif await self._sleep(self.settings.poll_seconds):
                            return
                        got = 0
                        continue
                    got += 1
                    await handle(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - never end the run over one bad poll
                failures += 1
                delay = self._backoff(failures)
                log.warning("reddit %s: %s; reading again in %.1f s", what, action_error(exc), delay)
                if await self._sleep(delay):
                    return
            finally:
                await stream.aclose()

    # -- comments and posts to the core --------------------------------------------------------------

    async def _context_of(self, fullname: str) -> str:
        text = self._context.hit(fullname)
        if text is not None:
            return text
        try:
            async for parent in self.reddit.info(fullnames=[fullname]):
                text = _text(parent)
        except Exception as exc:  # noqa: BLE001 - the message is screened without its context
            log.warning("reddit: could not read %s for reply context: %s", fullname, action_error(exc))
            return ""
        if text is not None:
            self._context.put(fullname, text)
        return text or ""

    async def message(self, item: Comment | Submission) -> Message | None:
        """The core's view of a comment or post; None for the bot's own and for unmapped subreddits."""
        sub = str(item.subreddit)
        community = self.community_of.get(sub.lower())
        author = str(item.author) if item.author is not None else ""
        text = _text(item)
        self._context.put(item.fullname, text)
        if community is None or author.lower() == self.username.lower():
            return None
        reply_to = None
        if isinstance(item, Comment):
            reply_to = ReplyContext(message_id=item.parent_id, text=await self._context_of(item.parent_id))
        return Message(
            platform=self.platform, message_id=item.fullname, community=community, channel=sub,
            author=Author(id=author or "[deleted]", display_name=author or "[deleted]"), text=text,
            created_at=datetime.fromtimestamp(item.created_utc, tz=timezone.utc),
            permalink=self.settings.reddit_url + item.permalink, reply_to=reply_to)

    async def _on_item(self, item: Comment | Submission) -> None:
        if item.fullname in self._seen:
            return
        msg = await self.message(item)
        if msg is not None:
            await self.core.submit(msg)
        self._seen.put(item.fullname, _text(item))

    async def _edits(self) -> None:
        """Re-read the latest items now and then: Reddit has no stream of edits."""
        failures = 0
        while not await self._sleep(self.settings.edit_check_seconds if not failures else self._backoff(failures)):
            try:
                await self.check_edits()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                failures += 1
                log.warning("reddit edit check: %s", action_error(exc))

    async def check_edits(self) -> int:
        recent = list(self._seen)[-self.settings.edit_check_items:]
        changed = 0
        async for item in self.reddit.info(fullnames=recent):
            text = _text(item)
            before = self._seen.get(item.fullname)
            if before is None or text == before or item.author is None or text.strip() in GONE:
                continue
            msg = await self.message(item)
            if msg is not None:
                await self.core.submit(msg)
                changed += 1
            self._seen[item.fullname] = text
        return changed

    # -- the mod log to decisions -----------------------------------------------------------------

    async def _on_mod_action(self, entry: Any) -> None:
        if entry.id in self._log_done:
            return
        await self.record_decision(entry)
        self._log_done.put(entry.id, True)

    async def record_decision(self, entry: Any) -> str | None:
        """A human moderator's approve or remove in Reddit's modqueue, as a decision on the case."""
        decided = DECISIONS.get(entry.action)
        mod = str(entry.mod)
        if decided is None or mod.lower() in NOT_HUMAN or mod.lower() == self.username.lower():
            return None
        target = getattr(entry, "target_fullname", None) or ""
        case_id = await self.core.case_of(self.platform, target)
        if case_id is None:
            return None
        card = await self.core.card(case_id)
        at = datetime.fromtimestamp(entry.created_utc, tz=timezone.utc)
        if at < self._held_since(card):
            return None  # about an earlier state of the case (already recorded, or before the hold)
        decision, reason = decided
        if card["state"] == TRANSITIONS["held"][decision]:
            return None  # the case is already where this moderator put the item (decided elsewhere)
        kind = _fullname_kind(target)
        note = {"approve": f"approved in Reddit's modqueue ({kind})",
                "reject": f"removed in Reddit's modqueue ({kind}{', as spam' if reason == 'spam' else ''})"}[decision]
        actor = Actor(id=mod, platform=self.platform, roles=("moderator",), verified=True)
        try:
            # A decision the case cannot take (removed on Reddit after an approval elsewhere) is
            # refused by the core, and the refusal is in the audit log: the two tools disagreed.
            state = await self.core.decide(case_id, decision, actor, reason, note=note)
        except Refused as exc:
            log.info("reddit: u/%s's %s of %s not recorded on case %d: %s", mod, entry.action, target, case_id, exc)
            return None
        log.info("reddit: case %d is %s by u/%s in Reddit's modqueue", case_id, state, mod)
        return state

    def _held_since(self, card: dict[str, Any]) -> datetime:
        """When the case's current state began: its last decision, or its (re)hold.

        The card has no opening time; a hold sets `respond_by` = hold time + the community's
        response time, so the hold time is derived from it."""
        since = datetime.min.replace(tzinfo=timezone.utc)
        if card.get("respond_by"):
            hours = self.core.community(card["community"]).respond_within_hours
            since = parse_time(card["respond_by"]) - timedelta(hours=hours)
        last = card.get("last_decision")
        if last and last.get("at"):
            since = max(since, parse_time(last["at"]))
        return since

    # -- actions ------------------------------------------------------------------------------------

    async def _thing(self, fullname: str) -> Comment | Submission:
        kind, _, id36 = fullname.partition("_")
        if kind == "t1":
            return await self.reddit.comment(id36, fetch=False)
        if kind == "t3":
            return await self.reddit.submission(id36, fetch=False)
        raise ActionError(f"{fullname!r} is not a Reddit comment or post", permanent=True)

    async def _mod_note(self, case_id: int) -> str:
        try:
            rules = [h["rule"] for h in (await self.core.card(case_id))["hits"]]
        except Refused:
            rules = []
        note = f"pharmamod case #{case_id}: " + (", ".join(rules) or "held for review")
        return note if len(note) <= MOD_NOTE_MAX else note[:MOD_NOTE_MAX - 1] + "…"

    async def perform(self, delivery: Delivery) -> dict[str, Any]:
        kind, p = delivery.kind, delivery.payload
        if kind in ("review_post", "review_update", "remind"):
            raise ActionError(NO_REVIEW_ROOM.format(room=p.get("room", "")), permanent=True)
        if self.reddit is None or self._closed:
            # After stop the client is closed (a request would open a session nobody closes):
            # the outbox keeps the action for the next start.
            raise ActionError("the Reddit adapter is not running; the action is sent when it runs again")
        try:
            thing = await self._thing(p["message_id"])
            if kind == "hold":
                note = await self._mod_note(p["case_id"])
                await thing.mod.remove(mod_note=note)
                return {"removed": p["message_id"], "mod_note": note}
            if kind == "restore":
                await thing.mod.approve()
                return {"approved": p["message_id"]}
            if kind == "notify":
                if self.settings.notify == "reply":
                    reply = await thing.reply(p["text"])
                    return {"reply": getattr(reply, "fullname", None)}
                await thing.mod.send_removal_message(message=p["text"], title=self.settings.notice_title,
                                                     type=self.settings.notify)
                return {"removal_message": self.settings.notify}
        except Exception as exc:  # noqa: BLE001 - translated at the edge, see action_error
            raise action_error(exc) from exc
        raise ActionError(f"the Reddit adapter does not do {kind!r}", permanent=True)


__all__ = ["RedditAdapter", "RedditSettings", "action_error"]
