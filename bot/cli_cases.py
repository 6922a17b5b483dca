"""`pharmamod run`, `status`, `review` and `outbox`: the bot's service and the moderators' terminal."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from . import outbox
from .cases import REASONS, Actor, CaseBook, Refused, breaches
from .config import Config, ConfigError, load_config
from .store import StoreError, open_store, parse_time

config_option = click.option(
    "--config", "config_path", envvar="PHARMAMOD_CONFIG", type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config (default: ./config.toml, else ./config.example.toml; env PHARMAMOD_CONFIG).")
db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
                         help="Store file (default: [store] path in the config).")


def _config(config_path: Path | None) -> Config:
    if config_path is None:
        for candidate in (Path("config.toml"), Path("config.example.toml")):
            if candidate.exists():
                config_path = candidate
                break
        else:
            raise click.ClickException("no config.toml here; pass --config FILE (start from config.example.toml)")
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _store(config: Config, db_path: Path | None, readonly: bool = False):
    try:
        return open_store(db_path or config.path(config.store.path), readonly=readonly)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _ago(ts: str) -> str:
    s = (datetime.now(timezone.utc) - parse_time(ts)).total_seconds()
    sign = "" if s >= 0 else "in "
    s = abs(s)
    text = f"{s / 86400:.1f} d" if s >= 86400 else f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"
    return sign + text


# -- run ---------------------------------------------------------------------------------------


@click.command()
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Log every delivery, not only problems.")
def run(config_path: Path | None, verbose: bool) -> None:
    """Run the bot: screen what the configured adapters bring, hold, open PV cases, deliver.

    With only the local adapter reading a file, it stops at the end of the file and prints what
    it did; with a live platform it runs until SIGTERM or Ctrl-C.
    """
    from .runner import Runner
    from .packs.errors import RuleFileError

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _config(config_path)
    try:
        runner = Runner(config)
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except RuleFileError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise click.ClickException("the rule files do not load; fix them (run `pharmamod rules lint`)") from None
    if not runner.adapters:
        raise click.ClickException("no adapter configured: add an [adapters.local] section (see config.example.toml)")
    from adapters import AdapterError

    try:
        stats = asyncio.run(runner.run())
    except AdapterError as exc:
        raise click.ClickException(str(exc)) from None
    db = _store(config, None, readonly=True)
    secs = max(1e-9, time.monotonic() - stats.started)
    total = stats.new + stats.edited + stats.duplicate
    click.echo(f"pharmamod run: {total} messages in {secs:.1f} s ({stats.new} new, {stats.edited} edited, "
               f"{stats.duplicate} seen before); {stats.held} held, {stats.pv_cases} PV case(s); "
               f"{stats.delivered} deliveries sent, {stats.failed} failed attempts")
    _print_status(db, config, brief=True)


# -- status ------------------------------------------------------------------------------------


def _print_status(db, config: Config, brief: bool = False) -> None:
    states = dict(db.execute("SELECT state, count(*) FROM cases GROUP BY state").fetchall())
    click.echo("cases: " + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"))
    oldest = db.execute("SELECT id, opened_at FROM cases WHERE state IN ('held', 'escalated') "
                        "ORDER BY opened_at LIMIT 1").fetchone()
    if oldest:
        click.echo(f"oldest open case: #{oldest[0]}, opened {_ago(oldest[1])} ago")
    late = breaches(db)
    if late:
        click.echo(f"response-time breaches: {len(late)} (oldest #{late[0]['id']}, due {late[0]['respond_by'][:16]})")
    pv = db.execute("SELECT report_id, kinds, serious, day_zero, due_at, complete, missing, status FROM pv_cases "
                    "ORDER BY status, due_at IS NULL, due_at").fetchall()
    click.echo(f"PV cases: {len(pv)} ({sum(1 for p in pv if p[7] == 'open')} open)")
    for rid, kinds, serious, day0, due, complete, missing, status in pv[: 10 if brief else None]:
        flag = "SERIOUS" if serious else "non-serious"
        what = "complete" if complete else "incomplete: missing " + ", ".join(json.loads(missing))
        due_s = f"due {due[:10]}" if due else "no expedited deadline"
        click.echo(f"  {rid}  {'+'.join(json.loads(kinds))}  {flag}  day 0 {day0[:16]}  {due_s}  {what}"
                   + ("" if status == "open" else f"  [{status}]"))
    counts = outbox.counts(db)
    click.echo("outbox: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"))
    for key, route, attempts, err in db.execute(
            "SELECT key, route, attempts, last_error FROM outbox WHERE state = 'dead' ORDER BY id LIMIT 20"):
        click.echo(f"  DEAD {key} -> {route} after {attempts} attempts: {err}")
    folders = [config.path(r.path) for r in config.routes.values() if getattr(r, "type", "") == "e2b"]
    for f in folders:
        n = len(list(f.glob("*.xml"))) if f.exists() else 0
        click.echo(f"E2B files: {n} in {f}")
    if brief and states.get("held"):
        first = db.execute("SELECT id FROM cases WHERE state = 'held' ORDER BY id LIMIT 1").fetchone()[0]
        click.echo(f"next: pharmamod review list; pharmamod review approve {first} --as MODERATOR --reason compliant")


@click.command()
@config_option
@db_option
def status(config_path: Path | None, db_path: Path | None) -> None:
    """Queue sizes, oldest open case, breaches, PV cases by due date, outbox failures."""
    config = _config(config_path)
    _print_status(_store(config, db_path, readonly=True), config)


# -- review ------------------------------------------------------------------------------------


@click.group()
def review() -> None:
    """Decide on held messages from the terminal (when no chat platform is configured)."""


@review.command("list")
@config_option
@db_option
@click.option("--all", "show_all", is_flag=True, help="Closed cases too.")
@click.option("--pv", is_flag=True, help="List PV cases instead.")
def review_list(config_path, db_path, show_all: bool, pv: bool) -> None:
    config = _config(config_path)
    db = _store(config, db_path, readonly=True)
    if pv:
        _print_status(db, config)
        return
    where = "" if show_all else "WHERE c.state IN ('held', 'escalated')"
    rows = db.execute(
        "SELECT c.id, c.state, c.platform, c.message_id, c.categories, c.opened_at, c.respond_by, m.text "
        f"FROM cases c JOIN messages m ON m.id = c.message {where} ORDER BY c.id").fetchall()
    if not rows:
        click.echo("no open cases" if not show_all else "no cases")
    for cid, state, platform, mid, cats, opened, respond_by, text in rows:
        late = " LATE" if state in ("held", "escalated") and parse_time(respond_by) < datetime.now(timezone.utc) else ""
        excerpt = (text or "[text purged]").replace("\n", " ")
        excerpt = excerpt[:70] + ("…" if len(excerpt) > 70 else "")
        click.echo(f"#{cid:<4} {state:<9} {platform}:{mid}  {', '.join(json.loads(cats))}  "
                   f"respond by {respond_by[:16]}{late}\n      {excerpt}")


@review.command("show")
@click.argument("case_id", type=int)
@config_option
@db_option
def review_show(case_id: int, config_path, db_path) -> None:
    """Everything about one case: the message, why it was held, decisions, PV case, deliveries."""
    config = _config(config_path)
    db = _store(config, db_path, readonly=True)
    row = db.execute("SELECT c.state, c.platform, c.message_id, c.community, c.opened_at, c.respond_by, m.text, "
                     "m.verdict, m.author_name, m.author_id FROM cases c JOIN messages m ON m.id = c.message "
                     "WHERE c.id = ?", (case_id,)).fetchone()
    if row is None:
        raise click.ClickException(f"no case {case_id}; `pharmamod review list --all` shows every case")
    state, platform, mid, community, opened, respond_by, text, verdict, author_name, author_id = row
    click.echo(f"case #{case_id}: {state}  {platform}:{mid} in {community or '-'}  by {author_name or author_id or '?'}")
    click.echo(f"opened {opened[:19]}, respond by {respond_by[:19]}")
    click.echo(f"  {text if text is not None else '[text purged under the retention policy]'}")
    if verdict:
        for h in json.loads(verdict)["hits"]:
            click.echo(f"  - {h['rule']} ({h['category']}) {h['text']!r} at {h['span'][0]}-{h['span'][1]}: "
                       f"{h['explanation']}")
    for frm, to, actor, ap, code, note, at in db.execute(
            "SELECT from_state, to_state, actor, actor_platform, reason_code, note, at FROM decisions "
            "WHERE case_id = ? ORDER BY id", (case_id,)):
        click.echo(f"  {at[:19]} {ap}:{actor}: {frm} -> {to} ({code}) {note}")
    for rid, status, due, missing in db.execute(
            "SELECT report_id, status, due_at, missing FROM pv_cases WHERE platform = ? AND message_id = ?",
            (platform, mid)):
        click.echo(f"  PV case {rid}: {status}, due {due or '-'}, missing {', '.join(json.loads(missing)) or 'nothing'}")
    subjects = [f"case:{case_id}", f"{platform}:{mid}",
                *(f"pv:{r[0]}" for r in db.execute("SELECT report_id FROM pv_cases WHERE platform = ? AND message_id = ?",
                                                   (platform, mid)))]
    for key, route, st, attempts, err in db.execute(
            f"SELECT key, route, state, attempts, last_error FROM outbox WHERE subject IN ({','.join('?' * len(subjects))}) "
            "ORDER BY id", subjects):
        click.echo(f"  delivery {key} -> {route}: {st} ({attempts} attempts){' ' + err if err else ''}")


def _actor(as_: str | None) -> Actor:
    return Actor(id=as_ or os.environ.get("PHARMAMOD_MODERATOR") or getpass.getuser(), platform="terminal")


def _decision(name: str, default_reason: str):
    @review.command(name, help=f"{name.capitalize()} a case. Reason codes: {', '.join(REASONS[name])}.")
    @click.argument("case_id", type=int)
    @click.option("--as", "as_", help="Your moderator identity (default: $PHARMAMOD_MODERATOR, else your login).")
    @click.option("--reason", default=default_reason, show_default=True, help="Reason code.")
    @click.option("--note", default="", help="Free text: why.")
    @config_option
    @db_option
    def command(case_id, as_, reason, note, config_path, db_path):
        config = _config(config_path)
        book = CaseBook(_store(config, db_path), config)
        try:
            new = book.decide(case_id, name, _actor(as_), reason, note)
        except Refused as exc:
            raise click.ClickException(f"refused (recorded in the audit log): {exc}") from None
        click.echo(f"case #{case_id} is now {new}")

    return command


_decision("approve", "compliant")
_decision("reject", "drug_name")
_decision("escalate", "pharmacovigilance")
_decision("reopen", "new_information")


@review.command("not-ae")
@click.argument("report_id")
@click.option("--as", "as_", help="Your moderator identity.")
@click.option("--reason", required=True, help="Why this is not an adverse event (kept in the audit log).")
@config_option
@db_option
def review_not_ae(report_id, as_, reason, config_path, db_path):
    """Mark a PV case "not an AE" (it is kept, with the reason)."""
    config = _config(config_path)
    try:
        CaseBook(_store(config, db_path), config).not_an_ae(report_id, _actor(as_), reason)
    except Refused as exc:
        raise click.ClickException(f"refused (recorded in the audit log): {exc}") from None
    click.echo(f"PV case {report_id} marked not an AE")


# -- outbox ------------------------------------------------------------------------------------


@click.group("outbox")
def outbox_group() -> None:
    """Deliveries waiting, sent and dead."""


@outbox_group.command("retry")
@click.option("--key", help="Only this delivery (default: every dead one).")
@click.option("--as", "as_", help="Who asks (audited).")
@config_option
@db_option
def outbox_retry(key, as_, config_path, db_path):
    """Give dead deliveries a fresh set of attempts, after fixing the route."""
    config = _config(config_path)
    n = outbox.retry_dead(_store(config, db_path), str(_actor(as_)), key)
    click.echo(f"{n} dead deliveries queued again; the running bot sends them")
