"""The case lifecycle: what happens to a screened message, recorded so that nothing is lost.

`CaseBook.record` takes a message and its verdict and, in one transaction, stores the message,
opens or reopens the moderation case, opens the pharmacovigilance case (day zero = the moment the
bot first saw the post), queues every delivery in the outbox and writes the audit entries. It is
idempotent by (platform, message id): a message seen twice changes nothing, an edited message is
screened again. Moderator decisions go through `decide`, which refuses (and audits the refusal)
anyone who is not a moderator of the community or a transition the current state does not allow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from . import audit
from .config import Community, Config
from .models import Author, Category, Message, Verdict
from .outbox import enqueue
from .pv import build_pv_case, is_pv, report_id
from .store import iso, now, parse_time, transaction

# state -> {decision: new state}
TRANSITIONS: dict[str, dict[str, str]] = {
    "held": {"approve": "approved", "reject": "rejected", "escalate": "escalated"},
    "escalated": {"approve": "approved", "reject": "rejected"},
    "approved": {"reopen": "held"},
    "rejected": {"reopen": "held"},
}
OPEN_STATES = ("held", "escalated")

# decision -> reason codes a moderator picks from (the free-text note says the rest)
REASONS: dict[str, tuple[str, ...]] = {
    "approve": ("compliant", "false_positive", "allowed_in_community", "other"),
    "reject": ("drug_name", "promotion", "medical_advice", "off_label", "unsafe", "spam", "other"),
    "escalate": ("pharmacovigilance", "medical_information", "legal", "other"),
    "reopen": ("new_information", "wrong_decision", "edited", "other"),
}


_CONTACT = re.compile(r"\s*[^.;!?]*\{safety_contact\}\.?")


def render_notice(template: str, contact: str = "") -> str:
    """Fill the safety team's contact into an author notice; without one, drop that sentence."""
    if "{safety_contact}" not in template:
        return template
    return template.replace("{safety_contact}", contact) if contact else _CONTACT.sub("", template)


class Refused(Exception):
    """A moderator action that was not carried out; the message says why and what to do instead."""


@dataclass(frozen=True)
class Actor:
    """Who acts: an identity on a platform ("terminal" for `pharmamod review`), with its roles there.

    `verified` means the platform adapter has already checked the actor's moderator rights against
    the platform itself (Discord roles, Telegram chat admins, Reddit moderators)."""

    id: str
    platform: str = "terminal"
    roles: tuple[str, ...] = ()
    verified: bool = False

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"


@dataclass
class Recorded:
    status: str  # new | duplicate | edited
    message_row: int
    case_id: int | None = None
    pv_report_id: str | None = None
    deliveries: list[str] = field(default_factory=list)


def _verdict_summary(v: Verdict) -> dict[str, Any]:
    """What the audit keeps of a verdict: rules, spans and names, never the text."""
    return {
        "action": v.action.value,
        "categories": list(v.categories),
        "rules": [[h.rule, h.span[0], h.span[1]] for h in v.hits],
        "drugs": list(v.drug_names),
        "ruleset_version": v.ruleset_version,
    }


