"""The embedded store: one SQLite file, WAL mode, a schema version and forward migrations.

Only `cases`, `outbox` and `audit` write to it, each inside `transaction()`, which takes SQLite's
write lock at the start (BEGIN IMMEDIATE) so that two processes (the running bot and a moderator's
`pharmamod review`) never interleave halfway and fork the audit chain.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

DEFAULT_PATH = Path("pharmamod.db")


def _v1(db: sqlite_utils.Database) -> None:
    db.execute("""
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            message_id TEXT NOT NULL,
            community TEXT NOT NULL DEFAULT '',
            channel TEXT NOT NULL DEFAULT '',
            author_id TEXT NOT NULL DEFAULT '',
            author_name TEXT NOT NULL DEFAULT '',
            text TEXT,                      -- NULL once purged; content_hash stays
            content_hash TEXT NOT NULL,
            language TEXT,
            permalink TEXT,
            reply_to TEXT,
            created_at TEXT,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            versions INTEGER NOT NULL DEFAULT 1,
            action TEXT NOT NULL,
            categories TEXT NOT NULL,       -- JSON list
            drugs TEXT NOT NULL,            -- JSON list of canonical names
            verdict TEXT,                   -- JSON; NULL once purged (it quotes the text)
            ruleset_version TEXT NOT NULL,
            purged_at TEXT,
            UNIQUE (platform, message_id)
        )""")
    db.execute("""
        CREATE TABLE cases (
            id INTEGER PRIMARY KEY,
            message INTEGER NOT NULL REFERENCES messages(id),
            platform TEXT NOT NULL,
            message_id TEXT NOT NULL,
            community TEXT NOT NULL,
            state TEXT NOT NULL,
            categories TEXT NOT NULL,
            rules TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            respond_by TEXT NOT NULL,       -- the community's response-time target
            reminded_at TEXT,
            UNIQUE (platform, message_id)
        )""")
    db.execute("CREATE INDEX cases_state ON cases (state, respond_by)")
    db.execute("""
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases(id),
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            actor TEXT NOT NULL,
            actor_platform TEXT NOT NULL,
            reason_code TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX decisions_case ON decisions (case_id)")
    db.execute("""
        CREATE TABLE pv_cases (
            id INTEGER PRIMARY KEY,
            report_id TEXT NOT NULL UNIQUE,
            message INTEGER NOT NULL REFERENCES messages(id),
            platform TEXT NOT NULL,
            message_id TEXT NOT NULL,
            community TEXT NOT NULL,
            kinds TEXT NOT NULL,
            day_zero TEXT NOT NULL,         -- first seen by the bot; never updated
            serious INTEGER NOT NULL,
            due_at TEXT,
            complete INTEGER NOT NULL,
            missing TEXT NOT NULL,
            status TEXT NOT NULL,           -- open | not_ae
            status_reason TEXT NOT NULL DEFAULT '',
            versions INTEGER NOT NULL DEFAULT 1,
            data TEXT,                      -- the PVCase as JSON; NULL once purged
            updated_at TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX pv_due ON pv_cases (status, due_at)")
    db.execute("""
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,       -- idempotency key, sent with the delivery
            route TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL,            -- pending | sending | delivered | dead
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL,
            last_error TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            delivered_at TEXT
        )""")
    db.execute("CREATE INDEX outbox_due ON outbox (state, next_at)")
    db.execute("""
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            actor TEXT NOT NULL,
            data TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX audit_subject ON audit (subject)")
    db.execute("CREATE INDEX audit_at ON audit (at)")
    # The chain's head, written with every entry: deleting the newest rows leaves it pointing past them.
    db.execute("CREATE TABLE audit_head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL)")


def _v2(db: sqlite_utils.Database) -> None:
    """Review rooms: where each case was posted for moderators, and actions that failed for good."""
    db.execute("""
        CREATE TABLE review_posts (
            case_id INTEGER NOT NULL REFERENCES cases(id),
            room TEXT NOT NULL,             -- "<adapter>:<room id>"
            ref TEXT NOT NULL,              -- the platform's id of the review post
            posted_at TEXT NOT NULL,
            PRIMARY KEY (case_id, room)
        )""")
    db.execute("ALTER TABLE cases ADD COLUMN action_error TEXT NOT NULL DEFAULT ''")


def _v3(db: sqlite_utils.Database) -> None:
    """Reposts of approved messages (their platform ids), so that reopening a case removes them."""
    db.execute("ALTER TABLE cases ADD COLUMN reposted TEXT NOT NULL DEFAULT '[]'")


# Append only: a released migration never changes, the next one is added after it.
MIGRATIONS = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    pass


def open_store(path: Path | str = DEFAULT_PATH, *, readonly: bool = False) -> sqlite_utils.Database:
    """Open (creating and migrating when needed) the store at `path`."""
    path = Path(path)
    if readonly:
        if not path.exists():
            raise StoreError(f"{path}: no pharmamod store here; run `pharmamod run` first or pass --db")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        _check_version(db, path)
        return db
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA secure_delete=ON")  # purged health data is overwritten, not left in free pages
    migrate(db, path)
    return db


def _check_version(db: sqlite_utils.Database, path: Path) -> int:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this pharmamod ({SCHEMA_VERSION}); "
                         "upgrade pharmamod")
    return version


def migrate(db: sqlite_utils.Database, path: Path | str = "") -> None:
    version = _check_version(db, Path(path))
    for n in range(version, SCHEMA_VERSION):
        with transaction(db):
            # Another process may have migrated since: read the version again under the write lock.
            if db.execute("PRAGMA user_version").fetchone()[0] > n:
                continue
            MIGRATIONS[n](db)
            db.execute(f"PRAGMA user_version = {n + 1}")


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One atomic write: everything inside commits together or not at all."""
    db.execute("BEGIN IMMEDIATE")
    db.audit_head = None  # another process may have appended since this connection last did
    db.before_commit = []  # work to finish inside the transaction (the audit chain's head)
    try:
        yield db
        for finish in db.before_commit:
            finish(db)
    except BaseException:
        db.audit_head = None
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    """Timestamps are stored as UTC ISO 8601 with microseconds, so text order is time order."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))
