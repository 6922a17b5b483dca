"""The Reddit adapter with the real Runner and a real SQLite store, against a fake Reddit that
asyncpraw really talks HTTP to (tests/fakes/reddit.py). Assertions are on what Reddit received
and on what the store recorded."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time

import pytest

from adapters import AdapterError
from bot.config import Config
from bot.runner import Runner
from tests.fakes import running, until
from tests.fakes.reddit import TOKEN, FakeReddit

# asyncprawcore 4.0.0 with aiohttp 3.14 (shared docs, offline-clients.md)
pytestmark = [pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")]

SUB = "diabetes_t2"
BOT = "pharmamod-bot"
SECRETS = {"REDDIT_CLIENT_ID": "cid-7f3a", "REDDIT_CLIENT_SECRET": "csecret-SENSITIVE-91x",
           "REDDIT_USERNAME": BOT, "REDDIT_PASSWORD": "pw-SENSITIVE-k2q"}


@pytest.fixture
def env(monkeypatch, rules):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    # The shipped rules, compiled once per session instead of once per Runner (0.8 s each).
    monkeypatch.setattr("bot.runner.load_rulesets", lambda config: {"default": rules})


@pytest.fixture
async def fake(env):
    f = await FakeReddit(bot=BOT, client_id=SECRETS["REDDIT_CLIENT_ID"],
                         client_secret=SECRETS["REDDIT_CLIENT_SECRET"], password=SECRETS["REDDIT_PASSWORD"]).start()
    yield f
    await f.stop()
    assert f.unknown == [], f"the adapter called endpoints the fake does not know: {f.unknown}"


def config(tmp_path, fake, community=None, **reddit) -> Config:
    return Config.model_validate({
        "store": {"path": str(tmp_path / "pharmamod.db")},
        "rules": {"reload_seconds": 0},
        "service": {"metrics_port": 0},
        "outbox": {"backoff_seconds": 0.05, "poll_seconds": 0.05},
        "community": {"t2d": {"country": "NL", "pv_routes": ["pv"], **(community or {})}},
        "routes": {"pv": {"type": "jsonl", "path": str(tmp_path / "pv.jsonl")}},
        "adapters": {"reddit": {"oauth_url": fake.url, "reddit_url": fake.url, "communities": {"t2d": SUB},
                                "poll_seconds": 0.05, "edit_check_seconds": 0, "reconnect_seconds": 0.05,
                                **reddit}},
        "base": tmp_path,
    })


def db(tmp_path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "pharmamod.db")
    conn.row_factory = sqlite3.Row
    return conn


async def log_read_past(fake: FakeReddit, entry_id: str) -> None:
    """The adapter polled the mod log with `before` = this entry: it has handled it."""
    deadline = time.monotonic() + 10
    while not any(b.get("before") == entry_id for b in fake.rec.called("GET", "/about/log")):
        assert time.monotonic() < deadline, "the mod log was not read past " + entry_id
        await fake.rec.wait_for("GET", "/about/log", count=len(fake.rec.called("GET", "/about/log")) + 1)


async def test_a_comment_naming_a_drug_is_removed_with_a_mod_note(tmp_path, fake):
    post = fake.add_submission(SUB, "Walking group this Saturday")
    calm = fake.add_comment(SUB, "great walk today, see you all next week", parent=post)
    held = fake.add_comment(SUB, "anyone else on ozempic? how long did the nausea last?", parent=post,
                            author="lee")
    async with running(config(tmp_path, fake)):
        removed = await fake.rec.wait_for("POST", "/api/remove")
        notice = await fake.rec.wait_for("POST", "/modactions/removal_comment_message")
    assert [r["id"] for r in removed] == [held]
    case = db(tmp_path).execute("SELECT * FROM cases").fetchone()
    assert case["message_id"] == held and case["state"] == "held" and case["community"] == "t2d"
    (note,) = fake.form_json("/modactions/removal_reasons")
    assert note["item_ids"] == [held] and note["mod_note"].startswith(f"pharmamod case #{case['id']}: ")
    assert len(note["mod_note"]) <= 100 and json.loads(case["rules"])[0] in note["mod_note"]
    msg = json.loads(notice[0]["json"])
    assert msg["item_id"] == [held] and msg["type"] == "private" and "held for review" in msg["message"]
    row = db(tmp_path).execute("SELECT * FROM messages WHERE message_id = ?", (held,)).fetchone()
    assert (row["channel"], row["author_id"], row["reply_to"]) == (SUB, "lee", post)
    assert row["permalink"] == fake.url + fake.items[held]["permalink"]
    assert db(tmp_path).execute("SELECT action FROM messages WHERE message_id = ?", (calm,)).fetchone()[0] == "allow"
    assert not fake.items[calm]["removed"] and fake.items[held]["removed"]


async def test_a_reply_under_a_post_naming_a_drug_opens_a_pv_case(tmp_path, fake):
    """The post was there before the bot started (skipped), so the reply's context is fetched."""
    post = fake.add_submission(SUB, "Started metformin last week", "how is it going for you all?")
    async with running(config(tmp_path, fake, skip_existing=True)):
        # The second poll of new posts asks for what came after the skipped post.
        await fake.rec.wait_for("GET", "/new", count=2)
        reply = fake.add_comment(SUB, "it gave me a terrible rash and I threw up all night", parent=post,
                                 author="kim")
        await fake.rec.wait_for("POST", "/api/remove")
    assert [c["id"] for c in fake.rec.called("GET", "/api/info")] == [post]
    pv = db(tmp_path).execute("SELECT * FROM pv_cases").fetchone()
    assert pv["message_id"] == reply and pv["platform"] == "reddit" and "adverse_event" in pv["kinds"]
    data = json.loads(pv["data"])
    assert [d["canonical"] for d in data["suspect_drugs"]] == ["metformin"]  # named only in the post
    assert "rash" in data["events"]
    assert db(tmp_path).execute("SELECT count(*) FROM messages WHERE message_id = ?", (post,)).fetchone()[0] == 0
    assert (tmp_path / "pv.jsonl").exists()


