"""One review room for every platform: a team reviews its subreddit's and its Telegram group's
cases in its Discord moderators' channel.

One real Runner runs the reddit, telegram and discord adapters at once, each against its fake
server (tests/fakes), on a real SQLite store. A community's `review_room` is set independently of
where its messages come from: the cases of "t2d-sub" (r/diabetes_t2) and "t2d-chat" (a Telegram
group) are posted in the Discord channel #review, where the Discord server's own community
"t2d-server" is reviewed too. Assertions are on what each fake received and on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters import AdapterError
from bot.config import Config
from bot.runner import Runner
from tests.fakes.discord import BOB, EMBED_LINKS, GENERAL, GUILD, MANAGE_MESSAGES, MANAGE_WEBHOOKS, MIRA, \
    MODERATOR_ROLE, OFFTOPIC, REVIEW, SEND_MESSAGES, FakeDiscord
from tests.fakes import until
from tests.fakes.reddit import FakeReddit
from tests.fakes.telegram import FakeTelegram, user

# asyncprawcore 4.0.0 with aiohttp 3.14 (as in test_adapter_reddit.py)
pytestmark = [pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")]

ROOM = f"discord:{REVIEW}"
SUB = "diabetes_t2"
REDDIT_BOT = "pharmamod-bot"
REDDIT_SECRETS = {"REDDIT_CLIENT_ID": "cid-7f3a", "REDDIT_CLIENT_SECRET": "csecret-x91",
                  "REDDIT_USERNAME": REDDIT_BOT, "REDDIT_PASSWORD": "pw-k2q"}
DISCORD_TOKEN_ENV, DISCORD_TOKEN = "PHARMAMOD_TEST_DISCORD_TOKEN", "MTAwMA.fake-discord-bot-token.x7Kq"
TELEGRAM_TOKEN_ENV = "PHARMAMOD_TELEGRAM_TOKEN"
GROUP = -1001000000001  # the screened Telegram patient group
ANNA = user(501, "Anna", "anna_t2d")
DRUG = "has anyone tried ozempic for this?"


@pytest.fixture(autouse=True)
def _compiled_rules_once(monkeypatch, rules):
    """Every Runner here would compile the same default rules (about a second each): share them."""
    monkeypatch.setattr("bot.runner.load_rulesets", lambda config: {"default": rules})


class Fakes:
    def __init__(self, discord: FakeDiscord, reddit: FakeReddit, telegram: FakeTelegram) -> None:
        self.discord, self.reddit, self.telegram = discord, reddit, telegram


@pytest.fixture
async def fakes(monkeypatch):
    for k, v in REDDIT_SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(DISCORD_TOKEN_ENV, DISCORD_TOKEN)
    discord = await FakeDiscord(DISCORD_TOKEN).start()
    reddit = await FakeReddit(bot=REDDIT_BOT, client_id=REDDIT_SECRETS["REDDIT_CLIENT_ID"],
                              client_secret=REDDIT_SECRETS["REDDIT_CLIENT_SECRET"],
                              password=REDDIT_SECRETS["REDDIT_PASSWORD"]).start()
    telegram = await FakeTelegram().start()
    telegram.add_group(GROUP, "T2D Support NL", username="t2d_nl")
    monkeypatch.setenv(TELEGRAM_TOKEN_ENV, telegram.token)
    # discord.py's endpoints are process-wide: restored after the test whatever the adapter set.
    monkeypatch.setattr(Route, "BASE", discord.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
    yield Fakes(discord, reddit, telegram)
    await telegram.stop()
    await reddit.stop()
    await discord.stop()
    assert not discord.unhandled, f"the adapter called endpoints the fake Discord does not serve: {discord.unhandled}"
    assert not reddit.unknown, f"the adapter called endpoints the fake Reddit does not know: {reddit.unknown}"


def make_config(tmp_path, f: Fakes, *, telegram: bool = True, discord_communities=None,
                server_room: str = ROOM) -> Config:
    """Three communities, one per platform, all reviewed in the Discord channel #review."""
    community = {"t2d-sub": {"country": "NL", "review_room": ROOM}}
    if discord_communities != {}:
        community["t2d-server"] = {"country": "NL", "review_room": server_room}
    adapters = {
        "discord": {"token_env": DISCORD_TOKEN_ENV, "api_base": f.discord.api_base,
                    "gateway_url": f.discord.gateway_url, "guild_ready_timeout": 0.05,
                    "communities": discord_communities if discord_communities is not None else
                    {"t2d-server": {"guild": GUILD, "channels": [GENERAL, OFFTOPIC]}}},
        "reddit": {"oauth_url": f.reddit.url, "reddit_url": f.reddit.url, "communities": {"t2d-sub": SUB},
                   "poll_seconds": 0.05, "edit_check_seconds": 0, "reconnect_seconds": 0.05},
    }
    if telegram:
        community["t2d-chat"] = {"country": "NL", "review_room": ROOM}
        adapters["telegram"] = {"token_env": TELEGRAM_TOKEN_ENV, "api_url": f.telegram.api_url,
                                "communities": {"t2d-chat": GROUP}, "poll_timeout": 1}
    return Config.model_validate({
        "store": {"path": str(tmp_path / "pharmamod.db")},
        "rules": {"reload_seconds": 0},
        "service": {"metrics_port": 0},
        "outbox": {"backoff_seconds": 0.05, "poll_seconds": 0.05},
        "community": community,
        "adapters": adapters,
        "base": tmp_path,
    })


