"""The Discord adapter: screens guild messages, holds by deleting, reviews with buttons.

Discord has no true hold, so a held message is deleted at once (its text is in the store) and
restored, if a moderator approves it, as a repost with clear attribution: through a channel
webhook with the author's name and avatar when the bot can Manage Webhooks, else as a bot message
("**Alice** wrote (restored after review): ..."). Moderators decide in a review channel, one post
per case (an embed with the message, the rules that fired and why, PV flags and due date, the
response-time target) with four buttons.

Strategy:
- Buttons survive restarts: their custom ids ("pm:approve:42") are matched by one
  `discord.ui.DynamicItem` registered at start-up, so a click on a post made by an earlier run
  still reaches `core.decide`. Nothing about a post is kept in memory.
- Rights are checked against Discord itself: only members holding a moderator role of the case's
  community (role ids from this section, else the community's `moderator_roles` names) may decide;
  others get an ephemeral refusal, recorded with `core.refuse`.
- Start-up fails loudly (`AdapterError`) when the token is missing or refused, the Message Content
  intent is not enabled, a guild or channel is unknown, or the bot lacks Manage Messages in a
  screened channel or Send Messages/Embed Links in a review channel.
- `client.start(token, reconnect=True)`: a dropped gateway connection is resumed or re-identified
  by discord.py with exponential backoff; REST 429s are waited out by discord.py (up to
  `max_ratelimit_timeout`, beyond that the outbox retries after Retry-After), and platform
  errors leave as `ActionError` through one mapping table (`action_error`).

Intents: guilds, guild messages and message content. Message Content is *privileged*: enable it
under Bot -> Privileged Gateway Intents in the developer portal, or discord.py stops with
PrivilegedIntentsRequired (reported here as an AdapterError saying so).

`api_base` and `gateway_url` exist for tests against a local fake: they set the class attributes
`discord.http.Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY`, which are process-wide (every
discord.py client in the process uses them), and are left alone when not given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from datetime import datetime
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.cases import OPEN_STATES, TRANSITIONS
from bot.config import ConfigError, secret
from bot.models import Author, Message, ReplyContext
from bot.outbox import Delivery

from .base import ActionError, Actor, Adapter, AdapterError, Core, Refused

log = logging.getLogger("pharmamod.discord")

# -- settings ------------------------------------------------------------------------------------


class DiscordCommunity(BaseModel):
    """One community on Discord: a guild, optionally narrowed to some of its channels."""

    model_config = ConfigDict(extra="forbid")
    guild: int  # the server's id
    channels: list[int] = []  # channels screened (threads follow their parent); empty = every channel
    moderator_role_ids: list[int] = []  # roles that may decide; empty = the community's moderator_roles names


class DiscordSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token_env: str = "DISCORD_BOT_TOKEN"  # the environment variable holding the bot token
    # Empty: Discord only hosts review rooms (of Reddit or Telegram communities), screening nothing.
    communities: dict[str, DiscordCommunity] = {}
    api_base: str | None = None  # tests only: sets discord.http.Route.BASE (process-wide)
    gateway_url: str | None = None  # tests only: sets DiscordWebSocket.DEFAULT_GATEWAY (process-wide)
    guild_ready_timeout: float = Field(2.0, ge=0)  # discord.py waits this long after the last guild
    ready_timeout: float = Field(120.0, gt=0)  # start-up fails when not connected by then
    max_ratelimit_timeout: float = Field(60.0, ge=30)  # longer 429 waits go back to the outbox
    webhook_name: str = "pharmamod"  # the channel webhook that restores approved messages

    @model_validator(mode="after")
    def _one_community_per_channel(self) -> DiscordSettings:
        whole: dict[int, str] = {}
        claimed: dict[int, str] = {}
        for name, c in self.communities.items():
            if not c.channels:
                if c.guild in whole:
                    raise ValueError(f"communities {whole[c.guild]!r} and {name!r} both take every channel of "
                                     f"guild {c.guild}; give one of them `channels`")
                whole[c.guild] = name
            for ch in c.channels:
                if ch in claimed:
                    raise ValueError(f"channel {ch} is in communities {claimed[ch]!r} and {name!r}")
                claimed[ch] = name
        return self


# -- the review post -----------------------------------------------------------------------------

# button -> (label, style, decision for core.decide, reason code from bot.cases.REASONS)
BUTTONS: dict[str, tuple[str, discord.ButtonStyle, str, str]] = {
    "approve": ("Approve", discord.ButtonStyle.success, "approve", "compliant"),
    "reject": ("Reject", discord.ButtonStyle.danger, "reject", "drug_name"),
    "escalate": ("Escalate to PV", discord.ButtonStyle.primary, "escalate", "pharmacovigilance"),
    "not_ae": ("Not an AE", discord.ButtonStyle.secondary, "not_ae", ""),
}
COLOURS = {"held": 0xE67E22, "escalated": 0xC0392B, "approved": 0x2ECC71, "rejected": 0x7F8C8D}
NO_MENTIONS = discord.AllowedMentions.none()
MAX_MESSAGE = 2000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(iso: str | None) -> str:
    """An ISO time as Discord renders it for each reader: absolute and relative."""
    if not iso:
        return "—"
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{discord.utils.format_dt(dt, 'f')} ({discord.utils.format_dt(dt, 'R')})"


def review_embed(card: dict[str, Any]) -> discord.Embed:
    """The case card (`bot.cases.CaseBook.card`) as an embed, within Discord's size limits."""
    state = card["state"]
    e = discord.Embed(title=_clip(f"Case #{card['case_id']}: {state}", 256), colour=COLOURS.get(state, 0x95A5A6),
                      description=_clip(card.get("text") or "(no text kept)", 3000))
    if card.get("permalink"):
        e.url = card["permalink"]
    author = discord.utils.escape_markdown(card.get("author_name") or "")
    here = card.get("platform") == "discord"  # a case from Reddit or Telegram: its ids mean nothing here
    if here and card.get("author"):
        who = f"{author} (<@{card['author']}>)"
    else:
        who = author or discord.utils.escape_markdown(str(card.get("author") or "")) or "—"
    e.add_field(name="Author", value=_clip(who if here else f"{who} on {card.get('platform')}", 1024))
    channel = card.get("channel")
    where = (f"<#{channel}>" if here else discord.utils.escape_markdown(f"{card.get('platform')} {channel}")) \
        if channel else "—"
    e.add_field(name="Where", value=_clip(f"{card.get('community') or '—'} · {where}", 1024))
    rules = "\n".join(f"`{h['rule']}` ({h['category']}): {h['explanation']}" for h in card.get("hits") or [])
    e.add_field(name="Why it was held", value=_clip(rules or "—", 1024), inline=False)
    pv = card.get("pv")
    if pv:
        lines = [f"{', '.join(pv['kinds'])}{' · **serious**' if pv['serious'] else ''} · status {pv['status']}",
                 f"due {_when(pv.get('due'))}", f"report `{pv['report_id']}`"]
        if pv.get("missing"):
            lines.append("missing: " + ", ".join(pv["missing"]))
        e.add_field(name="Pharmacovigilance", value=_clip("\n".join(lines), 1024), inline=False)
    e.add_field(name="Respond by", value=_when(card.get("respond_by")), inline=False)
    last = card.get("last_decision")
    if last:
        e.add_field(name="Decided", value=_clip(f"{last['state']} by {last['actor_platform']}:{last['actor']} "
                                                f"({last['reason_code']}) {_when(last['at'])}", 1024), inline=False)
    if card.get("action_error"):
        e.add_field(name="⚠ Action failed", value=_clip(card["action_error"], 1024), inline=False)
    e.set_footer(text=f"pharmamod case {card['case_id']}")
    return e


class ReviewButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=r"pm:(?P<action>approve|reject|escalate|not_ae):(?P<case>[0-9]+)"):
    """A review-post button; any case id matches, so posts from earlier runs keep working."""

    def __init__(self, action: str, case_id: int, *, disabled: bool = False) -> None:
        label, style, _, _ = BUTTONS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"pm:{action}:{case_id}",
                                           disabled=disabled))
        self.action = action
        self.case_id = case_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match) -> ReviewButton:
        return cls(match["action"], int(match["case"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.adapter.on_click(interaction, self.action, self.case_id)


def review_view(card: dict[str, Any]) -> discord.ui.View:
    """Four buttons; a decision is offered only while the case's state allows it, "Not an AE"
    while it has an open PV case."""
    allowed = TRANSITIONS.get(card["state"], {}) if card["state"] in OPEN_STATES else {}
    pv = card.get("pv")
    view = discord.ui.View(timeout=None)
    for action, (_, _, decision, _) in BUTTONS.items():
        enabled = (pv is not None and pv.get("status") == "open") if action == "not_ae" else decision in allowed
        view.add_item(ReviewButton(action, card["case_id"], disabled=not enabled))
    return view


class NotAnAEModal(discord.ui.Modal, title="Not an adverse event"):
    """Asks the moderator why; the PV case is marked, never deleted (`core.not_an_ae`)."""

    reason: discord.ui.TextInput = discord.ui.TextInput(
        label="Why is this not an adverse event?", style=discord.TextStyle.paragraph, min_length=3, max_length=500)

    def __init__(self, adapter: DiscordAdapter, case_id: int, actor: Actor) -> None:
        super().__init__(timeout=900)
        self.adapter, self.case_id, self.actor = adapter, case_id, actor

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.adapter.on_not_an_ae(interaction, self.case_id, self.actor, str(self.reason.value))


# -- platform errors -----------------------------------------------------------------------------

TRANSIENT = (aiohttp.ClientError, OSError, asyncio.TimeoutError, discord.ConnectionClosed, discord.GatewayNotFound)


def action_error(exc: BaseException, what: str) -> ActionError | None:
    """Translate a discord.py exception into the core's ActionError; None for anything else (a bug).

    | exception                                  | ActionError                                   |
    |--------------------------------------------|-----------------------------------------------|
    | RateLimited (429 longer than we wait)      | transient, retry_after from Discord           |
    | NotFound (message, channel gone)           | permanent                                     |
    | Forbidden (missing permission, DMs closed) | permanent                                     |
    | HTTPException 5xx, 429 without Via         | transient (discord.py already retried 5xx)    |
    | HTTPException other 4xx                    | permanent: the request itself is refused      |
    | connection errors, timeouts                | transient                                     |
    """
    if isinstance(exc, discord.RateLimited):
        return ActionError(f"{what}: rate limited by Discord for {exc.retry_after:.0f} s", retry_after=exc.retry_after)
    if isinstance(exc, discord.NotFound):
        return ActionError(f"{what}: not found on Discord ({exc.text or exc.status})", permanent=True)
    if isinstance(exc, discord.Forbidden):
        return ActionError(f"{what}: the bot lacks a permission ({exc.text or exc.status})", permanent=True)
    if isinstance(exc, discord.HTTPException):
        transient = exc.status >= 500 or exc.status == 429
        return ActionError(f"{what}: Discord answered {exc.status} {exc.text}".rstrip(), permanent=not transient)
    if isinstance(exc, TRANSIENT):
        return ActionError(f"{what}: {type(exc).__name__}: {exc}")
    return None


def _nonce(key: str) -> str:
    """A delivery's idempotency key as a Discord nonce: a retried post within minutes is not doubled."""
    return hashlib.sha256(key.encode()).hexdigest()[:25]


def _chunks(text: str, limit: int) -> list[str]:
    return [text[i:i + limit] for i in range(0, len(text), limit)] or [""]


def _webhook_username(name: str) -> str:
    """Discord refuses webhook names containing "discord" or "clyde", and longer than 80."""
    name = re.sub(r"(?i)(?<=d)(?=iscord)|(?<=c)(?=lyde)", "\u200b", name).strip()[:80]
    return name if name and name.lower() not in ("everyone", "here") else "member"


# -- the client and the adapter --------------------------------------------------------------------


class _Client(discord.Client):
    """discord.py's client, handing every event to the adapter."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ReviewButton)

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.adapter.on_message(payload.message)


class DiscordAdapter(Adapter):
    platform = "discord"

    def __init__(self, name: str, settings: Any, base_dir: Any = None) -> None:
        try:
            parsed = settings if isinstance(settings, DiscordSettings) else DiscordSettings.model_validate(settings)
        except ValidationError as exc:
            raise ConfigError("\n".join(f"[adapters.{name}.{'.'.join(str(p) for p in e['loc'])}] {e['msg']}"
                                        if e["loc"] else f"[adapters.{name}] {e['msg']}" for e in exc.errors())) from None
        super().__init__(name, parsed, base_dir)
        self.settings: DiscordSettings = parsed
        self.core: Core | None = None
        self.client: _Client | None = None
        self.ready = asyncio.Event()  # set once connected and every permission checked
        self._by_channel = {ch: n for n, c in parsed.communities.items() for ch in c.channels}
        self._by_guild = {c.guild: n for n, c in parsed.communities.items() if not c.channels}
        self._review_channels: set[int] = set()
        self._webhooks: dict[int, discord.Webhook] = {}
        self._stopped = False

    # -- start and stop --------------------------------------------------------------------------

    def _apply_endpoints(self) -> None:
        s = self.settings
        if s.api_base:
            Route.BASE = s.api_base.rstrip("/")
        if s.gateway_url:
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(s.gateway_url)

    async def start(self, core: Core) -> None:
        self.core = core
        try:
            token = secret(self.settings.token_env)
        except ConfigError as exc:
            raise AdapterError(f"[adapters.{self.name}] {exc} (the Discord bot token)") from None
        if self._stopped:  # stopped before it started
            return
        self._apply_endpoints()
        # Every Discord room any community reviews in, whatever platform its messages come from:
        # never screened, and checked for the rights to post there.
        self._review_channels = {cid for cid in map(self._room_channel, core.review_rooms()) if cid}
        if not self.settings.communities and not self._review_channels:
            raise AdapterError(f"[adapters.{self.name}] screens no community and hosts no review room: add "
                               f"[adapters.{self.name}.communities.<name>], or a community review_room = \"discord:<id>\"")
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.message_content = True
        client = self.client = _Client(self, intents=intents, guild_ready_timeout=self.settings.guild_ready_timeout,
                                       max_ratelimit_timeout=self.settings.max_ratelimit_timeout,
                                       chunk_guilds_at_startup=False,
                                       # No message cache: discord.py updates a cached message in place on
                                       # MESSAGE_UPDATE, so a quick edit would overwrite the first version
                                       # before its on_message ran, and that version would never be screened.
                                       max_messages=None)
        running = asyncio.create_task(client.start(token, reconnect=True), name="discord-client")
        ready = asyncio.create_task(client.wait_until_ready())
        try:
            done, _ = await asyncio.wait({running, ready}, timeout=self.settings.ready_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if running in done:
                if running.exception() is not None:
                    raise self._start_error(running.exception())
                return  # stopped before it was ready
            if not done:
                raise AdapterError(f"[adapters.{self.name}] not connected to Discord after "
                                   f"{self.settings.ready_timeout:.0f} s")
            problems = self.check_permissions()
            if problems:
                raise AdapterError(f"[adapters.{self.name}] the bot cannot moderate:\n  - " + "\n  - ".join(problems))
            self.ready.set()
            log.info("discord: connected as %s, screening %s", client.user,
                     ", ".join(f"{n} (guild {c.guild})" for n, c in self.settings.communities.items()))
            try:
                await running  # until stop(); discord.py reconnects by itself meanwhile
            except (discord.DiscordException, aiohttp.ClientError, OSError) as exc:
                raise self._start_error(exc) from exc  # e.g. the token was reset while running
        finally:
            self.ready.clear()
            ready.cancel()
            if not client.is_closed():
                await client.close()
            if not running.done():
                await asyncio.gather(running, return_exceptions=True)

    def _start_error(self, exc: BaseException) -> AdapterError:
        env = self.settings.token_env
        if isinstance(exc, discord.LoginFailure):
            why = f"Discord refused the token in {env}; reset it under Bot in the developer portal"
        elif isinstance(exc, discord.PrivilegedIntentsRequired):
            why = ("the Message Content intent is not enabled; turn it on under Bot -> Privileged Gateway Intents "
                   "in the developer portal")
        else:
            why = f"lost the connection to Discord: {type(exc).__name__}: {exc}"
        return AdapterError(f"[adapters.{self.name}] {why}")

    async def stop(self) -> None:
        self._stopped = True
        self.ready.clear()
        if self.client is not None and not self.client.is_closed():
            await self.client.close()

    def check_permissions(self) -> list[str]:
        """What the bot cannot do in the configured guilds and channels, one line each."""
        client, problems = self.client, []
        for name, c in self.settings.communities.items():
            guild = client.get_guild(c.guild)
            if guild is None or guild.me is None:
                problems.append(f"community {name!r}: the bot is not in guild {c.guild}; invite it with the "
                                "OAuth2 URL (scope bot)")
                continue
            where = f"guild {guild.name!r} ({guild.id})"
            if c.channels:
                channels = []
                for cid in c.channels:
                    ch = guild.get_channel(cid)
                    if ch is None:
                        problems.append(f"{where}: no channel {cid} (or the bot cannot see it)")
                    else:
                        channels.append(ch)
            else:
                channels = [ch for ch in guild.text_channels if ch.id not in self._review_channels]
            for ch in channels:
                perms = ch.permissions_for(guild.me)
                if not perms.view_channel:
                    if c.channels:
                        problems.append(f"{where}, channel #{ch.name} ({ch.id}): missing View Channel")
                    else:
                        log.warning("%s, channel #%s (%d): the bot cannot see it, so it is not screened",
                                    where, ch.name, ch.id)
                    continue
                missing = [] if perms.manage_messages else ["Manage Messages"]
                if not (perms.manage_webhooks or perms.send_messages):
                    missing.append("Manage Webhooks or Send Messages (to restore approved messages)")
                if missing:
                    problems.append(f"{where}, channel #{ch.name} ({ch.id}): missing {', '.join(missing)}")
                elif not perms.manage_webhooks:
                    log.info("%s, channel #%s: no Manage Webhooks; approved messages are restored by the bot",
                             where, ch.name)
        for room_name, served in self.core.review_rooms().items():
            cid = self._room_channel(room_name)
            if not cid:
                continue
            room = client.get_channel(cid)
            if room is None or getattr(room, "guild", None) is None:
                problems.append(f"review room of {', '.join(map(repr, served))}: channel {cid} not found "
                                "(is the bot in its server?)")
                continue
            perms = room.permissions_for(room.guild.me)
            missing = [label for flag, label in (("view_channel", "View Channel"), ("send_messages", "Send Messages"),
                                                 ("embed_links", "Embed Links")) if not getattr(perms, flag)]
            if missing:
                problems.append(f"guild {room.guild.name!r} ({room.guild.id}), review channel #{room.name} "
                                f"({room.id}): missing {', '.join(missing)}")
        return problems

    # -- screening -------------------------------------------------------------------------------

    def community_of(self, message: discord.Message) -> str | None:
        """The community a guild message belongs to, or None when it is not screened."""
        guild_id = message.guild.id if message.guild else getattr(message, "guild_id", None)
        if guild_id is None:
            return None
        cid = message.channel.id
        parent = getattr(message.channel, "parent_id", None)
        if cid in self._review_channels or parent in self._review_channels:
            return None
        return self._by_channel.get(cid) or self._by_channel.get(parent) or self._by_guild.get(guild_id)

    async def to_message(self, message: discord.Message, community: str) -> Message:
        author = message.author
        roles = tuple(r.name for r in getattr(author, "roles", ()) if not r.is_default())
        reply_to = None
        ref = message.reference
        if ref is not None and ref.message_id and message.type is discord.MessageType.reply:
            target = ref.resolved if isinstance(ref.resolved, discord.Message) else ref.cached_message
            if target is None and not isinstance(ref.resolved, discord.DeletedReferencedMessage):
                try:  # Discord did not include it: ask (needs Read Message History)
                    target = await message.channel.fetch_message(ref.message_id)
                except (discord.HTTPException, *TRANSIENT):
                    target = None
            reply_to = ReplyContext(message_id=str(ref.message_id), text=target.content if target else "")
        return Message(platform=self.platform, community=community, channel=str(message.channel.id),
                       message_id=str(message.id), text=message.content, created_at=message.created_at,
                       permalink=message.jump_url, reply_to=reply_to,
                       author=Author(id=str(author.id), display_name=author.display_name, roles=roles))

    async def on_message(self, message: discord.Message) -> None:
        """MESSAGE_CREATE and MESSAGE_UPDATE: screen what people write in the configured channels.
        Bots and webhooks are skipped: restored messages come from our own webhook or the bot."""
        if message.author.bot or message.webhook_id is not None or not message.content.strip():
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        community = self.community_of(message)
        if community is None or self.core is None:
            return
        try:
            await self.core.submit(await self.to_message(message, community))
        except Exception:  # Discord will not send it again: say loudly which message went unscreened
            log.exception("discord message %s in channel %s (%s) could not be stored, so it was not screened",
                          message.id, message.channel.id, message.jump_url)

    # -- review buttons --------------------------------------------------------------------------

    def is_moderator(self, member: discord.abc.User, community: str) -> bool:
        if not isinstance(member, discord.Member):
            return False
        c = self.settings.communities.get(community)
        if c is not None and c.moderator_role_ids:
            return any(r.id in c.moderator_role_ids for r in member.roles)
        names = set(self.core.community(community).moderator_roles)
        return any(r.name in names for r in member.roles)

    @staticmethod
    def _actor(user: discord.abc.User, verified: bool) -> Actor:
        roles = tuple(r.name for r in getattr(user, "roles", ()) if not r.is_default())
        return Actor(id=str(user.id), platform="discord", roles=roles, verified=verified)

    @staticmethod
    async def _tell(interaction: discord.Interaction, text: str) -> None:
        """An ephemeral answer (only the clicker sees it), whether or not the click was answered yet."""
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    async def on_click(self, interaction: discord.Interaction, action: str, case_id: int) -> None:
        """A review button: check the clicker's roles on Discord, then decide through the core.
        The core calls are local SQLite writes, well inside Discord's 3 s to answer a click."""
        user = interaction.user
        try:
            try:
                card = await self.core.card(case_id)
            except Refused as exc:
                await self._tell(interaction, str(exc))
                return
            community = card["community"]
            if not self.is_moderator(user, community):
                why = f"discord:{user.id} has no moderator role of community {community!r}"
                await self.core.refuse(self._actor(user, False), case_id, BUTTONS[action][2], why)
                await self._tell(interaction, f"Only moderators of {community} can decide on case #{case_id}. "
                                              "Your click was recorded.")
                return
            actor = self._actor(user, True)
            if action == "not_ae":
                await interaction.response.send_modal(NotAnAEModal(self, case_id, actor))
                return
            _, _, decision, reason = BUTTONS[action]
            try:
                new = await self.core.decide(case_id, decision, actor, reason)
            except Refused as exc:
                await self._tell(interaction, str(exc))
                return
            await self._tell(interaction, f"Case #{case_id} is now {new} ({reason}).")
        except Exception:
            log.exception("review click %s on case %s by discord:%s failed", action, case_id, user.id)
            if not interaction.response.is_done():
                await interaction.response.send_message("That did not work; the error is in pharmamod's log.",
                                                        ephemeral=True)

    async def on_not_an_ae(self, interaction: discord.Interaction, case_id: int, actor: Actor, reason: str) -> None:
        try:
            report = await self.core.not_an_ae(case_id, actor, reason)
        except Refused as exc:
            await self._tell(interaction, str(exc))
            return
        await self._tell(interaction, f"PV case {report} is marked not an adverse event.")
        if interaction.message is not None:  # the core queues no update for this: show it now
            card = await self.core.card(case_id)
            try:
                await interaction.message.edit(embed=review_embed(card), view=review_view(card))
            except discord.HTTPException as exc:
                log.warning("could not update the review post of case %s: %s", case_id, exc)

    # -- actions ---------------------------------------------------------------------------------

    @staticmethod
    def _room_channel(room: str | None) -> int | None:
        if room and room.startswith("discord:") and room[8:].isdigit():
            return int(room[8:])
        return None

    async def _channel(self, channel_id: int):
        return self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)

    async def perform(self, delivery: Delivery) -> dict[str, Any]:
        if self.client is None or self.client.is_closed():
            raise ActionError("discord: not connected")
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), 2.0)
            except asyncio.TimeoutError:
                raise ActionError("discord: not connected yet") from None
        act = getattr(self, f"_{delivery.kind}", None)
        if act is None:
            raise ActionError(f"the discord adapter cannot {delivery.kind}", permanent=True)
        p = delivery.payload
        what = f"{delivery.kind} case {p.get('case_id')}"
        try:
            return await act(p, delivery)
        except ActionError:
            raise
        except Exception as exc:
            err = action_error(exc, what)
            if err is None:
                raise
            raise err from exc

    async def _hold(self, p: dict[str, Any], d: Delivery) -> dict[str, Any]:
        # The HTTP call rather than PartialMessage.delete, which cannot give Discord's audit log a reason.
        reason = f"pharmamod: held for review (case {p['case_id']})"
        if p.get("reposted"):  # reopened after approval: the original is gone, its reposts are up
            for rid in p["reposted"]:
                with contextlib.suppress(discord.NotFound):
                    await self.client.http.delete_message(int(p["channel"]), int(rid), reason=reason)
            return {"deleted_reposts": p["reposted"]}
        await self.client.http.delete_message(int(p["channel"]), int(p["message_id"]), reason=reason)
        return {"deleted": p["message_id"]}

    async def _restore(self, p: dict[str, Any], d: Delivery) -> dict[str, Any]:
        """Repost with attribution: a webhook posing as the author, else a bot message quoting them."""
        if not p.get("text"):
            raise ActionError(f"restore case {p['case_id']}: no text kept (purged?), nothing to repost",
                              permanent=True)
        channel = await self._channel(int(p["channel"]))
        name = p.get("author_name") or p.get("author") or "member"
        text = p["text"]
        hook_channel = channel.parent if isinstance(channel, discord.Thread) else channel
        guild = getattr(hook_channel, "guild", None)
        if guild is not None and hasattr(hook_channel, "create_webhook") \
                and hook_channel.permissions_for(guild.me).manage_webhooks:
            try:
                return await self._restore_by_webhook(channel, hook_channel, p, name, text)
            except discord.Forbidden as exc:
                log.warning("restore through a webhook refused in channel %s (%s); the bot posts it", channel.id, exc)
        header = f"**{discord.utils.escape_markdown(name)}** wrote (restored after review):\n>>> "
        chunks = _chunks(header + text, MAX_MESSAGE)
        sent = [await channel.send(c, allowed_mentions=NO_MENTIONS, nonce=_nonce(f"{d.key}:{i}"))
                for i, c in enumerate(chunks)]
        return {"restored_as": str(sent[0].id), "via": "bot", "reposted": [str(m.id) for m in sent]}

    async def _restore_by_webhook(self, channel, hook_channel, p: dict[str, Any], name: str,
                                  text: str) -> dict[str, Any]:
        avatar = discord.utils.MISSING
        try:
            avatar = (await self.client.fetch_user(int(p["author"]))).display_avatar.url
        except (discord.HTTPException, ValueError, KeyError, *TRANSIENT):
            pass
        note = f"\n-# <@{p['author']}>'s message, restored after review" if p.get("author") else \
            "\n-# restored after review"
        chunks = _chunks(text, MAX_MESSAGE - len(note))
        chunks[-1] += note
        thread = channel if isinstance(channel, discord.Thread) else discord.utils.MISSING
        for attempt in (1, 2):
            hook = await self._webhook(hook_channel)
            try:
                sent = [await hook.send(c, username=_webhook_username(name), avatar_url=avatar, wait=True,
                                        thread=thread, allowed_mentions=NO_MENTIONS) for c in chunks]
                return {"restored_as": str(sent[0].id), "via": "webhook", "reposted": [str(m.id) for m in sent]}
            except discord.NotFound:  # someone deleted our webhook: make a new one once
                self._webhooks.pop(hook_channel.id, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _webhook(self, channel) -> discord.Webhook:
        hook = self._webhooks.get(channel.id)
        if hook is None:
            me = self.client.user.id
            hook = next((h for h in await channel.webhooks() if h.name == self.settings.webhook_name
                         and h.token and h.user and h.user.id == me), None)
            if hook is None:
                hook = await channel.create_webhook(name=self.settings.webhook_name,
                                                    reason="pharmamod: restores approved messages")
            self._webhooks[channel.id] = hook
        return hook

    async def _notify(self, p: dict[str, Any], d: Delivery) -> dict[str, Any]:
        """DM the author; when their DMs are closed, a short notice in the channel, without the
        text (it may speak of their health) but telling them to open DMs."""
        uid = int(p["author"])
        try:
            dm = await self.client.create_dm(discord.Object(uid))
            sent = await dm.send(p["text"], nonce=_nonce(d.key))
            return {"dm": str(sent.id)}
        except discord.Forbidden:
            channel = await self._channel(int(p["channel"]))
            sent = await channel.send(
                f"<@{uid}> your message is waiting for a moderator's review. Allow direct messages from this "
                "server's members to get the details.", nonce=_nonce(d.key + ":channel"),
                allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(uid)]))
            return {"dm": "closed", "channel_notice": str(sent.id)}

    def _review_channel(self, p: dict[str, Any]):
        cid = self._room_channel(p.get("room"))
        if cid is None:
            raise ActionError(f"review room {p.get('room')!r} is not a discord channel", permanent=True)
        self._review_channels.add(cid)
        return self.client.get_channel(cid) or self.client.get_partial_messageable(cid)

    async def _review_post(self, p: dict[str, Any], d: Delivery) -> dict[str, Any]:
        channel = self._review_channel(p)
        sent = await channel.send(embed=review_embed(p), view=review_view(p), nonce=_nonce(d.key),
                                  allowed_mentions=NO_MENTIONS)
        return {"ref": str(sent.id)}

    async def _review_update(self, p: dict[str, Any], d: Delivery) -> dict[str, Any]:
        channel = self._review_channel(p)
        ref = await self.core.review_post(p["case_id"], p["room"])
        if ref is None:  # its review_post is still in the outbox: try again after it
            raise ActionError(f"case {p['case_id']} has no review post in {p['room']} yet")
        await channel.get_partial_message(int(ref)).edit(embed=review_embed(p), view=review_view(p))
        return {"ref": ref, "edited": True}

    async def _remind(self, p: dict[str, Any], d: Delivery) -> dict[str, Any]:
        room = self.core.community(p.get("community") or "").review_room
        cid = self._room_channel(room)
        if cid is None:
            raise ActionError(f"reminder for case {p['case_id']}: community {p.get('community')!r} has no discord "
                              f"review room ({room or 'none'})", permanent=True)
        channel = self.client.get_channel(cid) or self.client.get_partial_messageable(cid)
        ref = await self.core.review_post(p["case_id"], room)
        guild = getattr(channel, "guild", None)
        link = f" · https://discord.com/channels/{guild.id}/{cid}/{ref}" if ref and guild else ""
        sent = await channel.send(f"⏰ Case #{p['case_id']} is waiting for a decision: respond by "
                                  f"{_when(p.get('respond_by'))}{link}", nonce=_nonce(d.key),
                                  allowed_mentions=NO_MENTIONS)
        return {"reminder": str(sent.id)}


__all__ = ["DiscordAdapter", "DiscordCommunity", "DiscordSettings", "ReviewButton", "action_error", "review_embed",
           "review_view"]