async def test_a_moderators_approval_in_the_modqueue_becomes_a_decision(tmp_path, fake):
    held = fake.add_comment(SUB, "has anyone tried ozempic for this?")
    async with running(config(tmp_path, fake)):
        await fake.rec.wait_for("POST", "/api/remove")
        case_id = await until(lambda: db(tmp_path).execute("SELECT id FROM cases").fetchone())
        fake.mod_action("anna_mod", "approvecomment", held)
        # The decision restores the item: pharmamod approves it too (the same state, idempotent).
        await fake.rec.wait_for("POST", "/api/approve")
        fake.mod_action("ben_mod", "approvecomment", held)  # already approved: nothing to record
        # Removed on Reddit after the approval: the core refuses, and the audit shows the disagreement.
        late = fake.mod_action("carl_mod", "removecomment", held)
        await log_read_past(fake, late)
        later = fake.add_comment(SUB, "and metformin?")  # the streams still run
        await fake.rec.wait_for("POST", "/api/remove", count=2)
    conn = db(tmp_path)
    (d,) = conn.execute("SELECT * FROM decisions").fetchall()
    assert (d["case_id"], d["actor"], d["actor_platform"], d["to_state"], d["reason_code"]) == \
        (case_id[0], "anna_mod", "reddit", "approved", "compliant")
    assert d["note"] == "approved in Reddit's modqueue (comment)"
    assert conn.execute("SELECT state FROM cases WHERE id = ?", (case_id[0],)).fetchone()[0] == "approved"
    audit = conn.execute("SELECT actor, data FROM audit WHERE kind = 'decision'").fetchone()
    assert audit["actor"] == "reddit:anna_mod"
    (refused,) = conn.execute("SELECT actor, data FROM audit WHERE kind = 'refused'").fetchall()
    assert refused["actor"] == "reddit:carl_mod" and json.loads(refused["data"])["action"] == "reject"
    assert fake.items[later]["removed"]


async def test_a_moderators_removal_rejects_and_the_bots_own_actions_are_not_decisions(tmp_path, fake):
    first = fake.add_comment(SUB, "anyone else on ozempic?")
    second = fake.add_comment(SUB, "metformin works for me")
    async with running(config(tmp_path, fake)):
        await fake.rec.wait_for("POST", "/api/remove", count=2)
        bot_entries = [e["data"]["id"] for e in fake.log if e["data"]["mod"] == BOT]
        assert len(bot_entries) == 2
        auto = fake.mod_action("AutoModerator", "approvecomment", first)
        await log_read_past(fake, auto)
        conn = db(tmp_path)
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
        assert {r[0] for r in conn.execute("SELECT state FROM cases")} == {"held"}
        fake.mod_action("carl_mod", "spamcomment", second)
        await until(lambda: db(tmp_path).execute("SELECT count(*) FROM decisions").fetchone()[0] == 1)
    (d,) = db(tmp_path).execute("SELECT * FROM decisions").fetchall()
    assert (d["actor"], d["actor_platform"], d["to_state"], d["reason_code"]) == \
        ("carl_mod", "reddit", "rejected", "spam")
    assert not fake.rec.called("POST", "/api/approve")


async def test_a_429_on_remove_is_retried_and_the_comment_still_removed(tmp_path, fake):
    fake.fail_once("POST", "/api/remove", 429, **{"Retry-After": "0.1"})
    held = fake.add_comment(SUB, "anyone else on ozempic?")
    async with running(config(tmp_path, fake)):
        tries = await fake.rec.wait_for("POST", "/api/remove", count=2)
        await fake.rec.wait_for("POST", "/modactions/removal_reasons")
        row = await until(lambda: db(tmp_path).execute(
            "SELECT state, attempts FROM outbox WHERE kind = 'hold' AND state = 'delivered'").fetchone())
    assert [t["id"] for t in tries] == [held, held] and tuple(row) == ("delivered", 2)
    assert fake.items[held]["removed"]
    assert not db(tmp_path).execute("SELECT action_error FROM cases").fetchone()[0]