async def _adapters_up(runner: Runner, f: Fakes) -> None:
    await runner.adapters["discord"].ready.wait()
    if "telegram" in runner.adapters:
        await runner.adapters["telegram"]._ready.wait()
    await f.reddit.rec.wait_for("GET", "/comments")  # the reddit adapter is past its checks and polling


@contextlib.asynccontextmanager
async def running(config: Config, f: Fakes):
    """`pharmamod run` in this event loop, until every adapter is connected and checked."""
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    up = asyncio.create_task(_adapters_up(runner, f))
    done, _ = await asyncio.wait({task, up}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        up.cancel()
        task.result()
    assert up in done, "the adapters did not all get ready"
    up.result()
    try:
        yield runner
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)


def db(tmp_path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "pharmamod.db")


def case_of(tmp_path, platform: str, message_id: str) -> int | None:
    with contextlib.closing(db(tmp_path)) as con:
        row = con.execute("SELECT id FROM cases WHERE platform = ? AND message_id = ?",
                          (platform, message_id)).fetchone()
    return row and row[0]


def buttons(message: dict) -> list[dict]:
    return [c for row in message["components"] for c in row["components"]]


async def review_post(discord: FakeDiscord, case_id: int) -> dict:
    """The case's review post in #review, as the fake Discord holds it (edits change it in place)."""
    def find():
        return next((m for m in discord.messages.values() if m["channel_id"] == str(REVIEW) and m["components"]
                     and buttons(m)[0]["custom_id"] == f"pm:approve:{case_id}"), None)
    return await until(find, what=f"the review post of case {case_id} in #review")


def fields(embed: dict) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed["fields"]}


async def reddit_case(f: Fakes, tmp_path) -> tuple[str, int, dict]:
    """Lee names a drug under a post on r/diabetes_t2: (the comment's fullname, the case id, its review post)."""
    post = f.reddit.add_submission(SUB, "Walking group this Saturday")
    held = f.reddit.add_comment(SUB, DRUG, parent=post, author="lee")
    removed = await f.reddit.rec.wait_for("POST", "/api/remove")
    assert [r["id"] for r in removed] == [held]
    case_id = await until(lambda: case_of(tmp_path, "reddit", held), what="the reddit case")
    return held, case_id, await review_post(f.discord, case_id)


async def clicked(discord: FakeDiscord, post: dict, custom_id: str, **by) -> dict:
    """A click on a review-post button; returns the bot's answer to the interaction."""
    iid = await discord.click(int(post["id"]), custom_id, **by)
    return (await discord.rec.wait_for("POST", f"/interactions/{iid}/"))[0]


# -- the cases ---------------------------------------------------------------------------------


