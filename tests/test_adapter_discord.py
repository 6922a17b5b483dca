"""The Discord adapter under the real Runner, on a real SQLite store, talking HTTP and WebSocket to
a fake Discord (tests/fakes/discord.py) through the real discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters import AdapterError
from adapters.discord import DiscordAdapter
from bot.config import Config, ConfigError
from bot.runner import Runner
from tests.fakes.discord import (ALICE, BOB, BOT_PERMISSIONS, EMBED_LINKS, GENERAL, GUILD, MANAGE_MESSAGES,
                           MANAGE_WEBHOOKS, MIRA, MODERATOR_ROLE, OFFTOPIC, REVIEW, SEND_MESSAGES, FakeDiscord)

TOKEN_ENV = "PHARMAMOD_TEST_DISCORD_TOKEN"
TOKEN = "MTAwMA.fake-discord-bot-token.x7Kq"
DRUG = "has anyone tried ozempic for this?"
AE = "since I started ozempic I throw up every morning"


@pytest.fixture(autouse=True)
def _compiled_rules_once(monkeypatch, rules):
    """Every Runner here would compile the same default rules (about a second each): share them."""
    monkeypatch.setattr("bot.runner.load_rulesets", lambda config: {"default": rules})


@pytest.fixture
async def fake(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    f = await FakeDiscord(TOKEN).start()
    # Process-wide knobs: restored after the test whatever the adapter set them to.
    monkeypatch.setattr(Route, "BASE", f.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
    yield f
    await f.stop()
    assert not f.unhandled, f"the adapter called endpoints the fake does not serve: {f.unhandled}"


def make_config(tmp_path, fake: FakeDiscord, **discord) -> Config:
    return Config.model_validate({
        "store": {"path": str(tmp_path / "pharmamod.db")},
        "rules": {"reload_seconds": 0},
        "service": {"metrics_port": 0},
        "outbox": {"backoff_seconds": 0.05, "poll_seconds": 0.05},
        "community": {"t2d": {"country": "NL", "review_room": f"discord:{REVIEW}"}},
        "adapters": {"discord": {
            "token_env": TOKEN_ENV, "api_base": fake.api_base, "gateway_url": fake.gateway_url,
            "guild_ready_timeout": 0.05, "communities": {"t2d": {"guild": GUILD, "channels": [GENERAL, OFFTOPIC]}},
            **discord}},
        "base": tmp_path,
    })


@contextlib.asynccontextmanager
async def running(config: Config):
    """`pharmamod run` in this event loop, until the adapter is connected and checked."""
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    ready = asyncio.create_task(runner.adapters["discord"].ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready in done, "the discord adapter did not get ready"
    try:
        yield runner
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)


def db(tmp_path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "pharmamod.db")


def buttons(message: dict) -> list[dict]:
    return [c for row in message["components"] for c in row["components"]]


async def held_and_posted(fake: FakeDiscord, text: str = DRUG, **say) -> tuple[int, int, dict]:
    """Someone posts `text`; returns its id, the case id and the review post (as the fake holds it)."""
    mid = await fake.say(text, **say)
    await fake.rec.wait_for("DELETE", f"/channels/{GENERAL}/messages/{mid}")
    body = (await fake.rec.wait_for("POST", f"/channels/{REVIEW}/messages"))[-1]
    post = fake.last_message(REVIEW)
    case_id = int(buttons(body)[0]["custom_id"].rsplit(":", 1)[1])
    return mid, case_id, post


async def test_drug_name_is_held_reviewed_approved_and_restored(tmp_path, fake, caplog):
    caplog.set_level(logging.DEBUG)
    async with running(make_config(tmp_path, fake)) as runner:
        assert fake.rec.called("GATEWAY", "IDENTIFY")[0]["intents"] == (1 << 0) | (1 << 9) | (1 << 15)
        await fake.say("lovely weather for a walk")  # clean: stays
        mid, case_id, post = await held_and_posted(fake)
        assert len(fake.rec.called("DELETE")) == 1

        embed = post["embeds"][0]
        assert embed["title"] == f"Case #{case_id}: held" and DRUG in embed["description"]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert "ozempic" in fields["Why it was held"].lower() and "<t:" in fields["Respond by"]
        assert fields["Author"] == f"Alice (<@{ALICE}>)"
        assert [b["custom_id"] for b in buttons(post)] == [f"pm:{a}:{case_id}" for a in
                                                           ("approve", "reject", "escalate", "not_ae")]
        assert [b.get("disabled", False) for b in buttons(post)] == [False, False, False, True]  # no PV case

        # The author is told by DM.
        await fake.rec.wait_for("POST", f"/channels/{700_000 + ALICE}/messages")

        iid = await fake.click(int(post["id"]), f"pm:approve:{case_id}", by=MIRA, roles=(MODERATOR_ROLE,))
        answer = (await fake.rec.wait_for("POST", f"/interactions/{iid}/"))[0]
        assert answer["type"] == 4 and answer["data"]["flags"] == 64
        assert f"Case #{case_id} is now approved" in answer["data"]["content"]

        restored = (await fake.rec.wait_for("POST", "/webhooks/"))[0]
        assert restored["username"] == "Alice" and DRUG in restored["content"]
        assert "restored after review" in restored["content"] and "a1b2c3" in restored["avatar_url"]
        assert restored["allowed_mentions"]["parse"] == []

        edited = (await fake.rec.wait_for("PATCH", f"/channels/{REVIEW}/messages/{post['id']}"))[-1]
        assert edited["embeds"][0]["title"] == f"Case #{case_id}: approved"
        assert "approved by discord:43 (compliant)" in {f["name"]: f["value"] for f in edited["embeds"][0]["fields"]
                                                        }["Decided"]
        assert all(b.get("disabled") for b in buttons(edited))
        # The restored (webhook) message comes back through the gateway in real Discord; it is a bot's.
        await fake.dispatch("MESSAGE_CREATE", fake.last_message(GENERAL))
        second = await fake.say("and wegovy?")  # events are handled in order: the copy was seen first
        await fake.rec.wait_for("DELETE", f"/channels/{GENERAL}/messages/{second}")
        assert runner.stats.held == 2

    con = db(tmp_path)
    assert con.execute("SELECT actor, actor_platform, reason_code, to_state FROM decisions").fetchall() == [
        (str(MIRA), "discord", "compliant", "approved")]
    row = con.execute("SELECT platform, community, channel, author_id, author_name, permalink FROM messages "
                      f"WHERE message_id = '{mid}'").fetchone()
    assert row == ("discord", "t2d", str(GENERAL), str(ALICE), "Alice",
                   f"https://discord.com/channels/{GUILD}/{GENERAL}/{mid}")
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 3  # restored copy not screened again
    assert con.execute("SELECT ref FROM review_posts").fetchall() == [(post["id"],)]
    assert con.execute("SELECT kind FROM outbox WHERE subject = ? AND state = 'delivered' ORDER BY id",
                       (f"case:{case_id}",)).fetchall() == [(k,) for k in ("hold", "review_post", "notify",
                                                                           "review_update", "restore")]
    # The token is in neither the logs nor the store.
    assert TOKEN not in caplog.text and "discord" in caplog.text
    assert TOKEN.encode() not in (tmp_path / "pharmamod.db").read_bytes()
    assert not any(TOKEN in str(r) for r in con.execute("SELECT * FROM audit"))


@pytest.mark.parametrize("role_ids, clicker, roles", [
    ([], BOB, ()),  # no role at all
    ([999], MIRA, (MODERATOR_ROLE,)),  # role ids configured: the role *named* moderator is not enough
])
async def test_a_non_moderator_click_is_refused_ephemerally_and_audited(tmp_path, fake, role_ids, clicker, roles):
    config = make_config(tmp_path, fake, communities={
        "t2d": {"guild": GUILD, "channels": [GENERAL, OFFTOPIC], "moderator_role_ids": role_ids}})
    async with running(config):
        _, case_id, post = await held_and_posted(fake)
        iid = await fake.click(int(post["id"]), f"pm:reject:{case_id}", by=clicker, roles=roles)
        answer = (await fake.rec.wait_for("POST", f"/interactions/{iid}/"))[0]
        assert answer["data"]["flags"] == 64 and "Only moderators" in answer["data"]["content"]
    con = db(tmp_path)
    kind, actor, data = con.execute("SELECT kind, actor, data FROM audit WHERE kind = 'refused'").fetchone()
    assert actor == f"discord:{clicker}" and json.loads(data)["action"] == "reject"
    assert con.execute("SELECT state FROM cases").fetchone() == ("held",)
    assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


async def test_an_edit_that_adds_a_drug_name_is_held(tmp_path, fake):
    # No `channels`: every channel of the guild is screened, except the review channel.
    async with running(make_config(tmp_path, fake, communities={"t2d": {"guild": GUILD}})):
        mid = await fake.say("great walk today", channel=OFFTOPIC)
        other = await fake.say("ozempic here", channel=REVIEW)  # the review channel is never screened
        await fake.edit(mid, "great walk today, the ozempic helps")
        await fake.rec.wait_for("DELETE", f"/channels/{OFFTOPIC}/messages/{mid}")
    con = db(tmp_path)
    assert con.execute("SELECT versions FROM messages WHERE message_id = ?", (str(mid),)).fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM messages WHERE message_id = ?", (str(other),)).fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM cases").fetchone() == (1,)


async def test_a_dropped_gateway_connection_is_resumed(tmp_path, fake):
    async with running(make_config(tmp_path, fake)):
        await fake.drop()
        await fake.rec.wait_for("GATEWAY", "RESUME")
        mid = await fake.say(DRUG)
        await fake.rec.wait_for("DELETE", f"/channels/{GENERAL}/messages/{mid}")


async def test_a_429_on_delete_is_waited_out_and_the_delete_happens(tmp_path, fake):
    fake.delete_plan = [429]
    async with running(make_config(tmp_path, fake)):
        mid = await fake.say(DRUG)
        await fake.rec.wait_for("DELETE", f"/channels/{GENERAL}/messages/{mid}", count=2)
        await fake.rec.wait_for("POST", f"/channels/{REVIEW}/messages")
    assert mid not in fake.messages
    row = db(tmp_path).execute("SELECT state, attempts FROM outbox WHERE kind = 'hold'").fetchone()
    assert row == ("delivered", 1)  # discord.py retried; the outbox saw one attempt


async def test_a_message_already_gone_is_a_permanent_failure_shown_on_the_case(tmp_path, fake):
    fake.delete_plan = [404]
    async with running(make_config(tmp_path, fake)):
        _, case_id, post = await held_and_posted(fake)
        edited = (await fake.rec.wait_for("PATCH", f"/channels/{REVIEW}/messages/{post['id']}"))[-1]
    assert "hold failed" in json.dumps(edited["embeds"][0])
    row = db(tmp_path).execute("SELECT state, attempts FROM outbox WHERE kind = 'hold'").fetchone()
    assert row == ("dead", 1)


async def test_a_review_post_from_before_a_restart_still_works(tmp_path, fake):
    config = make_config(tmp_path, fake)
    async with running(config):
        _, case_id, post = await held_and_posted(fake)
        await fake.rec.wait_for("POST", f"/channels/{700_000 + ALICE}/messages")
    async with running(config):  # a new process: nothing of the old post in memory
        iid = await fake.click(int(post["id"]), f"pm:reject:{case_id}", by=MIRA, roles=(MODERATOR_ROLE,))
        answer = (await fake.rec.wait_for("POST", f"/interactions/{iid}/"))[0]
        assert "is now rejected" in answer["data"]["content"]
        await fake.rec.wait_for("PATCH", f"/channels/{REVIEW}/messages/{post['id']}")
    assert db(tmp_path).execute("SELECT state FROM cases WHERE id = ?", (case_id,)).fetchone() == ("rejected",)
    assert not fake.rec.called("POST", "/webhooks/")  # rejected: nothing restored


async def test_not_an_ae_asks_why_in_a_modal(tmp_path, fake):
    async with running(make_config(tmp_path, fake)):
        _, case_id, post = await held_and_posted(fake, AE)
        assert not buttons(post)[3].get("disabled")  # a PV case: "Not an AE" is offered
        iid = await fake.click(int(post["id"]), f"pm:not_ae:{case_id}", by=MIRA, roles=(MODERATOR_ROLE,))
        modal = (await fake.rec.wait_for("POST", f"/interactions/{iid}/"))[0]
        assert modal["type"] == 9
        iid = await fake.submit_modal(int(post["id"]), modal["data"], ["a joke about the weather"], by=MIRA,
                                      roles=(MODERATOR_ROLE,))
        answer = (await fake.rec.wait_for("POST", f"/interactions/{iid}/"))[0]
        assert answer["data"]["flags"] == 64 and "not an adverse event" in answer["data"]["content"]
        edited = (await fake.rec.wait_for("PATCH", f"/channels/{REVIEW}/messages/{post['id']}"))[-1]
        assert "status not_ae" in json.dumps(edited["embeds"][0])
    row = db(tmp_path).execute("SELECT status, status_reason FROM pv_cases").fetchone()
    assert row == ("not_ae", "a joke about the weather")


async def test_without_manage_webhooks_and_with_closed_dms_the_bot_speaks_itself(tmp_path, fake):
    fake.bot_permissions = BOT_PERMISSIONS & ~MANAGE_WEBHOOKS
    fake.dm_closed = True
    async with running(make_config(tmp_path, fake)):
        # A reply is screened with the message it answers: "it" is the medicine named before.
        first = await fake.say("my doctor put me on ozempic last month", dispatch=False)
        mid, case_id, post = await held_and_posted(fake, "since I started it I throw up every morning",
                                                    reply_to=first)
        notices = await fake.rec.wait_for("POST", f"/channels/{GENERAL}/messages")
        assert notices[0]["content"].startswith(f"<@{ALICE}> your message is waiting")
        assert notices[0]["allowed_mentions"]["users"] == [ALICE]
        await fake.click(int(post["id"]), f"pm:approve:{case_id}", by=MIRA, roles=(MODERATOR_ROLE,))
        posted = await fake.rec.wait_for("POST", f"/channels/{GENERAL}/messages", count=2)
        assert posted[1]["content"] == ("**Alice** wrote (restored after review):\n>>> "
                                        "since I started it I throw up every morning")
    assert not fake.rec.called("POST", "/webhooks")
    con = db(tmp_path)
    assert con.execute("SELECT reply_to FROM messages WHERE message_id = ?", (str(mid),)).fetchone() == (str(first),)
    assert con.execute("SELECT message_id, kinds FROM pv_cases").fetchall() == [(str(mid), '["adverse_event"]')]


async def _adapter_error(runner: Runner) -> AdapterError:
    """The adapter's start fails; `pharmamod run` raises it (once stopped: see the report on Runner.run)."""
    run = asyncio.create_task(runner.run())
    adapter_task = None
    for _ in range(100):  # run() starts its adapters' tasks before its first real wait
        await asyncio.sleep(0)
        adapter_task = next((t for t in asyncio.all_tasks() if t.get_name() == "adapter:discord"), None)
        if adapter_task:
            break
    assert adapter_task is not None
    with pytest.raises(AdapterError) as failed:
        await asyncio.wait_for(adapter_task, 10)
    runner.stop()
    with pytest.raises(AdapterError):
        await asyncio.wait_for(run, 10)
    return failed.value


