"""The Telegram adapter end to end: the real Runner on a real SQLite file, python-telegram-bot
talking HTTP to the fake Bot API in tests/fakes/telegram.py. Assertions are on what the fake
received and on the store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time

import pytest

import bot.runner
from adapters import ActionError, AdapterError
from adapters.telegram import CLICK_REASON, TelegramAdapter, keyboard
from bot.cases import REASONS
from bot.config import Config, ConfigError
from bot.outbox import Delivery
from bot.runner import Runner
from tests.fakes import running, until
from tests.fakes.telegram import BOT, FakeTelegram, user

GROUP = -1001000000001  # the screened patient group
MODS = -1001000000999  # the moderators' review room
ELSEWHERE = -1001000000555  # a group the bot is in but does not screen
ANNA = user(501, "Anna", "anna_t2d")  # a member
MARA = user(601, "Mara", "mara_mod")  # an admin of the patient group
OTTO = user(701, "Otto")  # an admin of the review room only
TOKEN_ENV = "PHARMAMOD_TELEGRAM_TOKEN"

_RULESETS: dict = {}


@pytest.fixture(autouse=True)
def _rules_once(monkeypatch):
    """Compile the rule set once for the file (about 1 s each); the Runner is otherwise untouched."""
    real = bot.runner.load_rulesets

    def cached(config):
        if not _RULESETS:
            _RULESETS.update(real(config))
        return _RULESETS

    monkeypatch.setattr(bot.runner, "load_rulesets", cached)


@pytest.fixture
async def fake(monkeypatch):
    f = await FakeTelegram().start()
    f.add_group(GROUP, "T2D Support NL", username="t2d_nl", admins=(MARA["id"],))
    f.add_group(MODS, "T2D moderators", admins=(MARA["id"], OTTO["id"]))
    f.add_group(ELSEWHERE, "Coffee corner")
    monkeypatch.setenv(TOKEN_ENV, f.token)
    yield f
    await f.stop()


def make_config(tmp_path, fake, **telegram) -> Config:
    return Config.model_validate({
        "store": {"path": "pharmamod.db"},
        "rules": {"reload_seconds": 0},
        "service": {"metrics_port": 0},
        "outbox": {"backoff_seconds": 0.05, "poll_seconds": 0.05},
        "community": {"t2d-support": {"country": "NL", "review_room": f"telegram:{MODS}"}},
        "adapters": {"telegram": {"token_env": TOKEN_ENV, "api_url": fake.api_url,
                                  "communities": {"t2d-support": GROUP}, "poll_timeout": 1, **telegram}},
        "base": tmp_path,
    })


def store(tmp_path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "pharmamod.db")


def one(tmp_path, sql: str, *args):
    with contextlib.closing(store(tmp_path)) as db:
        return db.execute(sql, args).fetchone()


def review_ref(tmp_path, case_id: int):
    row = one(tmp_path, "SELECT ref FROM review_posts WHERE case_id = ?", case_id)
    return row and row[0]


def to_chat(fake, method: str, chat: int) -> list[dict]:
    return [p for p in fake.rec.called(method) if int(p.get("chat_id", 0)) == chat]


async def held_and_posted(fake, tmp_path, text: str = "I switched to Ozempic last week", **kw):
    """Anna posts `text`; returns (her message, the review post) once the post's ref is stored."""
    msg = fake.post(GROUP, ANNA, text, **kw)
    await fake.rec.wait_for("deleteMessage")
    await until(lambda: review_ref(tmp_path, 1), what="the review post's ref")
    return msg, fake.sent(MODS)[0]


