"""Retention: AE posts are health data, kept only as long as needed.

`purge` removes message text (and what quotes it: the verdict, the PV case body, delivered outbox
payloads) from records older than the cut-off, keeping every id, timestamp, decision and content
hash. The audit chain covers hashes, never text, so it still verifies after a purge.
"""

from __future__ import annotations

from datetime import datetime

import sqlite_utils

from . import audit
from .store import iso, now, transaction


def purge(db: sqlite_utils.Database, before: datetime, actor: str = "pharmamod") -> dict[str, int]:
    """Purge text last seen before `before`. Kept whole: messages of open cases, and of PV cases
    not yet delivered to every route (the safety team must have the case before the text goes)."""
    cut = iso(before)
    with transaction(db):
        keep = ("SELECT message FROM cases WHERE state IN ('held', 'escalated') "
                "UNION SELECT p.message FROM pv_cases p JOIN outbox o ON o.subject = 'pv:' || p.report_id "
                "WHERE o.state != 'delivered' "
                # an open PV case that never reached the safety team (no route): the text is the case
                "UNION SELECT p.message FROM pv_cases p WHERE p.status = 'open' AND NOT EXISTS "
                "(SELECT 1 FROM outbox o WHERE o.subject = 'pv:' || p.report_id AND o.state = 'delivered')")
        n_msg = db.execute(
            f"UPDATE messages SET text = NULL, verdict = NULL, purged_at = ? WHERE last_seen_at < ? "
            f"AND text IS NOT NULL AND id NOT IN ({keep})", (iso(now()), cut)).rowcount
        n_pv = db.execute(
            "UPDATE pv_cases SET data = NULL WHERE data IS NOT NULL AND updated_at < ? "
            "AND message IN (SELECT id FROM messages WHERE text IS NULL)", (cut,)).rowcount
        n_out = db.execute(
            "UPDATE outbox SET payload = '{}' WHERE state = 'delivered' AND delivered_at < ? AND payload != '{}'",
            (cut,)).rowcount
        counts = {"messages": n_msg, "pv_cases": n_pv, "deliveries": n_out}
        audit.append(db, "purge", "retention", {"before": cut, **counts}, actor=actor)
    return counts
