"""The audit log must catch any edit, insertion or deletion, and survive a retention purge.

Compliance officers answer auditors from it, so these tests tamper with a real SQLite file the way
someone with the file and a SQL shell could, and expect `verify` to say where.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import timedelta

import pytest

from bot import audit
from bot.cases import CaseBook
from bot.engine import screen
from bot.models import Author, Message
from bot.retention import purge
from bot.store import SCHEMA_VERSION, StoreError, now, open_store, transaction


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "store.db"


def _fill(path, rules, n=6):
    db = open_store(path)
    book = CaseBook(db)
    texts = ["since I started ozempic I throw up every morning", "lovely weather today",
             "just take 1000mg metformin twice a day", "my daughter got a rash after her amoxicillin",
             "anyone tried walking after dinner?", "Xanax and wine, best friday"]
    for i in range(n):
        msg = Message(message_id=f"m{i}", text=texts[i % len(texts)], author=Author(id=f"u{i}"))
        book.record(msg, screen(msg, rules))
    return db


def _tamper(path, sql, args=()):
    conn = sqlite3.connect(path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def test_store_is_wal_and_versioned(db_path):
    db = open_store(db_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {"messages", "cases", "decisions", "pv_cases", "outbox", "audit"} <= set(db.table_names())


def test_newer_schema_is_refused_not_damaged(db_path):
    open_store(db_path).close()
    _tamper(db_path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="upgrade pharmamod"):
        open_store(db_path)


def test_intact_chain_verifies(db_path, rules):
    db = _fill(db_path, rules)
    count, problems = audit.verify(db)
    assert count > 6 and problems == []


def test_edited_entry_is_named(db_path, rules):
    _fill(db_path, rules).close()
    _tamper(db_path, "UPDATE audit SET data = replace(data, 'hold', 'allow') WHERE seq = 2")
    _, problems = audit.verify(open_store(db_path))
    assert [p.seq for p in problems] == [2] and "edited" in problems[0].what


def test_rehashed_edit_still_breaks_the_next_link(db_path, rules):
    """Someone who edits an entry and recomputes its hash breaks the link of the entry after it."""
    _fill(db_path, rules).close()
    db = open_store(db_path)
    seq, at, kind, subject, actor, data, prev = db.execute(
        "SELECT seq, at, kind, subject, actor, data, prev_hash FROM audit WHERE seq = 3").fetchone()
    forged = json.loads(data) | {"action": "allow"}
    h = audit.entry_hash(prev, {"seq": seq, "at": at, "kind": kind, "subject": subject, "actor": actor, "data": forged})
    db.close()
    _tamper(db_path, "UPDATE audit SET data = ?, hash = ? WHERE seq = 3", (audit.canonical(forged), h))
    _, problems = audit.verify(open_store(db_path))
    assert [p.seq for p in problems] == [4]


def test_deleted_entry_is_named(db_path, rules):
    _fill(db_path, rules).close()
    _tamper(db_path, "DELETE FROM audit WHERE seq = 5")
    _, problems = audit.verify(open_store(db_path))
    assert problems and problems[0].seq == 6 and "missing" in problems[0].what


def test_deleting_the_newest_entries_is_caught_by_the_head(db_path, rules):
    db = _fill(db_path, rules)
    last = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
    db.close()
    _tamper(db_path, "DELETE FROM audit WHERE seq > ?", (last - 2,))
    _, problems = audit.verify(open_store(db_path))
    assert len(problems) == 1 and "newest entries were deleted" in problems[0].what


def test_inserted_entry_is_named(db_path, rules):
    _fill(db_path, rules).close()
    db = open_store(db_path)
    row = db.execute("SELECT * FROM audit WHERE seq = 4").fetchone()
    db.close()
    _tamper(db_path, "UPDATE audit SET seq = seq + 1000 WHERE seq >= 4")
    _tamper(db_path, "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", (4, *row[1:5], '{"forged":1}', row[6], row[7]))
    _tamper(db_path, "UPDATE audit SET seq = seq - 999 WHERE seq >= 1004")
    _, problems = audit.verify(open_store(db_path))
    assert problems and problems[0].seq == 4


def test_export_csv_and_jsonl_carry_hashes_and_no_text(db_path, rules):
    db = _fill(db_path, rules)
    buf = io.StringIO()
    n = audit.export(db, buf, "jsonl")
    lines = [json.loads(l) for l in buf.getvalue().splitlines()]
    assert n == len(lines) == db.execute("SELECT count(*) FROM audit").fetchone()[0]
    assert all(len(l["hash"]) == 64 for l in lines)
    assert "throw up" not in buf.getvalue()  # content hashes, never the text
    buf = io.StringIO()
    audit.export(db, buf, "csv", since=now() + timedelta(days=1))
    assert list(csv.reader(io.StringIO(buf.getvalue()))) == [audit.EXPORT_FIELDS]


def test_purge_removes_text_and_keeps_the_chain(db_path, rules):
    db = _fill(db_path, rules)
    # Close every case and PV case so that nothing is kept for review or for the safety team.
    with transaction(db):
        db.execute("UPDATE cases SET state = 'rejected'")
        db.execute("UPDATE pv_cases SET status = 'not_ae'")
    counts = purge(db, now() + timedelta(seconds=1))
    assert counts["messages"] == 6
    assert db.execute("SELECT count(*) FROM messages WHERE text IS NOT NULL OR verdict IS NOT NULL").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM messages WHERE length(content_hash) = 64").fetchone()[0] == 6
    count, problems = audit.verify(db)
    assert problems == [] and db.execute("SELECT kind FROM audit WHERE seq = ?", (count,)).fetchone()[0] == "purge"


def test_purge_keeps_open_cases(db_path, rules):
    db = _fill(db_path, rules)
    purge(db, now() + timedelta(seconds=1))
    held = db.execute("SELECT count(*) FROM messages m JOIN cases c ON c.message = m.id WHERE m.text IS NOT NULL"
                      ).fetchone()[0]
    assert held == db.execute("SELECT count(*) FROM cases").fetchone()[0] > 0


def test_purge_keeps_an_open_pv_case_that_reached_no_safety_team(db_path, rules):
    """A community without PV routes: the stored case is all the safety team will ever get."""
    db = _fill(db_path, rules)
    with transaction(db):
        db.execute("UPDATE cases SET state = 'rejected'")
    purge(db, now() + timedelta(seconds=1))
    kept = db.execute("SELECT count(*) FROM pv_cases p JOIN messages m ON m.id = p.message "
                      "WHERE m.text IS NOT NULL AND p.data IS NOT NULL").fetchone()[0]
    assert kept == db.execute("SELECT count(*) FROM pv_cases").fetchone()[0] > 0