def buttons(message: dict) -> list[str]:
    return [b["callback_data"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


# -- screening and holding ---------------------------------------------------------------------------


async def test_drug_name_is_deleted_and_posted_for_review_with_four_buttons(fake, tmp_path):
    async with running(make_config(tmp_path, fake)):
        fake.post(ELSEWHERE, ANNA, "I switched to Ozempic last week")  # not a screened group: ignored
        hello = fake.post(GROUP, ANNA, "Hello everyone, how is your week?")
        held = fake.post(GROUP, ANNA, "I switched to Ozempic last week", reply_to=hello)
        deletes = await fake.rec.wait_for("deleteMessage")
        post = (await until(lambda: to_chat(fake, "sendMessage", MODS), what="a review post"))[0]
        await until(lambda: review_ref(tmp_path, 1), what="the review post's ref")
        notice = (await until(lambda: to_chat(fake, "sendMessage", GROUP), what="the author's notice"))[0]

    assert [(int(d["chat_id"]), int(d["message_id"])) for d in deletes] == [(GROUP, held["message_id"])]
    assert (GROUP, held["message_id"]) in fake.deleted and (GROUP, hello["message_id"]) in fake.messages
    kb = json.loads(post["reply_markup"])["inline_keyboard"]
    assert [b["text"] for row in kb for b in row] == ["Approve", "Reject", "Escalate to PV", "Not an AE"]
    assert [b["callback_data"] for row in kb for b in row] == ["pm:approve:1", "pm:reject:1", "pm:escalate:1",
                                                               "pm:not_ae:1"]
    card = post["text"]
    assert "Case #1 · HELD" in card and "I switched to Ozempic last week" in card
    assert "drug.named" in card and "Respond by" in card and "https://t.me/t2d_nl/" in card
    assert review_ref(tmp_path, 1) == f"{MODS}:{fake.sent(MODS)[0]['message_id']}"
    assert notice["parse_mode"] == "HTML" and f'<a href="tg://user?id={ANNA["id"]}">Anna</a>' in notice["text"]

    with contextlib.closing(store(tmp_path)) as db:
        rows = db.execute("SELECT platform, community, channel, message_id, author_id, author_name, permalink, "
                          "reply_to, action, created_at FROM messages ORDER BY id").fetchall()
    assert len(rows) == 2  # the message from the unscreened group never reached the store
    assert rows[1][:9] == ("telegram", "t2d-support", str(GROUP), f"{GROUP}:{held['message_id']}", "501", "Anna",
                           f"https://t.me/t2d_nl/{held['message_id']}", f"{GROUP}:{hello['message_id']}", "hold")
    assert rows[1][9] and rows[0][8] == "allow"


async def test_adverse_event_card_shows_pv_flags_and_due_date(fake, tmp_path):
    async with running(make_config(tmp_path, fake)):
        _, post = await held_and_posted(fake, tmp_path, "since I started metformin I get headaches")
    assert "PV case" in post["text"] and "adverse_event" in post["text"] and "Report due 20" in post["text"]
    assert "ae.linked" in post["text"]


async def test_edit_that_adds_a_drug_name_is_held(fake, tmp_path):
    async with running(make_config(tmp_path, fake)):
        msg = fake.post(GROUP, ANNA, "Has anyone tried the new pen?")
        await until(lambda: one(tmp_path, "SELECT count(*) FROM messages") == (1,), what="the first version stored")
        assert not fake.rec.called("deleteMessage")
        fake.edit(msg, "Has anyone tried the new Ozempic pen?")
        deletes = await fake.rec.wait_for("deleteMessage")
    assert int(deletes[0]["message_id"]) == msg["message_id"] and (GROUP, msg["message_id"]) in fake.deleted
    with contextlib.closing(store(tmp_path)) as db:
        assert db.execute("SELECT versions, action FROM messages").fetchone() == (2, "hold")
        assert db.execute("SELECT state FROM cases").fetchone() == ("held",)


async def test_a_group_upgraded_to_a_supergroup_is_still_screened(fake, tmp_path, caplog):
    old, new = -4001, -1004001
    fake.add_group(old, "Small group")
    fake.add_group(new, "Small group")
    config = make_config(tmp_path, fake, communities={"t2d-support": [GROUP, old]})
    async with running(config):
        fake.push_update(message={"message_id": 1, "date": int(time.time()), "chat": fake.chats[old], "from": ANNA,
                                  "migrate_to_chat_id": new})
        msg = fake.post(new, ANNA, "I switched to Ozempic last week")
        await until(lambda: (new, msg["message_id"]) in fake.deleted, what="the delete in the new supergroup")
    assert f"became supergroup {new}" in caplog.text


async def test_flood_control_on_delete_is_retried_and_the_message_still_deleted(fake, tmp_path):
    fake.flood(times=1, retry_after=0.2)
    async with running(make_config(tmp_path, fake)):
        msg = fake.post(GROUP, ANNA, "I switched to Ozempic last week")
        await fake.rec.wait_for("deleteMessage", count=2)
        await until(lambda: (GROUP, msg["message_id"]) in fake.deleted, what="the delete")
        await until(lambda: one(tmp_path, "SELECT state FROM outbox WHERE kind = 'hold'") == ("delivered",),
                    what="the hold delivered")
    with contextlib.closing(store(tmp_path)) as db:
        assert db.execute("SELECT attempts FROM outbox WHERE kind = 'hold'").fetchone() == (2,)
        assert db.execute("SELECT action_error FROM cases").fetchone() == ("",)


async def test_message_too_old_to_delete_is_shown_on_the_case_and_the_review_post(fake, tmp_path):
    async with running(make_config(tmp_path, fake)):
        fake.too_old.add((GROUP, 1000))  # the first message of the group, posted 49 hours ago
        msg = fake.post(GROUP, ANNA, "I switched to Ozempic last week", age_seconds=49 * 3600)
        assert msg["message_id"] == 1000
        edit = (await fake.rec.wait_for("editMessageText"))[0]
        await until(lambda: one(tmp_path, "SELECT state FROM outbox WHERE kind = 'notify'") == ("delivered",),
                    what="the notice handled")
    assert (GROUP, 1000) in fake.messages  # still there: a person must remove it
    assert not to_chat(fake, "sendMessage", GROUP)  # so its author is not told it was held
    with contextlib.closing(store(tmp_path)) as db:
        error = db.execute("SELECT action_error FROM cases").fetchone()[0]
        assert db.execute("SELECT state, attempts FROM outbox WHERE kind = 'hold'").fetchone() == ("dead", 1)
        assert db.execute("SELECT count(*) FROM audit WHERE kind = 'action_failed'").fetchone() == (1,)
    assert "older than 48 hours" in error and "remove it by hand" in error
    assert "ACTION FAILED" in edit["text"] and "older than 48 hours" in edit["text"]
    assert int(edit["message_id"]) == fake.sent(MODS)[0]["message_id"]


# -- review buttons ------------------------------------------------------------------------------------


async def test_admin_of_the_group_approves_and_the_message_is_reposted(fake, tmp_path):
    async with running(make_config(tmp_path, fake)):
        _, post = await held_and_posted(fake, tmp_path)
        fake.click(MARA, "pm:approve:1", post)
        answer = (await fake.rec.wait_for("answerCallbackQuery"))[0]
        repost = await until(lambda: [p for p in to_chat(fake, "sendMessage", GROUP) if "restored" in p["text"]],
                             what="the repost")
        edit = (await fake.rec.wait_for("editMessageText"))[0]
        fake.click(MARA, "pm:approve:1", fake.sent(MODS)[0])  # a second click on the edited post
        again = (await fake.rec.wait_for("answerCallbackQuery", count=2))[1]

    assert answer["text"] == "✓ Case #1 is now approved."
    assert repost[0]["text"] == "Anna wrote (restored after review): I switched to Ozempic last week"
    assert int(edit["chat_id"]) == MODS and int(edit["message_id"]) == post["message_id"]
    assert "APPROVED" in edit["text"] and "approved by telegram:601 (compliant)" in edit["text"]
    assert buttons(fake.sent(MODS)[0]) == []  # nothing left to decide
    assert "approve is not possible" in again["text"]
    with contextlib.closing(store(tmp_path)) as db:
        assert db.execute("SELECT to_state, actor, actor_platform, reason_code, note FROM decisions").fetchall() == [
            ("approved", "601", "telegram", "compliant", "decided in Telegram by Mara (@mara_mod)")]
        assert db.execute("SELECT state FROM cases").fetchone() == ("approved",)


async def test_reopening_an_approved_case_removes_the_repost(fake, tmp_path):
    """Approve reposts the message; a moderator who reopens the case holds it again, and what is
    up in the group then is the repost: that is what gets deleted."""
    from bot.cases import Actor

    async with running(make_config(tmp_path, fake)) as runner:
        _, post = await held_and_posted(fake, tmp_path)
        fake.click(MARA, "pm:approve:1", post)
        repost = await until(lambda: [m for (c, _), m in fake.messages.items() if c == GROUP
                                      and "restored" in m.get("text", "")], what="the repost")
        await until(lambda: one(tmp_path, "SELECT reposted FROM cases")[0] != "[]", what="the repost recorded")
        await runner.decide(1, "reopen", Actor("mara", platform="telegram", verified=True), "wrong_decision")
        await fake.rec.wait_for("deleteMessage", count=2)
        await until(lambda: one(tmp_path, "SELECT reposted FROM cases")[0] == "[]", what="the reposts cleared")
    deleted = [(int(p["chat_id"]), int(p["message_id"])) for p in fake.rec.called("deleteMessage")]
    assert deleted[-1] == (GROUP, repost[0]["message_id"])
    assert (GROUP, repost[0]["message_id"]) not in fake.messages
    assert one(tmp_path, "SELECT state FROM cases")[0] == "held"


async def test_click_by_someone_who_is_not_admin_of_the_group_is_refused(fake, tmp_path):
    async with running(make_config(tmp_path, fake)):
        _, post = await held_and_posted(fake, tmp_path)
        fake.click(OTTO, "pm:reject:1", post)  # admin of the review room, not of the patient group
        answer = (await fake.rec.wait_for("answerCallbackQuery"))[0]
        await until(lambda: one(tmp_path, "SELECT count(*) FROM audit WHERE kind = 'refused'")[0],
                    what="the refusal in the audit log")
    assert answer["text"] == "Refused: only admins of T2D Support NL can decide."
    assert answer["show_alert"] == "true"
    member_checks = [(int(p["chat_id"]), int(p["user_id"])) for p in fake.rec.called("getChatMember")]
    assert (GROUP, OTTO["id"]) in member_checks
    with contextlib.closing(store(tmp_path)) as db:
        assert db.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
        assert db.execute("SELECT state FROM cases").fetchone() == ("held",)
        actor, subject, data = db.execute("SELECT actor, subject, data FROM audit WHERE kind = 'refused'").fetchone()
    assert (actor, subject) == ("telegram:701", "case:1")
    assert json.loads(data) == {"action": "reject", "why": "only admins of T2D Support NL can decide"}


async def test_escalate_then_not_an_ae(fake, tmp_path):
    async with running(make_config(tmp_path, fake)):
        _, post = await held_and_posted(fake, tmp_path)
        fake.click(MARA, "pm:escalate:1", post)
        await fake.rec.wait_for("editMessageText")
        assert buttons(fake.sent(MODS)[0]) == ["pm:approve:1", "pm:reject:1", "pm:not_ae:1"]
        fake.click(MARA, "pm:not_ae:1", fake.sent(MODS)[0])
        answers = await fake.rec.wait_for("answerCallbackQuery", count=2)
        await fake.rec.wait_for("editMessageText", count=2)  # the core updates the post for "not an AE" too
    assert answers[0]["text"] == "✓ Case #1 is now escalated."
    assert answers[1]["text"].startswith("✓ PV case ") and answers[1]["text"].endswith(" marked not an AE.")
    with contextlib.closing(store(tmp_path)) as db:
        assert db.execute("SELECT to_state, reason_code FROM decisions").fetchall() == [
            ("escalated", "pharmacovigilance")]
        assert db.execute("SELECT status, status_reason FROM pv_cases").fetchone() == (
            "not_ae", "marked not an AE in Telegram by Mara (@mara_mod)")
    assert "(not_ae)" in fake.sent(MODS)[0]["text"]


async def test_reminder_answers_the_review_post(fake, tmp_path):
    async with running(make_config(tmp_path, fake)) as runner:
        _, post = await held_and_posted(fake, tmp_path)
        remind = Delivery(99, "remind:case:1", "adapter:telegram", "remind", "case:1",
                          {"room": f"telegram:{MODS}", "case_id": 1, "community": "t2d-support",
                           "respond_by": "2030-01-01T00:00:00Z"}, attempts=1)
        detail = await runner.adapters["telegram"].perform(remind)
    sent = to_chat(fake, "sendMessage", MODS)[-1]
    assert "Reminder: case #1" in sent["text"] and "2030-01-01" in sent["text"]
    assert json.loads(sent["reply_parameters"])["message_id"] == post["message_id"]
    assert detail == {"reminder": f"{MODS}:{fake.sent(MODS)[-1]['message_id']}"}


# -- start-up, connection, secrets -------------------------------------------------------------------


async def _adapter_gives_up(tmp_path, fake, trigger=None) -> str:
    """Run until the adapter's `start` raises (after `trigger()` once it polls); the AdapterError text."""
    runner = Runner(make_config(tmp_path, fake))
    adapter, gave_up = runner.adapters["telegram"], asyncio.Event()
    real_start = adapter.start

    async def start(core):  # the adapter's own start, and a signal when it returns
        try:
            await real_start(core)
        finally:
            gave_up.set()

    adapter.start = start
    task = asyncio.create_task(runner.run())
    if trigger is not None:
        await fake.rec.wait_for("getUpdates")
        trigger()
    await asyncio.wait_for(gave_up.wait(), 10)
    with pytest.raises(AdapterError) as exc:  # the run ends by itself with the adapter's error
        await asyncio.wait_for(task, 10)
    if trigger is None:
        assert not fake.rec.called("getUpdates")  # it never started polling
    return str(exc.value)


async def test_start_refused_when_the_bot_is_not_admin_in_the_group(fake, tmp_path):
    fake.bot_member[GROUP] = {"status": "member", "user": BOT}
    error = await _adapter_gives_up(tmp_path, fake)
    assert f"group {GROUP} (community 't2d-support')" in error
    assert "not an administrator" in error and "can_delete_messages" in error


async def test_start_refused_when_the_bot_may_not_delete(fake, tmp_path):
    from tests.fakes.telegram import ADMIN_RIGHTS
    fake.bot_member[GROUP] = {"status": "administrator", "user": BOT, **ADMIN_RIGHTS, "can_delete_messages": False}
    error = await _adapter_gives_up(tmp_path, fake)
    assert f"group {GROUP}" in error and "without the right \"Delete messages\"" in error


async def test_start_refused_when_the_bot_cannot_post_in_the_review_room(fake, tmp_path):
    fake.bot_member[MODS] = {"status": "left", "user": BOT}
    error = await _adapter_gives_up(tmp_path, fake)
    assert f"review room {MODS} (of 't2d-support')" in error and "cannot post there" in error


async def test_start_refused_without_a_token_or_with_a_rejected_one(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV)
    assert TOKEN_ENV in await _adapter_gives_up(tmp_path, fake)
    monkeypatch.setenv(TOKEN_ENV, "7000001:not-the-right-token")
    error = await _adapter_gives_up(tmp_path, fake)
    assert "rejected the bot token in PHARMAMOD_TELEGRAM_TOKEN" in error and "not-the-right-token" not in error


async def test_a_token_revoked_while_running_ends_the_adapter_loudly(fake, tmp_path):
    def revoke():
        fake.token = "7000001:revoked"
        fake.new_update.set()  # end the parked poll: the next one is refused

    error = await _adapter_gives_up(tmp_path, fake, trigger=revoke)
    assert "polling stopped" in error and TOKEN_ENV in error


async def test_the_token_never_appears_in_logs_or_the_store(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with running(make_config(tmp_path, fake)):
        _, post = await held_and_posted(fake, tmp_path)
        fake.click(MARA, "pm:reject:1", post)
        await fake.rec.wait_for("editMessageText")
    assert any("HTTP Request: POST" in r.getMessage() for r in caplog.records)  # httpx logs every URL ...
    assert "/bot<token>/" in caplog.text  # ... with the token replaced
    assert fake.token not in caplog.text
    assert not [r for r in caplog.records if fake.token in r.getMessage() or fake.token in (r.exc_text or "")]
    with contextlib.closing(store(tmp_path)) as db:
        assert fake.token not in "\n".join(db.iterdump())


async def test_polling_reconnects_after_a_dropped_connection(fake, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="pharmamod.telegram")
    async with running(make_config(tmp_path, fake)):
        await fake.rec.wait_for("getUpdates")
        fake.drop_polls = 1  # the poll after the next one loses its connection
        first = fake.post(GROUP, ANNA, "I switched to Ozempic last week")
        await until(lambda: any("polling failed" in r.getMessage() for r in caplog.records), what="the drop")
        second = fake.post(GROUP, ANNA, "Has anyone tried Ozempic?")
        await until(lambda: (GROUP, second["message_id"]) in fake.deleted, what="the message after reconnecting")
    assert (GROUP, first["message_id"]) in fake.deleted


async def test_an_update_is_acknowledged_only_once_it_is_stored(fake, tmp_path):
    """getUpdates' offset tells Telegram to forget earlier updates: it must not move past a message
    the store does not have yet, or a crash at that moment would lose the message for good."""
    stored_when_acked: list[tuple[int, set[str]]] = []
    real = fake.m_getUpdates

    async def watching(p, request):
        offset = int(p.get("offset", 0))
        if offset and (tmp_path / "pharmamod.db").exists():
            with contextlib.closing(store(tmp_path)) as db:
                ids = {r[0] for r in db.execute("SELECT message_id FROM messages")}
            stored_when_acked.append((offset, ids))
        return await real(p, request)

    fake.m_getUpdates = watching
    async with running(make_config(tmp_path, fake)):
        await fake.rec.wait_for("getUpdates")
        posted = [fake.post(GROUP, ANNA, f"good morning all, day {i}") for i in range(3)]
        uids = [u["update_id"] for u in fake.updates]
        await until(lambda: one(tmp_path, "SELECT count(*) FROM messages")[0] == 3, what="the messages stored")
        await until(lambda: any(o > max(uids) for o, _ in stored_when_acked), what="the acknowledgement")
    for offset, ids in stored_when_acked:
        for uid, m in zip(uids, posted):
            if offset > uid:
                assert f"{GROUP}:{m['message_id']}" in ids, (offset, uid, ids)


async def test_deliveries_after_stop_still_reach_telegram(fake, tmp_path):
    """The core drains its outbox after stopping the adapters: perform must still work then."""
    async with running(make_config(tmp_path, fake)) as runner:
        msg = fake.post(GROUP, ANNA, "Good morning all!")
        await until(lambda: one(tmp_path, "SELECT count(*) FROM messages") == (1,), what="the message stored")
    adapter = runner.adapters["telegram"]
    payload = {"message_id": f"{GROUP}:{msg['message_id']}", "channel": str(GROUP), "case_id": 1}
    hold = Delivery(1, "hold:x", "adapter:telegram", "hold", "case:1", payload, attempts=1)
    assert await adapter.perform(hold) == {"deleted": f"{GROUP}:{msg['message_id']}"}
    assert (GROUP, msg["message_id"]) in fake.deleted
    with pytest.raises(ActionError) as exc:  # deleted already: Telegram says not found
        await adapter.perform(hold)
    assert exc.value.permanent and "the message is gone" in str(exc.value)
    again = Delivery(1, "hold:x", "adapter:telegram", "hold", "case:1", payload, attempts=2)
    assert (await adapter.perform(again))["already"] is True  # a retry after a cut-off attempt


# -- configuration and the pieces ----------------------------------------------------------------------


def test_settings_are_checked_with_clear_errors(tmp_path):
    with pytest.raises(ConfigError) as exc:
        TelegramAdapter("telegram", {"communities": {"a": -1}, "tokn_env": "X"})
    assert "[adapters.telegram.tokn_env] Extra inputs are not permitted" in str(exc.value)
    with pytest.raises(ConfigError, match=r"\[adapters.telegram.communities\]"):
        TelegramAdapter("telegram", {"communities": {}})
    with pytest.raises(ConfigError, match="mapped to both"):
        TelegramAdapter("telegram", {"communities": {"a": -1, "b": [-2, -1]}})
    with pytest.raises(ConfigError, match="must be https"):
        TelegramAdapter("telegram", {"communities": {"a": -1}, "api_url": "http://api.example.com/bot"})
    config = Config.model_validate({"adapters": {"telegram": {"communities": {"a": "x"}}}, "base": tmp_path})
    with pytest.raises(ConfigError, match=r"\[adapters.telegram.communities.a"):
        Runner(config)
    a = TelegramAdapter("telegram", {"communities": {"a": -1, "b": [-2, -3]}})
    assert a.chats == {-1: "a", -2: "b", -3: "b"} and a.settings.token_env == TOKEN_ENV


def test_buttons_follow_the_case_state():
    def shown(state, pv=None):
        kb = keyboard({"case_id": 9, "state": state, "pv": pv})
        return [b.callback_data for row in kb.inline_keyboard for b in row] if kb else []

    assert shown("held") == ["pm:approve:9", "pm:reject:9", "pm:escalate:9", "pm:not_ae:9"]
    assert shown("escalated") == ["pm:approve:9", "pm:reject:9", "pm:not_ae:9"]
    assert shown("approved") == []
    assert shown("rejected", pv={"status": "open"}) == ["pm:not_ae:9"]
    assert all(code in REASONS[d] for d, code in CLICK_REASON.items())
