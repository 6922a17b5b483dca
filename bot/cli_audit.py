"""`pharmamod audit verify|export|serve|purge`: what a compliance officer answers auditors with."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from . import audit
from .cli_cases import _config, _store, config_option, db_option
from .retention import purge

# Canned queries for `audit serve`: the questions a compliance officer is asked.
CANNED_QUERIES = {
    "open_cases_by_age": {
        "title": "Open cases by age",
        "sql": "SELECT c.id, c.state, c.platform, c.message_id, c.community, c.categories, c.opened_at, c.respond_by, "
               "round((julianday('now') - julianday(c.opened_at)) * 24, 1) AS age_hours "
               "FROM cases c WHERE c.state IN ('held', 'escalated') ORDER BY c.opened_at",
    },
    "response_time_breaches": {
        "title": "Response-time breaches (open cases past their target)",
        "sql": "SELECT id, state, platform, message_id, community, opened_at, respond_by FROM cases "
               "WHERE state IN ('held', 'escalated') AND respond_by < strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
               "ORDER BY respond_by",
    },
    "pv_cases_by_due_date": {
        "title": "PV cases by due date",
        "sql": "SELECT report_id, kinds, serious, day_zero, due_at, complete, missing, status, status_reason, "
               "platform, message_id, community FROM pv_cases ORDER BY status, due_at IS NULL, due_at",
    },
    "decisions_by_moderator": {
        "title": "Decisions by moderator",
        "sql": "SELECT actor_platform, actor, to_state, reason_code, count(*) AS decisions, min(at) AS first, "
               "max(at) AS last FROM decisions GROUP BY actor_platform, actor, to_state, reason_code "
               "ORDER BY actor_platform, actor",
    },
    "one_message": {
        "title": "Everything about one message",
        "sql": "SELECT 'audit' AS source, seq AS id, at, kind, actor, data FROM audit "
               "WHERE subject = :platform || ':' || :message_id "
               "OR subject IN (SELECT 'case:' || id FROM cases WHERE platform = :platform AND message_id = :message_id) "
               "OR subject IN (SELECT 'pv:' || report_id FROM pv_cases WHERE platform = :platform "
               "AND message_id = :message_id) "
               "UNION ALL SELECT 'decision', d.id, d.at, d.to_state, d.actor_platform || ':' || d.actor, "
               "d.reason_code || ' ' || d.note FROM decisions d JOIN cases c ON c.id = d.case_id "
               "WHERE c.platform = :platform AND c.message_id = :message_id ORDER BY at",
    },
    "dead_deliveries": {
        "title": "Deliveries that failed for good",
        "sql": "SELECT key, route, kind, subject, attempts, last_error, created_at FROM outbox WHERE state = 'dead'",
    },
    "refused_actions": {
        "title": "Refused moderator actions",
        "sql": "SELECT seq, at, actor, subject, data FROM audit WHERE kind = 'refused' ORDER BY seq DESC",
    },
}

_DURATION = re.compile(r"^(\d+)\s*([dwmy])$")


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: use an ISO date such as 2026-11-01 or 2026-11-01T08:00Z",
                                 param_hint=name) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit log: verify it, export it, browse it, purge old text."""


@audit_group.command("verify")
@config_option
@db_option
def audit_verify(config_path, db_path) -> None:
    """Check the chain; name every edited, inserted or deleted entry. Exit 1 when broken."""
    db = _store(_config(config_path), db_path, readonly=True)
    count, problems = audit.verify(db)
    if problems:
        for p in problems:
            click.echo(f"BROKEN {p}", err=True)
        raise click.ClickException(f"audit log of {count} entries does not verify: {len(problems)} problem(s)")
    click.echo(f"ok: {count} audit entries, chain intact")


@audit_group.command("export")
@click.option("--since", help="From this time (ISO date or time, UTC).")
@click.option("--until", help="Up to, not including, this time.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@config_option
@db_option
def audit_export(since, until, fmt, output, config_path, db_path) -> None:
    """Write the entries (with their hashes) for auditors."""
    db = _store(_config(config_path), db_path, readonly=True)
    out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")
    try:
        n = audit.export(db, out, fmt, _when(since, "--since"), _when(until, "--until"))
    finally:
        if out is not sys.stdout:
            out.close()
    click.echo(f"{n} entries exported", err=True)


@audit_group.command("purge")
@click.option("--older-than", required=True, help="Age such as 90d, 12w, 6m, 2y.")
@click.option("--as", "as_", default=None, help="Who purges (audited).")
@config_option
@db_option
def audit_purge(older_than, as_, config_path, db_path) -> None:
    """Remove message text older than the given age; the chain stays verifiable."""
    m = _DURATION.match(older_than.strip())
    if not m:
        raise click.BadParameter("use a number and d, w, m or y, e.g. 90d", param_hint="--older-than")
    n, unit = int(m.group(1)), m.group(2)
    days = n * {"d": 1, "w": 7, "m": 30, "y": 365}[unit]
    before = datetime.now(timezone.utc) - timedelta(days=days)
    from .cli_cases import _actor

    counts = purge(_store(_config(config_path), db_path), before, actor=str(_actor(as_)))
    click.echo(f"purged text of {counts['messages']} messages, {counts['pv_cases']} PV case bodies and "
               f"{counts['deliveries']} delivered payloads older than {before:%Y-%m-%d}")


def datasette_metadata(db_name: str) -> dict:
    return {
        "title": "pharmamod audit",
        "description": "Read-only view of the pharmamod store: cases, decisions, PV cases, deliveries and the "
                       "hash-chained audit log.",
        "databases": {db_name: {"queries": CANNED_QUERIES}},
    }


@audit_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
@config_option
@db_option
def audit_serve(host, port, config_path, db_path) -> None:
    """Browse the store in Datasette, read-only, with canned queries for compliance officers."""
    config = _config(config_path)
    path = Path(db_path or config.path(config.store.path))
    _store(config, path, readonly=True)  # a clear error when there is no store yet
    meta = Path(tempfile.mkdtemp(prefix="pharmamod-datasette-")) / "metadata.json"
    meta.write_text(json.dumps(datasette_metadata(path.stem)))
    # Datasette opens a database file read-only unless a plugin that writes is installed; none is.
    # exec: the process becomes Datasette, so a signal to it stops the server, not only a wrapper.
    cmd = [sys.executable, "-m", "datasette", "serve", str(path), "--metadata", str(meta), "--host", host,
           "--port", str(port), "--setting", "sql_time_limit_ms", "5000"]
    click.echo(f"serving {path} read-only at http://{host}:{port}/ (Ctrl-C stops)", err=True)
    sys.stderr.flush()
    os.execv(sys.executable, cmd)