async def test_start_up_fails_when_the_bot_cannot_manage_messages(tmp_path, fake):
    fake.bot_permissions = EMBED_LINKS | SEND_MESSAGES
    err = await _adapter_error(Runner(make_config(tmp_path, fake)))
    assert "T2D support" in str(err) and "#general" in str(err) and "Manage Messages" in str(err)
    assert "#review" not in str(err)


async def test_start_up_fails_without_embed_links_in_the_review_channel(tmp_path, fake):
    fake.bot_permissions = MANAGE_MESSAGES | MANAGE_WEBHOOKS
    err = await _adapter_error(Runner(make_config(tmp_path, fake)))
    assert "review channel #review" in str(err) and "Embed Links" in str(err)


async def test_start_up_fails_when_the_message_content_intent_is_off(tmp_path, fake):
    fake.message_content_enabled = False
    err = await _adapter_error(Runner(make_config(tmp_path, fake)))
    assert "Message Content intent" in str(err) and "developer portal" in str(err)


async def test_start_up_fails_naming_the_missing_token_variable(tmp_path, fake, monkeypatch, caplog):
    monkeypatch.delenv(TOKEN_ENV)
    err = await _adapter_error(Runner(make_config(tmp_path, fake)))
    assert TOKEN_ENV in str(err)
    assert not fake.rec.calls


async def test_a_refused_token_is_reported_without_the_token(tmp_path, fake, monkeypatch, caplog):
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    err = await _adapter_error(Runner(make_config(tmp_path, fake)))
    assert "refused the token in " + TOKEN_ENV in str(err) and "not-the-token" not in str(err) + caplog.text


@pytest.mark.parametrize("settings, expect", [
    ({"communities": {"a": {"guild": 1}}, "tokne_env": "X"}, "[adapters.discord.tokne_env] Extra inputs"),
    ({"communities": {"a": {"guild": "general"}}}, "[adapters.discord.communities.a.guild]"),
    ({"communities": {"a": {"guild": 1}, "b": {"guild": 1}}}, "'a' and 'b' both take every channel of guild 1"),
    ({"communities": {"a": {"guild": 1, "channels": [5]}, "b": {"guild": 1, "channels": [5]}}},
     "channel 5 is in communities 'a' and 'b'"),
])
def test_settings_errors_say_where(settings, expect):
    with pytest.raises(ConfigError) as err:
        DiscordAdapter("discord", settings)
    assert expect in str(err.value)