class CaseBook:
    """The only writer of messages, cases, decisions and PV cases."""

    def __init__(self, db: sqlite_utils.Database, config: Config | None = None):
        self.db = db
        self.config = config or Config()

    # -- screening results -------------------------------------------------------------------

    def record(self, msg: Message, verdict: Verdict, seen_at: datetime | None = None) -> Recorded:
        with transaction(self.db):
            return self.record_in_transaction(msg, verdict, seen_at)

    def record_in_transaction(self, msg: Message, verdict: Verdict, seen_at: datetime | None = None) -> Recorded:
        """`record` for a caller that batches several messages in one transaction."""
        db = self.db
        t = seen_at or now()
        ts = iso(t)
        chash = audit.content_hash(msg.text)
        row = db.execute("SELECT id, content_hash, versions FROM messages WHERE platform = ? AND message_id = ?",
                         (msg.platform, msg.message_id)).fetchone()
        if row and row[1] == chash:
            return Recorded("duplicate", row[0])
        subject = f"{msg.platform}:{msg.message_id}"
        fields = dict(
            community=msg.community, channel=msg.channel, author_id=msg.author.id,
            author_name=msg.author.display_name, text=msg.text, content_hash=chash, language=verdict.language,
            permalink=msg.permalink, reply_to=msg.reply_to.message_id if msg.reply_to else None,
            created_at=iso(msg.created_at) if msg.created_at else None, last_seen_at=ts,
            action=verdict.action.value, categories=json.dumps(list(verdict.categories)),
            drugs=json.dumps(list(verdict.drug_names)), verdict=verdict.model_dump_json(),
            ruleset_version=verdict.ruleset_version,
        )
        if row:
            mrow, version = row[0], row[2] + 1
            db.execute(f"UPDATE messages SET {', '.join(f'{k} = ?' for k in fields)}, versions = ? WHERE id = ?",
                       (*fields.values(), version, mrow))
            audit.append(db, "message_edited", subject, {"content_hash": chash, "version": version}, at=t)
            status = "edited"
        else:
            version = 1
            cur = db.execute(
                f"INSERT INTO messages (platform, message_id, first_seen_at, {', '.join(fields)}) "
                f"VALUES (?, ?, ?, {', '.join('?' * len(fields))})",
                (msg.platform, msg.message_id, ts, *fields.values()))
            mrow = cur.lastrowid
            audit.append(db, "message_seen", subject, {
                "content_hash": chash, "community": msg.community, "channel": msg.channel,
                "author": msg.author.id}, at=t)
            status = "new"
        audit.append(db, "verdict", subject, {**_verdict_summary(verdict), "version": version}, at=t)
        out = Recorded(status, mrow)
        community = self.config.community_of(msg.community)
        # The PV case first, so that the review room's card shows its flags and due date.
        if is_pv(verdict):
            out.pv_report_id = self._pv_case(msg, verdict, mrow, community, t, out)
        if verdict.held:
            out.case_id = self._hold(msg, verdict, mrow, version, community, t)
        if Category.MEDICAL_INQUIRY.value in verdict.categories:
            for route in community.medinfo_routes:
                key = f"medinfo:{route}:{subject}:v{version}"
                if enqueue(db, key, route, "medical_inquiry", subject, {
                        "platform": msg.platform, "community": msg.community, "message_id": msg.message_id,
                        "author": msg.author.id, "language": verdict.language, "text": msg.text,
                        "permalink": msg.permalink}, at=t):
                    out.deliveries.append(key)
        return out

    def _hold(self, msg: Message, verdict: Verdict, mrow: int, version: int, community: Community,
              t: datetime) -> int:
        db, ts = self.db, iso(t)
        subject = f"{msg.platform}:{msg.message_id}"
        rules = json.dumps([h.rule for h in verdict.hits])
        cats = json.dumps(list(verdict.categories))
        respond_by = iso(t + timedelta(hours=community.respond_within_hours))
        row = db.execute("SELECT id, state FROM cases WHERE message = ?", (mrow,)).fetchone()
        if row is None:
            cur = db.execute(
                "INSERT INTO cases (message, platform, message_id, community, state, categories, rules, opened_at, "
                "updated_at, respond_by) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (mrow, msg.platform, msg.message_id, msg.community, "held", cats, rules, ts, ts, respond_by))
            case_id = cur.lastrowid
            audit.append(db, "case_opened", f"case:{case_id}", {
                "message": subject, "categories": json.loads(cats), "respond_by": respond_by}, at=t)
        else:
            case_id, state = row
            if state in OPEN_STATES:
                db.execute("UPDATE cases SET categories = ?, rules = ?, updated_at = ? WHERE id = ?",
                           (cats, rules, ts, case_id))
            else:
                # Approved (or rejected), then edited into something that must be held: held again.
                db.execute("UPDATE cases SET state = 'held', categories = ?, rules = ?, updated_at = ?, "
                           "respond_by = ?, reminded_at = NULL WHERE id = ?", (cats, rules, ts, respond_by, case_id))
                db.execute("INSERT INTO decisions (case_id, from_state, to_state, actor, actor_platform, reason_code, "
                           "note, at) VALUES (?,?,?,?,?,?,?,?)",
                           (case_id, state, "held", "pharmamod", "pharmamod", "edited",
                            f"message edited (version {version}) and held again", ts))
                audit.append(db, "case_reopened", f"case:{case_id}", {
                    "from": state, "reason_code": "edited", "version": version}, at=t)
        enqueue(db, f"hold:{subject}:v{version}", f"adapter:{msg.platform}", "hold", f"case:{case_id}", {
            "platform": msg.platform, "community": msg.community, "channel": msg.channel,
            "message_id": msg.message_id, "case_id": case_id}, at=t)
        self._to_review_room(case_id, community, f"review:case:{case_id}:v{version}", "review_post", t)
        profile_notify = verdict.notify_author is not None
        if community.notify_authors and profile_notify:
            enqueue(db, f"notify:{subject}:v{version}", f"adapter:{msg.platform}", "notify", f"case:{case_id}", {
                "platform": msg.platform, "community": msg.community, "channel": msg.channel,
                "message_id": msg.message_id, "author": msg.author.id,
                "text": render_notice(verdict.notify_author, community.safety_contact),
                "case_id": case_id}, at=t)
        return case_id

    def _pv_case(self, msg: Message, verdict: Verdict, mrow: int, community: Community, t: datetime,
                 out: Recorded) -> str:
        db, ts = self.db, iso(t)
        rid = report_id(self.config.pv.sender, msg.platform, msg.message_id)
        row = db.execute("SELECT id, day_zero, versions FROM pv_cases WHERE report_id = ?", (rid,)).fetchone()
        # Day zero is when the bot first saw a qualifying version of the post; follow-up keeps it.
        day_zero = parse_time(row[1]) if row else t
        case = build_pv_case(msg, verdict, day_zero, sender=self.config.pv.sender, country=community.country,
                             solicited=community.solicited, table=self.config.pv.deadlines or None)
        due = iso(case.due) if case.due else None
        data = case.model_dump_json()
        if row is None:
            version = 1
            db.execute(
                "INSERT INTO pv_cases (report_id, message, platform, message_id, community, kinds, day_zero, serious, "
                "due_at, complete, missing, status, data, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rid, mrow, msg.platform, msg.message_id, msg.community, json.dumps(list(case.kinds)), iso(day_zero),
                 int(case.serious), due, int(case.criteria.complete), json.dumps(list(case.criteria.missing)),
                 "open", data, ts))
            audit.append(db, "pv_case_opened", f"pv:{rid}", {
                "message": f"{msg.platform}:{msg.message_id}", "kinds": list(case.kinds), "day_zero": iso(day_zero),
                "serious": case.serious, "due_at": due, "missing": list(case.criteria.missing)}, at=t)
        else:
            version = row[2] + 1
            db.execute("UPDATE pv_cases SET kinds = ?, serious = ?, due_at = ?, complete = ?, missing = ?, data = ?, "
                       "versions = ?, updated_at = ? WHERE id = ?",
                       (json.dumps(list(case.kinds)), int(case.serious), due, int(case.criteria.complete),
                        json.dumps(list(case.criteria.missing)), data, version, ts, row[0]))
            audit.append(db, "pv_case_followup", f"pv:{rid}", {
                "version": version, "serious": case.serious, "due_at": due,
                "missing": list(case.criteria.missing)}, at=t)
        for route in community.pv_routes:
            key = f"pv:{route}:{rid}:v{version}"
            if enqueue(db, key, route, "pv_case", f"pv:{rid}", json.loads(data), at=t):
                out.deliveries.append(key)
        return rid

    # -- moderator decisions -----------------------------------------------------------------

    def is_moderator(self, actor: Actor, community: str) -> bool:
        if actor.verified:
            return True
        c = self.config.community_of(community)
        if actor.platform == "terminal":
            return actor.id in c.moderators
        return bool(set(actor.roles) & set(c.moderator_roles))

    def _refuse(self, actor: Actor, subject: str, action: str, why: str) -> Refused:
        self.refuse(actor, subject, action, why)
        return Refused(why)

    def decide(self, case_id: int, decision: str, actor: Actor, reason_code: str, note: str = "",
               at: datetime | None = None) -> str:
        """Apply a moderator's decision; return the new state or raise Refused (audited)."""
        t = at or now()
        row = self.db.execute("SELECT state, community, platform, message_id FROM cases WHERE id = ?",
                              (case_id,)).fetchone()
        subject = f"case:{case_id}"
        if row is None:
            raise Refused(f"no case {case_id}; `pharmamod review list` shows the open cases")
        state, community, platform, message_id = row
        if not self.is_moderator(actor, community):
            raise self._refuse(actor, subject, decision,
                               f"{actor} is not a moderator of community {community!r}; "
                               "ask an owner to add you to its moderators in the config")
        allowed = TRANSITIONS.get(state, {})
        if decision not in allowed:
            can = ", ".join(allowed) or "nothing"
            raise self._refuse(actor, subject, decision,
                               f"case {case_id} is {state}: {decision} is not possible from there (allowed: {can})")
        if reason_code not in REASONS[decision]:
            raise self._refuse(actor, subject, decision,
                               f"reason code {reason_code!r} is not one for {decision}; use one of "
                               + ", ".join(REASONS[decision]))
        new = allowed[decision]
        changed_to = None
        with transaction(self.db):
            # Re-read under the write lock: another moderator may have decided meanwhile.
            current = self.db.execute("SELECT state FROM cases WHERE id = ?", (case_id,)).fetchone()[0]
            if current != state:
                changed_to = current
            else:
                self._apply(case_id, decision, state, new, actor, reason_code, note, t)
        if changed_to is not None:  # audited after the transaction, which wrote nothing
            raise self._refuse(actor, subject, decision,
                               f"case {case_id} changed to {changed_to} while you decided; look at it again")
        return new

    def _apply(self, case_id: int, decision: str, state: str, new: str, actor: Actor, reason_code: str, note: str,
               t: datetime) -> None:
        ts, subject = iso(t), f"case:{case_id}"
        platform, message_id, community = self.db.execute(
            "SELECT platform, message_id, community FROM cases WHERE id = ?", (case_id,)).fetchone()
        if new == "held":  # reopened: a new response time, and a new reminder
            respond_by = iso(t + timedelta(hours=self.config.community_of(community).respond_within_hours))
            self.db.execute("UPDATE cases SET respond_by = ?, reminded_at = NULL WHERE id = ?",
                            (respond_by, case_id))
        self.db.execute("UPDATE cases SET state = ?, updated_at = ? WHERE id = ?", (new, ts, case_id))
        self.db.execute("INSERT INTO decisions (case_id, from_state, to_state, actor, actor_platform, reason_code, "
                        "note, at) VALUES (?,?,?,?,?,?,?,?)",
                        (case_id, state, new, actor.id, actor.platform, reason_code, note, ts))
        audit.append(self.db, "decision", subject, {"decision": decision, "from": state, "to": new,
                                                    "reason_code": reason_code, "note": note}, actor=str(actor), at=t)
        msg_subject = f"{platform}:{message_id}"
        payload = self._action_payload(case_id)
        n = self.db.execute("SELECT count(*) FROM decisions WHERE case_id = ?", (case_id,)).fetchone()[0]
        self._to_review_room(case_id, self.config.community_of(community), f"review:case:{case_id}:d{n}",
                             "review_update", t)
        if new == "approved":
            enqueue(self.db, f"restore:{msg_subject}:d{n}", f"adapter:{platform}", "restore", subject, payload, at=t)
        elif new == "held":
            enqueue(self.db, f"hold:{msg_subject}:d{n}", f"adapter:{platform}", "hold", subject, payload, at=t)
        elif new == "escalated":
            self._escalate(case_id, reason_code, t, n)

    def _escalate(self, case_id: int, reason_code: str, t: datetime, n: int = 0) -> None:
        """Escalating sends the case on: to medical information, or to PV when the bot did not open one."""
        mrow, platform, message_id, community = self.db.execute(
            "SELECT message, platform, message_id, community FROM cases WHERE id = ?", (case_id,)).fetchone()
        c = self.config.community_of(community)
        text, verdict_json, first_seen, author_id, author_name, channel, permalink = self.db.execute(
            "SELECT text, verdict, first_seen_at, author_id, author_name, channel, permalink FROM messages "
            "WHERE id = ?", (mrow,)).fetchone()
        subject = f"{platform}:{message_id}"
        if reason_code == "medical_information":
            for route in c.medinfo_routes:
                enqueue(self.db, f"medinfo:{route}:{subject}:escalated:d{n}", route, "medical_inquiry", subject, {
                    "platform": platform, "community": community, "message_id": message_id, "text": text or "",
                    "escalated_case": case_id}, at=t)
        elif reason_code == "pharmacovigilance":
            rid = report_id(self.config.pv.sender, platform, message_id)
            existing = self.db.execute("SELECT status, data, versions FROM pv_cases WHERE report_id = ?",
                                       (rid,)).fetchone()
            if existing is not None:
                if existing[0] == "not_ae":
                    # Marked "not an AE" earlier, escalated now: open again and send the case on again.
                    version = existing[2] + 1
                    self.db.execute("UPDATE pv_cases SET status = 'open', versions = ?, updated_at = ? "
                                    "WHERE report_id = ?", (version, iso(t), rid))
                    audit.append(self.db, "pv_case_reopened", f"pv:{rid}", {"by": "moderator escalation",
                                                                             "version": version}, at=t)
                    if existing[1]:
                        for route in c.pv_routes:
                            enqueue(self.db, f"pv:{route}:{rid}:v{version}", route, "pv_case", f"pv:{rid}",
                                    json.loads(existing[1]), at=t)
                return
            if verdict_json is None:
                raise Refused(f"case {case_id}: its text was purged under the retention policy, so no PV case "
                              "can be built from it; report it to the safety team by hand")
            # A moderator saw an AE the rules missed: day zero is still when the bot first saw it.
            msg = Message(platform=platform, message_id=message_id, community=community, channel=channel,
                          text=text or "", permalink=permalink, author=Author(id=author_id, display_name=author_name))
            day_zero = parse_time(first_seen)
            case = build_pv_case(msg, Verdict.model_validate_json(verdict_json), day_zero,
                                 sender=self.config.pv.sender, country=c.country, solicited=c.solicited,
                                 table=self.config.pv.deadlines or None)
            case = case.model_copy(update={"kinds": ("adverse_event",)})
            self.db.execute(
                "INSERT INTO pv_cases (report_id, message, platform, message_id, community, kinds, day_zero, serious, "
                "due_at, complete, missing, status, data, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rid, mrow, platform, message_id, community, json.dumps(["adverse_event"]), first_seen,
                 int(case.serious), iso(case.due) if case.due else None, int(case.criteria.complete),
                 json.dumps(list(case.criteria.missing)), "open", case.model_dump_json(), iso(t)))
            audit.append(self.db, "pv_case_opened", f"pv:{rid}", {
                "message": subject, "kinds": ["adverse_event"], "day_zero": first_seen, "by": "moderator escalation",
                "missing": list(case.criteria.missing)}, at=t)
            for route in c.pv_routes:
                enqueue(self.db, f"pv:{route}:{rid}:v1", route, "pv_case", f"pv:{rid}", json.loads(case.model_dump_json()),
                        at=t)

    def not_an_ae_for_case(self, case_id: int, actor: Actor, reason: str) -> str:
        """"Not an AE" clicked on a case in a review room: applies to the case's PV case."""
        row = self.db.execute("SELECT p.report_id FROM pv_cases p JOIN cases c ON c.platform = p.platform "
                              "AND c.message_id = p.message_id WHERE c.id = ?", (case_id,)).fetchone()
        if row is None:
            raise Refused(f"case {case_id} has no PV case to mark")
        self.not_an_ae(row[0], actor, reason)
        community = self.db.execute("SELECT community FROM cases WHERE id = ?", (case_id,)).fetchone()[0]
        with transaction(self.db):
            self._to_review_room(case_id, self.config.community_of(community), f"review:case:{case_id}:not_ae",
                                 "review_update", now())
        return row[0]

    def not_an_ae(self, report: str, actor: Actor, reason: str, at: datetime | None = None) -> None:
        """Mark a PV case "not an AE": only with a reason, and the case itself is kept."""
        t = at or now()
        row = self.db.execute("SELECT community, status FROM pv_cases WHERE report_id = ?", (report,)).fetchone()
        subject = f"pv:{report}"
        if row is None:
            raise Refused(f"no PV case {report}; `pharmamod review list --pv` shows them")
        if not self.is_moderator(actor, row[0]):
            raise self._refuse(actor, subject, "not_ae", f"{actor} is not a moderator of community {row[0]!r}")
        if not reason.strip():
            raise self._refuse(actor, subject, "not_ae", "say why it is not an adverse event (--reason)")
        with transaction(self.db):
            self.db.execute("UPDATE pv_cases SET status = 'not_ae', status_reason = ?, updated_at = ? WHERE report_id = ?",
                            (reason, iso(t), report))
            audit.append(self.db, "pv_not_ae", subject, {"reason": reason, "was": row[1]}, actor=str(actor), at=t)

    # -- review rooms and platform actions ------------------------------------------------------

    def _action_payload(self, case_id: int) -> dict[str, Any]:
        """What an adapter needs to act on the original message (restore reposts its text)."""
        row = self.db.execute(
            "SELECT c.platform, c.community, m.channel, c.message_id, m.author_id, m.author_name, m.text, m.permalink, "
            "c.reposted FROM cases c JOIN messages m ON m.id = c.message WHERE c.id = ?", (case_id,)).fetchone()
        keys = ("platform", "community", "channel", "message_id", "author", "author_name", "text", "permalink")
        # `reposted`: the approved message's reposts; a hold after a reopen removes those.
        return {"case_id": case_id, **dict(zip(keys, row)), "reposted": json.loads(row[8])}

    def still_wanted(self, case_id: int, kind: str) -> tuple[bool, dict[str, Any]]:
        """Is a queued hold or restore still what the case asks for? Decisions can overtake an
        action waiting for a retry (a hold held back by a rate limit, then an approval): sending
        it late would undo the newer decision. Returns also what changed since it was queued."""
        row = self.db.execute("SELECT state, reposted FROM cases WHERE id = ?", (case_id,)).fetchone()
        if row is None:
            return True, {}
        state, reposted = row
        if kind == "restore":
            return state == "approved", {}
        if kind == "hold":
            return state in OPEN_STATES, {"reposted": json.loads(reposted)}
        return True, {}

    def record_reposts(self, case_id: int, reposted: list[str]) -> None:
        """A restore reposted the message (or a hold removed the reposts): remember their ids."""
        with transaction(self.db):
            self.db.execute("UPDATE cases SET reposted = ? WHERE id = ?", (json.dumps(reposted), case_id))

    def _to_review_room(self, case_id: int, community: Community, key: str, kind: str, t: datetime) -> None:
        """Queue the case's card for the community's review room (any platform's), if it has one."""
        room = community.review_room
        if not room:
            return
        enqueue(self.db, key, f"adapter:{room.split(':', 1)[0]}", kind, f"case:{case_id}",
                {"room": room, **self.card(case_id)}, at=t)

    def card(self, case_id: int) -> dict[str, Any]:
        """Everything a moderator sees about a case in a review room: the message, the rules that
        fired and why, PV flags and due date, the response-time target, the last decision."""
        c = self.db.execute(
            "SELECT c.state, c.platform, c.community, c.message_id, c.respond_by, c.action_error, m.channel, "
            "m.author_id, m.author_name, m.text, m.permalink, m.verdict, c.opened_at FROM cases c JOIN messages m "
            "ON m.id = c.message WHERE c.id = ?", (case_id,)).fetchone()
        if c is None:
            raise Refused(f"no case {case_id}")
        state, platform, community, mid, respond_by, action_error, channel, author_id, author_name, text, \
            permalink, verdict, opened_at = c
        held = self.db.execute("SELECT max(at) FROM decisions WHERE case_id = ? AND to_state = 'held'",
                               (case_id,)).fetchone()[0]
        v = json.loads(verdict) if verdict else {"hits": []}
        hits, seen = [], set()
        for h in v["hits"]:
            if h.get("status", "active") == "active" and h["rule"] not in seen:
                seen.add(h["rule"])
                hits.append({"rule": h["rule"], "category": h["category"], "explanation": h["explanation"]})
        pv = self.db.execute("SELECT report_id, kinds, serious, due_at, complete, missing, status FROM pv_cases "
                             "WHERE platform = ? AND message_id = ?", (platform, mid)).fetchone()
        last = self.db.execute("SELECT to_state, actor, actor_platform, reason_code, at FROM decisions "
                               "WHERE case_id = ? ORDER BY id DESC LIMIT 1", (case_id,)).fetchone()
        return {
            "case_id": case_id, "state": state, "platform": platform, "community": community, "channel": channel,
            "message_id": mid, "author": author_id, "author_name": author_name, "text": text,
            "permalink": permalink, "hits": hits, "respond_by": respond_by, "action_error": action_error,
            "opened_at": opened_at, "held_since": held or opened_at,
            "pv": None if pv is None else {
                "report_id": pv[0], "kinds": json.loads(pv[1]), "serious": bool(pv[2]), "due": pv[3],
                "complete": bool(pv[4]), "missing": json.loads(pv[5]), "status": pv[6]},
            "last_decision": None if last is None else dict(zip(
                ("state", "actor", "actor_platform", "reason_code", "at"), last)),
        }

    def case_of(self, platform: str, message_id: str) -> int | None:
        row = self.db.execute("SELECT id FROM cases WHERE platform = ? AND message_id = ?",
                              (platform, message_id)).fetchone()
        return row[0] if row else None

    def record_review_post(self, case_id: int, room: str, ref: str, at: datetime | None = None) -> None:
        """Remember which platform message shows the case, so later updates edit that post."""
        with transaction(self.db):
            self.db.execute("INSERT INTO review_posts (case_id, room, ref, posted_at) VALUES (?,?,?,?) "
                            "ON CONFLICT (case_id, room) DO UPDATE SET ref = excluded.ref",
                            (case_id, room, ref, iso(at or now())))

    def review_post(self, case_id: int, room: str) -> str | None:
        row = self.db.execute("SELECT ref FROM review_posts WHERE case_id = ? AND room = ?", (case_id, room)).fetchone()
        return row[0] if row else None

    def action_failed(self, case_id: int, kind: str, error: str, at: datetime | None = None) -> None:
        """A platform action failed for good (no permission, message too old or gone): record it on the
        case and show it to the moderators in the review room, so it is never silently lost."""
        t = at or now()
        with transaction(self.db):
            self.db.execute("UPDATE cases SET action_error = ?, updated_at = ? WHERE id = ?",
                            (f"{kind} failed: {error}"[:500], iso(t), case_id))
            audit.append(self.db, "action_failed", f"case:{case_id}", {"action": kind, "error": error[:500]}, at=t)
            community = self.db.execute("SELECT community FROM cases WHERE id = ?", (case_id,)).fetchone()
            if community:
                n = self.db.execute("SELECT count(*) FROM audit WHERE kind = 'action_failed' AND subject = ?",
                                    (f"case:{case_id}",)).fetchone()[0]
                self._to_review_room(case_id, self.config.community_of(community[0]),
                                     f"review:case:{case_id}:failed{n}", "review_update", t)

    def refuse(self, actor: Actor, subject: str, action: str, why: str) -> None:
        """Record an attempt the platform adapter refused (a click by someone who is not a moderator)."""
        with transaction(self.db):
            audit.append(self.db, "refused", subject, {"action": action, "why": why}, actor=str(actor))

    # -- response time -----------------------------------------------------------------------

    def remind(self, at: datetime | None = None) -> list[int]:
        """Queue a reminder for every open case whose response time runs out soon; once per case."""
        t = at or now()
        due: list[int] = []
        rows = self.db.execute(
            "SELECT id, community, platform, respond_by FROM cases WHERE state IN ('held', 'escalated') "
            "AND reminded_at IS NULL").fetchall()
        for case_id, community, platform, respond_by in rows:
            before = timedelta(hours=self.config.community_of(community).remind_before_hours)
            if parse_time(respond_by) - before <= t:
                due.append(case_id)
        if due:
            with transaction(self.db):
                for case_id in due:
                    self.db.execute("UPDATE cases SET reminded_at = ? WHERE id = ?", (iso(t), case_id))
                    community, platform, respond_by = self.db.execute(
                        "SELECT community, platform, respond_by FROM cases WHERE id = ?", (case_id,)).fetchone()
                    audit.append(self.db, "reminder", f"case:{case_id}", {"respond_by": respond_by}, at=t)
                    c = self.config.community_of(community)
                    if c.review_room:
                        self._to_review_room(case_id, c, f"remind:case:{case_id}:{respond_by}", "remind", t)
                    elif platform == "local":  # the local adapter writes it to its actions file
                        enqueue(self.db, f"remind:case:{case_id}:{respond_by}", "adapter:local", "remind",
                                f"case:{case_id}", {"case_id": case_id, "community": community,
                                                    "respond_by": respond_by}, at=t)
                    # Without a review room the reminder is in the audit log and `pharmamod status`.
        return due


def breaches(db: sqlite_utils.Database, at: datetime | None = None) -> list[dict]:
    """Open cases past their response-time target, oldest first."""
    return list(db.query(
        "SELECT id, platform, message_id, community, state, opened_at, respond_by FROM cases "
        "WHERE state IN ('held', 'escalated') AND respond_by < ? ORDER BY respond_by", [iso(at or now())]))