async def test_notices_by_reply_and_the_bots_own_comments_are_not_screened(tmp_path, fake):
    held = fake.add_comment(SUB, "anyone else on ozempic?")
    async with running(config(tmp_path, fake, notify="reply")):
        (reply,) = await fake.rec.wait_for("POST", "/api/comment")
        # The bot's reply shows in the comment listing like any other comment.
        await fake.rec.wait_for("GET", "/comments", count=len(fake.rec.called("GET", "/comments")) + 2)
    assert reply["thing_id"] == held and "held for review" in reply["text"]
    assert not fake.rec.called("POST", "/modactions/removal_comment_message")
    authors = {r[0] for r in db(tmp_path).execute("SELECT author_id FROM messages")}
    assert BOT not in authors and len(fake.rec.called("POST", "/api/remove")) == 1


async def test_a_failing_listing_is_read_again_and_the_run_goes_on(tmp_path, fake, caplog):
    fake.fail_once("GET", "/comments", 403)
    held = fake.add_comment(SUB, "anyone else on ozempic?")
    async with running(config(tmp_path, fake)):
        (removed,) = await fake.rec.wait_for("POST", "/api/remove")
    assert removed["id"] == held
    assert "reddit comments: Reddit answered 403" in caplog.text and "reading again in" in caplog.text


async def test_edits_are_screened_again(tmp_path, fake):
    calm = fake.add_comment(SUB, "great walk today")
    async with running(config(tmp_path, fake, edit_check_seconds=0.05)):
        await until(lambda: db(tmp_path).execute("SELECT 1 FROM messages WHERE message_id = ?", (calm,)).fetchone())
        fake.edit(calm, "great walk today, the ozempic helps")
        (removed,) = await fake.rec.wait_for("POST", "/api/remove")
    assert removed["id"] == calm
    assert db(tmp_path).execute("SELECT versions FROM messages WHERE message_id = ?", (calm,)).fetchone()[0] == 2


async def test_a_restart_reads_the_subreddit_again_and_acts_once(tmp_path, fake):
    fake.add_comment(SUB, "anyone else on ozempic?")
    cfg = config(tmp_path, fake)
    async with running(cfg):
        await fake.rec.wait_for("POST", "/modactions/removal_comment_message")
    reads = len(fake.rec.called("GET", "/comments"))
    async with running(cfg):
        await fake.rec.wait_for("GET", "/comments", count=reads + 2)
        await log_read_past(fake, fake.log[-1]["data"]["id"])
    assert len(fake.rec.called("POST", "/api/remove")) == 1
    conn = db(tmp_path)
    assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
    assert conn.execute("SELECT state FROM cases").fetchone()[0] == "held"


@pytest.mark.parametrize("moderators, environ, community, expect", [
    ([{"name": "someone_else", "mod_permissions": ["all"]}], {}, {}, f"is not a moderator of r/{SUB}"),
    ([{"name": BOT, "mod_permissions": ["wiki", "mail"]}], {}, {}, "without the posts permission"),
    (None, {"REDDIT_PASSWORD": None}, {}, "REDDIT_PASSWORD is not set"),
    (None, {"REDDIT_PASSWORD": "wrong"}, {}, "refused the login of u/pharmamod-bot .*REDDIT_PASSWORD"),
    (None, {"REDDIT_CLIENT_SECRET": "wrong"}, {}, "refused the app credentials .*REDDIT_CLIENT_SECRET"),
    (None, {}, {"review_room": f"reddit:{SUB}"}, "set review_room to a Discord or Telegram room"),
])
async def test_start_up_fails_with_a_clear_error(tmp_path, fake, monkeypatch, moderators, environ, community,
                                                 expect):
    if moderators is not None:
        fake.moderators = {SUB: moderators}
    for name, value in environ.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    runner = Runner(config(tmp_path, fake, community=community))
    with pytest.raises(AdapterError, match=expect):
        await asyncio.wait_for(runner.run(), 10)
    assert [(m, p) for m, p, _ in fake.rec.calls if p.startswith(("/r/", "/api/")) and "access_token" not in p
            and not p.endswith("/about/moderators")] == []


async def test_secrets_never_reach_the_logs_or_the_store(tmp_path, fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_comment(SUB, "anyone else on ozempic?")
    fake.fail_once("POST", "/api/remove", 429)
    async with running(config(tmp_path, fake)):
        await fake.rec.wait_for("POST", "/modactions/removal_comment_message")
    (token,) = fake.rec.called("POST", "/api/v1/access_token")
    assert token["password"] == SECRETS["REDDIT_PASSWORD"]  # it was used...
    conn = db(tmp_path)
    stored = "\n".join(str(tuple(r)) for t in ("audit", "outbox", "messages", "cases")
                       for r in conn.execute(f"SELECT * FROM {t}"))
    assert "rate limit" in stored and caplog.records  # ...and the logs and the store were written
    for value in (SECRETS["REDDIT_CLIENT_SECRET"], SECRETS["REDDIT_PASSWORD"], TOKEN):
        assert value not in caplog.text and value not in stored
