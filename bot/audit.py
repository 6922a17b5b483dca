"""The audit log compliance officers answer auditors from: append-only and hash-chained.

Each entry's hash is SHA-256 over the previous entry's hash and a canonical serialisation of the
entry, so editing, inserting or deleting any row breaks the chain at that row. The head (last seq
and hash) is kept beside the chain so that deleting the newest rows is detected too. Entries hold
content hashes, never message text: purging text for retention leaves the chain verifiable.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import sqlite_utils

from .store import iso, now

GENESIS = "0" * 64


def canonical(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(entry)}".encode()).hexdigest()


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def append(db: sqlite_utils.Database, kind: str, subject: str, data: dict[str, Any] | None = None, *,
           actor: str = "pharmamod", at: datetime | None = None) -> int:
    """Add one entry; call inside `store.transaction` with the write it records (the transaction
    writes the chain's head when it commits)."""
    # Inside `store.transaction` this connection holds the write lock, so the head it last wrote
    # is still the head; the transaction clears the cache when it begins.
    head = getattr(db, "audit_head", None)
    if head is None:
        head = db.execute("SELECT seq, hash FROM audit_head WHERE one = 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    entry = {"seq": seq, "at": iso(at or now()), "kind": kind, "subject": subject, "actor": actor,
             "data": data or {}}
    h = entry_hash(prev, entry)
    db.execute("INSERT INTO audit (seq, at, kind, subject, actor, data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
               (seq, entry["at"], kind, subject, actor, canonical(entry["data"]), prev, h))
    if getattr(db, "audit_head", None) is None and _write_head not in getattr(db, "before_commit", ()):
        db.before_commit.append(_write_head)
    db.audit_head = (seq, h)
    return seq


def _write_head(db: sqlite_utils.Database) -> None:
    """The head is written once per transaction, just before it commits, with its last entry."""
    seq, h = db.audit_head
    db.execute("INSERT INTO audit_head (one, seq, hash) VALUES (1, ?, ?) "
               "ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (seq, h))


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.what}"


def verify(db: sqlite_utils.Database) -> tuple[int, list[Problem]]:
    """Walk the chain; return the number of entries and every place it is broken."""
    problems: list[Problem] = []
    prev_hash, prev_seq, count = GENESIS, 0, 0
    for seq, at, kind, subject, actor, data, stored_prev, stored_hash in db.execute(
            "SELECT seq, at, kind, subject, actor, data, prev_hash, hash FROM audit ORDER BY seq"):
        count += 1
        if seq != prev_seq + 1:
            problems.append(Problem(seq, f"entries {prev_seq + 1}..{seq - 1} are missing (deleted)"
                                    if seq > prev_seq + 1 else "sequence out of order (inserted)"))
        if stored_prev != prev_hash:
            problems.append(Problem(seq, "does not follow the entry before it (an entry was inserted or deleted here)"))
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data
        entry = {"seq": seq, "at": at, "kind": kind, "subject": subject, "actor": actor, "data": parsed}
        if entry_hash(stored_prev, entry) != stored_hash:
            problems.append(Problem(seq, f"content does not match its hash (edited): {kind} {subject}"))
        prev_hash, prev_seq = stored_hash, seq
    head = db.execute("SELECT seq, hash FROM audit_head WHERE one = 1").fetchone()
    if head and (head[0] != prev_seq or head[1] != prev_hash):
        problems.append(Problem(head[0], f"the log ends at entry {prev_seq} but its head records entry {head[0]}: "
                                "the newest entries were deleted or the head was edited"))
    if count and not head:
        problems.append(Problem(prev_seq, "the head record is missing"))
    return count, problems


EXPORT_FIELDS = ["seq", "at", "kind", "subject", "actor", "data", "prev_hash", "hash"]


def rows(db: sqlite_utils.Database, since: datetime | None = None, until: datetime | None = None):
    sql, args = "SELECT seq, at, kind, subject, actor, data, prev_hash, hash FROM audit WHERE 1=1", []
    if since:
        sql += " AND at >= ?"
        args.append(iso(since))
    if until:
        sql += " AND at < ?"
        args.append(iso(until))
    for r in db.execute(sql + " ORDER BY seq", args):
        yield dict(zip(EXPORT_FIELDS, r))


def export(db: sqlite_utils.Database, out: IO[str], fmt: str = "jsonl",
           since: datetime | None = None, until: datetime | None = None) -> int:
    """Write entries with their hashes, so the export can be checked against the chain later."""
    n = 0
    writer = csv.DictWriter(out, EXPORT_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for r in rows(db, since, until):
        if writer:
            writer.writerow(r)
        else:
            r["data"] = json.loads(r["data"])
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        n += 1
    return n
