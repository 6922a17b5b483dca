"""The durable outbox: every delivery (PV case to the safety mailbox, hold to the platform, ...) is a
row first, written in the same transaction as the case that asks for it, then sent.

A row is claimed (`sending`, attempts + 1) in one transaction, sent, then marked `delivered` in
another. A crash between the two leaves it `sending`; `recover` puts such rows back to `pending`,
so a delivery is never lost. The row's idempotency key travels with every attempt (webhook header,
e-mail Message-ID, file name, JSONL field) so that the receiving side keeps one copy if an attempt
was cut off after it arrived. After `max_attempts` failures a row is `dead`: shown by `pharmamod
status`, audited, and sent again only when someone runs `pharmamod outbox retry`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from . import audit
from .store import iso, now, transaction


@dataclass(frozen=True)
class Delivery:
    id: int
    key: str
    route: str
    kind: str
    subject: str
    payload: dict[str, Any]
    attempts: int
    created_at: str = ""  # when the row was queued: a stable time for what the delivery carries


class DeliveryError(Exception):
    """A failed attempt; `permanent` skips the remaining retries (no permission, message gone)."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


def enqueue(db: sqlite_utils.Database, key: str, route: str, kind: str, subject: str, payload: dict[str, Any],
            at: datetime | None = None) -> bool:
    """Queue one delivery inside the caller's transaction; False when the key was already queued."""
    cur = db.execute(
        "INSERT INTO outbox (key, route, kind, subject, payload, state, next_at, created_at) "
        "VALUES (?,?,?,?,?,'pending',?,?) ON CONFLICT (key) DO NOTHING",
        (key, route, kind, subject, json.dumps(payload, ensure_ascii=False), iso(at or now()), iso(at or now())))
    return cur.rowcount == 1


def recover(db: sqlite_utils.Database) -> int:
    """After a crash: rows cut off mid-send go back to pending (their key lets receivers drop a repeat)."""
    with transaction(db):
        n = db.execute("UPDATE outbox SET state = 'pending', last_error = 'interrupted; sent again' "
                       "WHERE state = 'sending'").rowcount
        if n:
            audit.append(db, "outbox_recovered", "outbox", {"rows": n})
    return n


def claim(db: sqlite_utils.Database, routes: set[str] | None = None, limit: int = 50,
          at: datetime | None = None) -> list[Delivery]:
    """Take up to `limit` due rows for the given routes (all when None) and mark them sending."""
    ts = iso(at or now())
    sql = ("SELECT id, key, route, kind, subject, payload, attempts, created_at FROM outbox "
           "WHERE state = 'pending' AND next_at <= ?")
    args: list[Any] = [ts]
    if routes is not None:
        if not routes:
            return []
        sql += f" AND route IN ({','.join('?' * len(routes))})"
        args += sorted(routes)
    with transaction(db):
        rows = db.execute(sql + " ORDER BY next_at, id LIMIT ?", (*args, limit)).fetchall()
        out = [Delivery(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6] + 1, r[7]) for r in rows]
        for d in out:
            db.execute("UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?", (d.id,))
    return out


def delivered(db: sqlite_utils.Database, d: Delivery, detail: dict[str, Any] | None = None,
              at: datetime | None = None) -> None:
    t = at or now()
    with transaction(db):
        db.execute("UPDATE outbox SET state = 'delivered', delivered_at = ?, last_error = '' WHERE id = ?",
                   (iso(t), d.id))
        audit.append(db, "delivered", d.subject, {"route": d.route, "kind": d.kind, "key": d.key,
                                                  "attempt": d.attempts, **(detail or {})}, at=t)


def failed(db: sqlite_utils.Database, d: Delivery, error: DeliveryError, *, max_attempts: int = 8,
           backoff: float = 2.0, backoff_max: float = 900.0, at: datetime | None = None) -> str:
    """Schedule the next attempt with exponential backoff, or mark the row dead; returns the new state."""
    t = at or now()
    dead = error.permanent or d.attempts >= max_attempts
    # A platform's Retry-After is honoured, up to the longest backoff (a huge value must not stall the row).
    delay = min(error.retry_after if error.retry_after is not None else backoff * 2 ** min(d.attempts - 1, 30),
                backoff_max)
    state = "dead" if dead else "pending"
    with transaction(db):
        db.execute("UPDATE outbox SET state = ?, next_at = ?, last_error = ? WHERE id = ?",
                   (state, iso(t + timedelta(seconds=delay)), str(error)[:500], d.id))
        if dead:
            audit.append(db, "delivery_dead", d.subject, {"route": d.route, "kind": d.kind, "key": d.key,
                                                          "attempts": d.attempts, "error": str(error)[:500]}, at=t)
    return state


def retry_dead(db: sqlite_utils.Database, actor: str, key: str | None = None) -> int:
    """Give dead rows a fresh set of attempts (after the route was fixed)."""
    with transaction(db):
        sql, args = "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ? WHERE state = 'dead'", [iso(now())]
        if key:
            sql += " AND key = ?"
            args.append(key)
        n = db.execute(sql, args).rowcount
        if n:
            audit.append(db, "outbox_retry", "outbox", {"rows": n, "key": key}, actor=actor)
    return n


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    return {state: n for state, n in db.execute("SELECT state, count(*) FROM outbox GROUP BY state")}