async def test_a_reddit_case_is_approved_from_the_discord_review_room(tmp_path, fakes):
    f = fakes
    async with running(make_config(tmp_path, f), f):
        held, case_id, post = await reddit_case(f, tmp_path)
        (note,) = f.reddit.form_json("/modactions/removal_reasons")
        assert note["item_ids"] == [held] and note["mod_note"].startswith(f"pharmamod case #{case_id}: ")
        assert f.reddit.items[held]["removed"]

        embed = post["embeds"][0]
        assert embed["title"] == f"Case #{case_id}: held" and DRUG in embed["description"]
        assert embed["url"] == f.reddit.url + f.reddit.items[held]["permalink"]
        assert "ozempic" in fields(embed)["Why it was held"].lower()
        assert [b["custom_id"] for b in buttons(post)] == [f"pm:{a}:{case_id}" for a in
                                                           ("approve", "reject", "escalate", "not_ae")]
        assert [b.get("disabled", False) for b in buttons(post)] == [False, False, False, True]

        answer = await clicked(f.discord, post, f"pm:approve:{case_id}", by=MIRA, roles=(MODERATOR_ROLE,))
        assert answer["data"]["flags"] == 64 and f"Case #{case_id} is now approved" in answer["data"]["content"]
        (approved,) = await f.reddit.rec.wait_for("POST", "/api/approve")
        assert approved["id"] == held
        assert f.reddit.items[held]["approved"] and not f.reddit.items[held]["removed"]

        edited = (await f.discord.rec.wait_for("PATCH", f"/channels/{REVIEW}/messages/{post['id']}"))[-1]
        assert edited["embeds"][0]["title"] == f"Case #{case_id}: approved"
        assert f"approved by discord:{MIRA} (compliant)" in fields(edited["embeds"][0])["Decided"]
        assert all(b.get("disabled") for b in buttons(edited))

        # The bot's own approve shows in Reddit's mod log; reading it records no second decision.
        last = f.reddit.log[-1]["data"]["id"]
        await until(lambda: any(b.get("before") == last for b in f.reddit.rec.called("GET", "/about/log")),
                    what="the mod log read past the bot's approve")

    con = db(tmp_path)
    assert con.execute("SELECT actor, actor_platform, reason_code, to_state FROM decisions").fetchall() == [
        (str(MIRA), "discord", "compliant", "approved")]
    assert con.execute("SELECT platform, community, state FROM cases").fetchall() == [
        ("reddit", "t2d-sub", "approved")]
    assert con.execute("SELECT case_id, room, ref FROM review_posts").fetchall() == [(case_id, ROOM, post["id"])]
    assert con.execute("SELECT kind, route FROM outbox WHERE subject = ? AND state = 'delivered' ORDER BY id",
                       (f"case:{case_id}",)).fetchall() == [
        ("hold", "adapter:reddit"), ("review_post", "adapter:discord"), ("notify", "adapter:reddit"),
        ("review_update", "adapter:discord"), ("restore", "adapter:reddit")]
    # Nothing happened to the Discord server's own channels: the case lives on Reddit.
    assert not f.discord.rec.called("DELETE") and not f.discord.posted(GENERAL)
    assert not f.discord.rec.called("POST", "/webhooks/")


async def test_a_non_moderators_discord_click_on_a_reddit_case_is_refused_and_audited(tmp_path, fakes):
    f = fakes
    async with running(make_config(tmp_path, f), f):
        held, case_id, post = await reddit_case(f, tmp_path)
        answer = await clicked(f.discord, post, f"pm:approve:{case_id}", by=BOB)
        assert answer["type"] == 4 and answer["data"]["flags"] == 64
        assert f"Only moderators of t2d-sub can decide on case #{case_id}" in answer["data"]["content"]
        await until(lambda: db(tmp_path).execute("SELECT count(*) FROM audit WHERE kind = 'refused'").fetchone()[0],
                    what="the refusal in the audit log")
    con = db(tmp_path)
    actor, subject, data = con.execute("SELECT actor, subject, data FROM audit WHERE kind = 'refused'").fetchone()
    assert (actor, subject) == (f"discord:{BOB}", f"case:{case_id}")
    assert json.loads(data) == {"action": "approve",
                                "why": f"discord:{BOB} has no moderator role of community 't2d-sub'"}
    assert con.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
    assert con.execute("SELECT state FROM cases").fetchone() == ("held",)
    assert not f.reddit.rec.called("POST", "/api/approve") and f.reddit.items[held]["removed"]
    assert not f.discord.rec.called("PATCH")  # the review post is unchanged


