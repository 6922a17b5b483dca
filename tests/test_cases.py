"""The case lifecycle on a real SQLite file: idempotent recording, edits screened again, PV cases
with day zero and deadlines, moderator decisions checked and audited, response-time reminders."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from bot import audit
from bot.cases import Actor, CaseBook, Refused, breaches
from bot.config import Config
from bot.engine import screen
from bot.models import Author, Message
from bot.store import open_store

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def book(tmp_path):
    cfg = Config.model_validate({
        "community": {"t2d": {"moderators": ["anna"], "country": "NL", "pv_routes": ["pv"],
                              "medinfo_routes": ["mi"], "respond_within_hours": 48, "remind_before_hours": 12}},
        "routes": {"pv": {"type": "jsonl", "path": "pv.jsonl"}, "mi": {"type": "jsonl", "path": "mi.jsonl"}},
    })
    return CaseBook(open_store(tmp_path / "s.db"), cfg)


def _msg(text, mid="m1", **kw):
    return Message(platform="discord", community="t2d", message_id=mid, text=text,
                   author=Author(id="u1", display_name="kim"), **kw)


def _record(book, rules, msg, at=T0):
    return book.record(msg, screen(msg, rules), seen_at=at)


def _one(db, sql, *args):
    return db.execute(sql, args).fetchone()


def test_same_message_twice_makes_one_case(book, rules):
    first = _record(book, rules, _msg("since I started ozempic I throw up every morning"))
    again = _record(book, rules, _msg("since I started ozempic I throw up every morning"), T0 + timedelta(hours=1))
    assert (first.status, again.status) == ("new", "duplicate")
    db = book.db
    assert _one(db, "SELECT count(*) FROM messages")[0] == 1
    assert _one(db, "SELECT count(*) FROM cases")[0] == 1
    assert _one(db, "SELECT count(*) FROM pv_cases")[0] == 1
    keys = [r[0] for r in db.execute("SELECT key FROM outbox ORDER BY key")]
    assert keys == sorted(set(keys)) and any(k.startswith("pv:pv:") for k in keys)


def test_approved_then_edited_to_add_a_drug_is_held_again(book, rules):
    r = _record(book, rules, _msg("feeling great on my new routine, thanks all"))
    assert r.case_id is None
    r = _record(book, rules, _msg("my nurse said the new pen is easier"), T0)
    # A held message approved, then edited to name a drug:
    held = _record(book, rules, _msg("what do you all take for migraines?", mid="m2"))
    assert held.case_id is None
    held = _record(book, rules, _msg("just take sumatriptan 100mg, works every time", mid="m3"))
    book.decide(held.case_id, "approve", Actor("anna"), "allowed_in_community")
    edited = _record(book, rules, _msg("just take sumatriptan 100mg and some Xanax, works every time", mid="m3"),
                     T0 + timedelta(minutes=5))
    assert edited.status == "edited" and edited.case_id == held.case_id
    state, = _one(book.db, "SELECT state FROM cases WHERE id = ?", held.case_id)
    assert state == "held"
    assert _one(book.db, "SELECT reason_code FROM decisions ORDER BY id DESC LIMIT 1")[0] == "edited"
    assert _one(book.db, "SELECT versions FROM messages WHERE message_id = 'm3'")[0] == 2


def test_pv_case_day_zero_never_moves_and_follow_up_is_a_new_version(book, rules):
    _record(book, rules, _msg("since I started ozempic I throw up every morning"))
    _record(book, rules, _msg("since I started ozempic I throw up every morning, ended up in the ER"),
            T0 + timedelta(days=2))
    day0, serious, due, versions = _one(book.db, "SELECT day_zero, serious, due_at, versions FROM pv_cases")
    assert day0.startswith("2026-11-20T08:00") and versions == 2
    assert serious == 1 and due.startswith("2026-12-05")  # EU serious: 15 days from day zero
    assert {k for k, in book.db.execute("SELECT key FROM outbox WHERE kind = 'pv_case'")} == {
        "pv:pv:pharmamod-discord-m1:v1", "pv:pv:pharmamod-discord-m1:v2"}


def test_incomplete_pv_case_is_stored_and_says_what_is_missing(book, rules):
    msg = Message(platform="discord", community="t2d", message_id="m9", text="the ozempic pen arrived cracked and leaking")
    _record(book, rules, msg)
    complete, missing, data = _one(book.db, "SELECT complete, missing, data FROM pv_cases")
    assert complete == 0 and "reporter" in json.loads(missing)
    case = json.loads(data)
    assert case["criteria"]["reporter"]["present"] is False and case["special_situations"]


def test_non_serious_eu_case_is_due_in_90_days_and_carries_country(book, rules):
    _record(book, rules, _msg("since I started metformin I have diarrhea every day"))
    due, data = _one(book.db, "SELECT due_at, data FROM pv_cases")
    assert due.startswith("2027-02-18") and json.loads(data)["reporter"]["country"] == "NL"


def test_moderator_decisions_are_recorded_with_who_when_why(book, rules):
    r = _record(book, rules, _msg("just take 1000mg metformin twice a day"))
    assert book.decide(r.case_id, "reject", Actor("anna"), "medical_advice", "dose instruction") == "rejected"
    assert book.decide(r.case_id, "reopen", Actor("anna"), "wrong_decision") == "held"
    assert book.decide(r.case_id, "approve", Actor("anna"), "compliant") == "approved"
    rows = book.db.execute("SELECT from_state, to_state, actor, actor_platform, reason_code, note FROM decisions "
                           "ORDER BY id").fetchall()
    assert rows == [("held", "rejected", "anna", "terminal", "medical_advice", "dose instruction"),
                    ("rejected", "held", "anna", "terminal", "wrong_decision", ""),
                    ("held", "approved", "anna", "terminal", "compliant", "")]
    kinds = [k for k, in book.db.execute("SELECT kind FROM outbox WHERE subject = ? ORDER BY id", (f"case:{r.case_id}",))]
    assert kinds == ["hold", "notify", "hold", "restore"]


def test_non_moderator_is_refused_and_audited(book, rules):
    r = _record(book, rules, _msg("just take 1000mg metformin twice a day"))
    with pytest.raises(Refused, match="not a moderator"):
        book.decide(r.case_id, "approve", Actor("mallory"), "compliant")
    with pytest.raises(Refused, match="not a moderator"):
        book.decide(r.case_id, "approve", Actor("mallory", platform="discord", roles=("member",)), "compliant")
    assert book.decide(r.case_id, "approve", Actor("zoe", platform="discord", roles=("moderator",)), "compliant")
    refused = book.db.execute("SELECT actor, data FROM audit WHERE kind = 'refused'").fetchall()
    assert [a for a, _ in refused] == ["terminal:mallory", "discord:mallory"]
    assert audit.verify(book.db)[1] == []


def test_transition_not_allowed_from_state_is_refused_with_the_allowed_ones(book, rules):
    r = _record(book, rules, _msg("just take 1000mg metformin twice a day"))
    book.decide(r.case_id, "approve", Actor("anna"), "compliant")
    with pytest.raises(Refused, match=r"allowed: reopen"):
        book.decide(r.case_id, "reject", Actor("anna"), "drug_name")
    with pytest.raises(Refused, match="use one of"):
        book.decide(r.case_id, "reopen", Actor("anna"), "because")


def test_escalating_a_missed_ae_opens_a_pv_case_from_day_zero(book, rules):
    r = _record(book, rules, _msg("anyone else on ozempic? my knees creak when I climb stairs now", mid="m5"))
    assert _one(book.db, "SELECT count(*) FROM pv_cases WHERE message_id = 'm5'")[0] == 0
    book.decide(r.case_id, "escalate", Actor("anna"), "pharmacovigilance", at=T0 + timedelta(hours=5))
    day0, kinds = _one(book.db, "SELECT day_zero, kinds FROM pv_cases WHERE message_id = 'm5'")
    assert day0.startswith("2026-11-20T08:00") and json.loads(kinds) == ["adverse_event"]
    assert _one(book.db, "SELECT count(*) FROM outbox WHERE kind = 'pv_case' AND subject LIKE 'pv:%m5'")[0] == 1


def test_not_an_ae_needs_a_reason_and_keeps_the_case(book, rules):
    r = _record(book, rules, _msg("since I started ozempic I throw up every morning"))
    rid = r.pv_report_id
    with pytest.raises(Refused, match="say why"):
        book.not_an_ae(rid, Actor("anna"), "  ")
    book.not_an_ae(rid, Actor("anna"), "user says it was food poisoning, confirmed with them")
    status, reason = _one(book.db, "SELECT status, status_reason FROM pv_cases WHERE report_id = ?", rid)
    assert status == "not_ae" and "food poisoning" in reason


def test_medical_inquiry_routes_to_medical_information(book, rules):
    _record(book, rules, _msg("can I take ibuprofen with my Eliquis?"))
    assert _one(book.db, "SELECT route FROM outbox WHERE kind = 'medical_inquiry'")[0] == "mi"


def test_reminder_before_the_target_and_breach_after(book, rules):
    r = _record(book, rules, _msg("just take 1000mg metformin twice a day"))
    assert book.remind(at=T0 + timedelta(hours=30)) == []
    assert book.remind(at=T0 + timedelta(hours=37)) == [r.case_id]
    assert book.remind(at=T0 + timedelta(hours=38)) == []  # once per case
    assert breaches(book.db, T0 + timedelta(hours=47)) == []
    assert [b["id"] for b in breaches(book.db, T0 + timedelta(hours=49))] == [r.case_id]


def test_author_notice_can_be_switched_off_per_community(tmp_path, rules):
    cfg = Config.model_validate({"community": {"quiet": {"notify_authors": False}}})
    book = CaseBook(open_store(tmp_path / "q.db"), cfg)
    msg = Message(community="quiet", message_id="x", text="just take 1000mg metformin twice a day")
    book.record(msg, screen(msg, rules))
    assert [k for k, in book.db.execute("SELECT kind FROM outbox")] == ["hold"]


def test_ae_notice_tells_the_author_how_to_reach_the_safety_team(tmp_path, rules):
    cfg = Config.model_validate({"community": {"fr": {"safety_contact": "pv@acme.example"}, "bare": {}}})
    book = CaseBook(open_store(tmp_path / "n.db"), cfg)
    for community in ("fr", "bare"):
        msg = Message(community=community, message_id=community,
                      text="depuis que je prends du Levothyrox j'ai des vertiges")
        book.record(msg, screen(msg, rules))
    notices = dict(book.db.execute("SELECT subject, json_extract(payload, '$.text') FROM outbox WHERE kind = 'notify'"))
    with_contact, without = notices.values()
    assert "pharmacovigilance : pv@acme.example." in with_contact
    assert "{" not in without and without.endswith("pharmacien.")


def test_review_room_gets_the_case_card_and_every_change(tmp_path, rules):
    """A community's review room (any platform's) is told of each held case and each decision."""
    cfg = Config.model_validate({"community": {"c": {"review_room": "discord:555", "moderators": ["anna"]}}})
    book = CaseBook(open_store(tmp_path / "r.db"), cfg)
    msg = Message(platform="reddit", community="c", message_id="t1_x", text="since I started ozempic I throw up daily",
                  author=Author(id="u9", display_name="kim"))
    case_id = book.record(msg, screen(msg, rules)).case_id
    post = json.loads(_one(book.db, "SELECT payload FROM outbox WHERE kind = 'review_post'")[0])
    assert _one(book.db, "SELECT route FROM outbox WHERE kind = 'review_post'")[0] == "adapter:discord"
    assert post["room"] == "discord:555" and post["platform"] == "reddit" and post["text"] == msg.text
    assert post["pv"]["serious"] is False and post["pv"]["due"] and {h["rule"] for h in post["hits"]} >= {"ae.linked"}
    book.record_review_post(case_id, "discord:555", "987")
    assert book.review_post(case_id, "discord:555") == "987"
    book.decide(case_id, "approve", Actor("anna"), "compliant")
    update = json.loads(_one(book.db, "SELECT payload FROM outbox WHERE kind = 'review_update'")[0])
    assert update["state"] == "approved" and update["last_decision"]["actor"] == "anna"
    restore = json.loads(_one(book.db, "SELECT payload FROM outbox WHERE kind = 'restore'")[0])
    assert restore["text"] == msg.text and restore["author_name"] == "kim"
    book.action_failed(case_id, "restore", "message was deleted by its author")
    assert "restore failed" in _one(book.db, "SELECT action_error FROM cases")[0]
    assert _one(book.db, "SELECT count(*) FROM outbox WHERE kind = 'review_update'")[0] == 2
    assert audit.verify(book.db)[1] == []


def test_two_posts_never_share_a_pv_case(book, rules):
    """The report id is one-to-one with the post: "post 7" and "post_7" are two cases, two day zeros."""
    a = _record(book, rules, _msg("since I started ozempic I throw up every morning", mid="post 7"))
    b = _record(book, rules, _msg("since I started ozempic I throw up every morning", mid="post_7"),
                T0 + timedelta(days=3))
    assert a.pv_report_id != b.pv_report_id
    assert [d for d, in book.db.execute("SELECT day_zero FROM pv_cases ORDER BY id")] == [
        "2026-11-20T08:00:00.000000Z", "2026-11-23T08:00:00.000000Z"]


def test_an_action_overtaken_by_a_later_decision_is_not_sent(book, rules):
    """A restore still waiting (rate limit) when the case is reopened must not repost the message."""
    r = _record(book, rules, _msg("just take 1000mg metformin twice a day"))
    book.decide(r.case_id, "approve", Actor("anna"), "compliant")
    assert book.still_wanted(r.case_id, "restore") == (True, {})
    book.record_reposts(r.case_id, ["r1"])
    book.decide(r.case_id, "reopen", Actor("anna"), "wrong_decision", at=T0 + timedelta(days=5))
    assert book.still_wanted(r.case_id, "restore")[0] is False
    assert book.still_wanted(r.case_id, "hold") == (True, {"reposted": ["r1"]})
    # Reopened: a new response time and a new reminder.
    respond_by, reminded = _one(book.db, "SELECT respond_by, reminded_at FROM cases WHERE id = ?", r.case_id)
    assert respond_by.startswith("2026-11-27T08:00") and reminded is None


def test_escalating_a_case_marked_not_an_ae_sends_it_to_pv_again(book, rules):
    r = _record(book, rules, _msg("since I started ozempic I throw up every morning"))
    book.not_an_ae(r.pv_report_id, Actor("anna"), "food poisoning, the user said")
    book.decide(r.case_id, "escalate", Actor("anna"), "pharmacovigilance")
    assert _one(book.db, "SELECT status, versions FROM pv_cases")[0:2] == ("open", 2)
    assert _one(book.db, "SELECT count(*) FROM outbox WHERE kind = 'pv_case'")[0] == 2