async def test_a_telegram_case_is_approved_from_the_same_discord_room(tmp_path, fakes):
    f = fakes
    async with running(make_config(tmp_path, f), f):
        msg = f.telegram.post(GROUP, ANNA, "I switched to Ozempic last week")
        ref = f"{GROUP}:{msg['message_id']}"
        await until(lambda: (GROUP, msg["message_id"]) in f.telegram.deleted, what="the delete in the group")
        case_id = await until(lambda: case_of(tmp_path, "telegram", ref), what="the telegram case")
        post = await review_post(f.discord, case_id)
        assert post["embeds"][0]["title"] == f"Case #{case_id}: held"
        assert "Ozempic" in post["embeds"][0]["description"]
        assert post["embeds"][0]["url"] == f"https://t.me/t2d_nl/{msg['message_id']}"

        answer = await clicked(f.discord, post, f"pm:approve:{case_id}", by=MIRA, roles=(MODERATOR_ROLE,))
        assert f"Case #{case_id} is now approved" in answer["data"]["content"]
        repost = await until(lambda: [p for p in f.telegram.rec.called("sendMessage")
                                      if int(p["chat_id"]) == GROUP and "restored" in p["text"]], what="the repost")
        assert repost[0]["text"] == "Anna wrote (restored after review): I switched to Ozempic last week"
        edited = (await f.discord.rec.wait_for("PATCH", f"/channels/{REVIEW}/messages/{post['id']}"))[-1]
        assert edited["embeds"][0]["title"] == f"Case #{case_id}: approved"
    assert db(tmp_path).execute("SELECT actor, actor_platform, to_state FROM decisions").fetchall() == [
        (str(MIRA), "discord", "approved")]
    # No Telegram review room: nothing but the notice and the repost went to Telegram.
    assert {int(p["chat_id"]) for p in f.telegram.rec.called("sendMessage")} == {GROUP}


# -- found while writing the above ---------------------------------------------------------------------


async def test_the_review_post_of_another_platforms_case_names_its_author_and_place_there(tmp_path, fakes):
    f = fakes
    async with running(make_config(tmp_path, f), f):
        _, reddit_id, reddit_post = await reddit_case(f, tmp_path)
        msg = f.telegram.post(GROUP, ANNA, "I switched to Ozempic last week")
        tg_id = await until(lambda: case_of(tmp_path, "telegram", f"{GROUP}:{msg['message_id']}"),
                            what="the telegram case")
        tg_post = await review_post(f.discord, tg_id)
    for post, platform, author in ((reddit_post, "reddit", "lee"), (tg_post, "telegram", "Anna")):
        shown = fields(post["embeds"][0])
        assert author in shown["Author"]
        assert "<@" not in shown["Author"] and "<#" not in shown["Where"], shown
        assert platform in (shown["Author"] + shown["Where"]).lower(), shown


async def test_the_review_channel_of_a_reddit_community_is_never_screened(tmp_path, fakes):
    f = fakes
    # The Discord server's own community takes every channel and is reviewed from the terminal;
    # #review is only the subreddit's review room.
    config = make_config(tmp_path, f, telegram=False, server_room="",
                         discord_communities={"t2d-server": {"guild": GUILD}})
    async with running(config, f):
        # Before the first review post there (the adapter learns of a review channel when it posts).
        talk = await f.discord.say("lee asks about ozempic again, approve?", author=MIRA, channel=REVIEW,
                                   roles=(MODERATOR_ROLE,))
        check = await f.discord.say("ozempic in general", channel=GENERAL)  # screened, and after `talk`
        await f.discord.rec.wait_for("DELETE", f"/channels/{GENERAL}/messages/{check}")
        await asyncio.sleep(0.2)
    assert not f.discord.rec.called("DELETE", f"/messages/{talk}")
    assert db(tmp_path).execute("SELECT count(*) FROM messages WHERE message_id = ?", (str(talk),)).fetchone() == (0,)


async def test_start_up_checks_the_discord_review_room_of_a_reddit_community(tmp_path, fakes):
    f = fakes
    f.discord.bot_permissions = MANAGE_MESSAGES | MANAGE_WEBHOOKS | SEND_MESSAGES  # no Embed Links
    assert not f.discord.bot_permissions & EMBED_LINKS
    config = make_config(tmp_path, f, telegram=False, server_room="")
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    ready = asyncio.create_task(runner.adapters["discord"].ready.wait())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert task in done, "the discord adapter started without Embed Links in the subreddit's review room"
        with pytest.raises(AdapterError, match="review channel #review"):
            task.result()
    finally:
        ready.cancel()
        runner.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)


async def test_discord_can_be_only_the_review_room(tmp_path, fakes):
    f = fakes
    config = make_config(tmp_path, f, telegram=False, discord_communities={})
    async with running(config, f):
        _, case_id, post = await reddit_case(f, tmp_path)
        assert post["embeds"][0]["title"] == f"Case #{case_id}: held"
