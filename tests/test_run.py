"""`pharmamod run` as a user runs it: a real process, a real store, real files, HTTP health and
metrics, rule reloading, SIGTERM; then the moderator's and the compliance officer's commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PHARMAMOD = [sys.executable, "-m", "bot.cli"]


def pharmamod(*args, cwd, check=True, timeout=120):
    r = subprocess.run([*PHARMAMOD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    if check and r.returncode != 0:
        raise AssertionError(f"pharmamod {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """
[store]
path = "state/pharmamod.db"
[rules]
{rules}
reload_seconds = {reload}
[service]
metrics_port = {port}
[community.t2d-support]
country = "NL"
moderators = ["anna"]
pv_routes = ["e2b", "drop"]
medinfo_routes = ["mi"]
[routes.e2b]
type = "e2b"
path = "out/e2b"
[routes.drop]
type = "jsonl"
path = "out/pv.jsonl"
[routes.mi]
type = "jsonl"
path = "out/mi.jsonl"
[adapters.local]
path = "{source}"
follow = {follow}
community = "t2d-support"
actions = "out/actions.jsonl"
"""


def write_config(tmp_path, source, *, follow=False, port=0, rules="", reload=0):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG.format(source=source, follow=str(follow).lower(), port=port, rules=rules, reload=reload))
    return cfg


def test_main_job_review_and_audit(tmp_path):
    """The README's story: run on the sample community, see held and PV cases with due dates and
    E2B files, approve one, find it in the audit export; verify passes, then fails after an edit."""
    cfg = write_config(tmp_path, ROOT / "examples" / "community.jsonl")
    out = pharmamod("run", "--config", str(cfg), cwd=tmp_path).stdout
    assert "PV case" in out and "due 20" in out and "held" in out
    e2b = sorted((tmp_path / "out" / "e2b").glob("*.xml"))
    assert e2b and all(ET.parse(f).getroot().tag.endswith("MCCI_IN200100UV01") for f in e2b)
    db = sqlite3.connect(tmp_path / "state" / "pharmamod.db")
    held = db.execute("SELECT id FROM cases WHERE state = 'held' ORDER BY id").fetchall()
    assert len(held) >= 3
    assert db.execute("SELECT count(*) FROM outbox WHERE state != 'delivered'").fetchone()[0] == 0
    actions = [json.loads(l) for l in (tmp_path / "out" / "actions.jsonl").read_text().splitlines()]
    assert {a["action"] for a in actions} == {"hold", "notify"}

    case = str(held[0][0])
    r = pharmamod("review", "approve", case, "--as", "mallory", "--config", str(cfg), cwd=tmp_path, check=False)
    assert r.returncode == 1 and "not a moderator" in r.stderr
    r = pharmamod("review", "approve", case, "--as", "anna", "--reason", "false_positive", "--note", "ok",
                  "--config", str(cfg), cwd=tmp_path)
    assert f"case #{case} is now approved" in r.stdout
    shown = pharmamod("review", "show", case, "--config", str(cfg), cwd=tmp_path).stdout
    assert "held -> approved (false_positive)" in shown

    # The restore waits in the outbox until the bot runs again.
    pharmamod("run", "--config", str(cfg), cwd=tmp_path)
    actions = [json.loads(l) for l in (tmp_path / "out" / "actions.jsonl").read_text().splitlines()]
    assert [a["case_id"] for a in actions if a["action"] == "restore"] == [int(case)]

    export = pharmamod("audit", "export", "--format", "jsonl", "--config", str(cfg), cwd=tmp_path).stdout
    entries = [json.loads(l) for l in export.splitlines()]
    decision = [e for e in entries if e["kind"] == "decision"]
    assert decision and decision[0]["actor"] == "terminal:anna" and decision[0]["data"]["reason_code"] == "false_positive"
    assert any(e["kind"] == "refused" and e["actor"] == "terminal:mallory" for e in entries)
    csv_out = pharmamod("audit", "export", "--format", "csv", "--config", str(cfg), cwd=tmp_path).stdout
    assert csv_out.splitlines()[0] == "seq,at,kind,subject,actor,data,prev_hash,hash"

    assert "chain intact" in pharmamod("audit", "verify", "--config", str(cfg), cwd=tmp_path).stdout
    db.execute("UPDATE audit SET actor = 'terminal:ben' WHERE kind = 'decision'")
    db.commit()
    r = pharmamod("audit", "verify", "--config", str(cfg), cwd=tmp_path, check=False)
    assert r.returncode == 1 and "edited" in r.stderr

    status = pharmamod("status", "--config", str(cfg), cwd=tmp_path).stdout
    assert "PV cases:" in status and "outbox:" in status


def test_rerun_is_idempotent(tmp_path):
    cfg = write_config(tmp_path, ROOT / "examples" / "community.jsonl")
    pharmamod("run", "--config", str(cfg), cwd=tmp_path)
    db = tmp_path / "state" / "pharmamod.db"
    before = sqlite3.connect(db).execute("SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM pv_cases), "
                                         "(SELECT count(*) FROM outbox)").fetchone()
    out = pharmamod("run", "--config", str(cfg), cwd=tmp_path).stdout
    assert "0 new" in out
    after = sqlite3.connect(db).execute("SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM pv_cases), "
                                        "(SELECT count(*) FROM outbox)").fetchone()
    assert before == after


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def _wait_for(fn, timeout=30.0):
    end = time.monotonic() + timeout
    while True:
        try:
            got = fn()
            if got:
                return got
        except (OSError, AssertionError, sqlite3.Error):
            pass
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def test_live_stream_health_metrics_reload_and_sigterm(tmp_path):
    """Follow mode: new lines are screened as they arrive, an edit is screened again, /healthz and
    /metrics answer, a broken rule file keeps the running rules (and is audited), SIGTERM stops cleanly."""
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "a", "text": "good morning all"}\n')
    rules = tmp_path / "rules"
    (rules / "lexicons").mkdir(parents=True)
    lexicon = rules / "lexicons" / "ours.yaml"
    lexicon.write_text("id: ours\nentries:\n  - {name: Zorblax, generic: zorblaxumab}\n")
    port = free_port()
    cfg = write_config(tmp_path, feed, follow=True, port=port, rules=f'path = "{rules}"', reload=0.2)
    proc = subprocess.Popen([*PHARMAMOD, "run", "--config", str(cfg)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        status, body = _wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz"))
        assert status == 200 and json.loads(body)["status"] == "ok"
        db_path = tmp_path / "state" / "pharmamod.db"

        def count(sql):
            c = sqlite3.connect(db_path)
            try:
                return c.execute(sql).fetchone()[0]
            finally:
                c.close()

        with feed.open("a") as f:
            f.write('{"id": "b", "text": "has anyone tried Zorblax for this?"}\n')
            f.write('{"id": "c", "text": "great walk today"}\n')
        _wait_for(lambda: count("SELECT count(*) FROM cases WHERE message_id = 'b'") == 1)
        assert count("SELECT count(*) FROM cases WHERE message_id = 'c'") == 0
        # An edit (same id, new text) that adds a drug name is held.
        with feed.open("a") as f:
            f.write('{"id": "c", "text": "great walk today, the ozempic helps"}\n')
        _wait_for(lambda: count("SELECT count(*) FROM cases WHERE message_id = 'c'") == 1)

        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert 'pharmamod_messages_total{status="new"}' in metrics and "pharmamod_store_seconds_bucket" in metrics

        lexicon.write_text("id: ours\nentries:\n  - {name: Zorblax, generic: zorblaxumab, colour: red}\n")
        _wait_for(lambda: count("SELECT count(*) FROM audit WHERE kind = 'ruleset_rejected'") == 1)
        with feed.open("a") as f:
            f.write('{"id": "d", "text": "Zorblax again, second pen this month"}\n')
        _wait_for(lambda: count("SELECT count(*) FROM cases WHERE message_id = 'd'") == 1)  # old rules still run

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "ours.yaml" in err and "running rules stay" in err
    assert count("SELECT kind FROM audit ORDER BY seq DESC LIMIT 1") == "service_stopped"


def test_missing_secret_stops_start_up_naming_the_variable(tmp_path, monkeypatch):
    cfg = write_config(tmp_path, ROOT / "examples" / "community.jsonl")
    cfg.write_text(cfg.read_text() + '\n[routes.hook]\ntype = "webhook"\nurl = "https://example.invalid/h"\n'
                   'secret_env = "PHARMAMOD_TEST_HOOK_SECRET"\n')
    monkeypatch.delenv("PHARMAMOD_TEST_HOOK_SECRET", raising=False)
    r = pharmamod("run", "--config", str(cfg), cwd=tmp_path, check=False)
    assert r.returncode == 1 and "PHARMAMOD_TEST_HOOK_SECRET is not set" in r.stderr


@pytest.mark.parametrize("bad, expect", [
    ("[community.x]\nrespond_within_hours = 'soon'\n", "community.x.respond_within_hours"),
    ("[community.x]\npv_routes = ['nowhere']\n", "'nowhere'"),
    ("[stoer]\npath = 'x.db'\n", "stoer"),
])
def test_config_errors_say_where(tmp_path, bad, expect):
    cfg = tmp_path / "config.toml"
    cfg.write_text(bad)
    r = pharmamod("status", "--config", str(cfg), cwd=tmp_path, check=False)
    assert r.returncode == 1 and expect in r.stderr


def test_audit_serve_answers_the_canned_queries_read_only(tmp_path):
    """Compliance officers browse the store in Datasette; the canned queries answer and nothing writes."""
    cfg = write_config(tmp_path, ROOT / "examples" / "community.jsonl")
    pharmamod("run", "--config", str(cfg), cwd=tmp_path)
    port = free_port()
    proc = subprocess.Popen([*PHARMAMOD, "audit", "serve", "--port", str(port), "--config", str(cfg)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}/pharmamod"
    try:
        _, body = _wait_for(lambda: _get(f"{base}/open_cases_by_age.json?_shape=array"))
        cases = json.loads(body)
        assert cases and all(c["state"] == "held" for c in cases)
        _, body = _get(f"{base}/pv_cases_by_due_date.json?_shape=array")
        assert any(p["serious"] == 1 for p in json.loads(body))
        _, body = _get(f"{base}/one_message.json?_shape=array&platform=local&message_id=m3")
        kinds = {r["kind"] for r in json.loads(body)}
        assert {"message_seen", "verdict", "case_opened", "pv_case_opened", "delivered"} <= kinds
        for name in ("response_time_breaches", "decisions_by_moderator", "dead_deliveries", "refused_actions"):
            assert _get(f"{base}/{name}.json")[0] == 200
        with pytest.raises(urllib.error.HTTPError):
            _get(f"{base}.json?sql=" + urllib.parse.quote("DELETE FROM audit"))
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    db = sqlite3.connect(tmp_path / "state" / "pharmamod.db")
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] > 0


def test_local_adapter_reads_stdin_and_skips_bad_lines(tmp_path):
    """`path = "-"`: a community export piped in; a bad line is reported with its number and skipped."""
    cfg = write_config(tmp_path, "-")
    feed = ('{"id": "s1", "text": "since I started ozempic I throw up every morning"}\n'
            '{broken\n'
            '{"id": "s3", "text": "nice weather"}\n')
    r = subprocess.run([*PHARMAMOD, "run", "--config", str(cfg)], cwd=tmp_path, input=feed, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert "line 2 skipped: invalid JSON" in r.stderr and "2 messages" in r.stdout
    db = sqlite3.connect(tmp_path / "state" / "pharmamod.db")
    assert db.execute("SELECT message_id FROM pv_cases").fetchall() == [("s1",)]


def test_a_lone_surrogate_in_the_input_is_stored_as_a_replacement_character(tmp_path):
    """JSON may carry "\\ud800", which is not text: SQLite cannot store it, and it once stopped the run."""
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "a", "text": "lone \\ud800 here, anyone on ozempic?"}\n'
                    '{"id": "b", "text": "since I started ozempic I throw up every morning"}\n')
    cfg = write_config(tmp_path, feed)
    out = pharmamod("run", "--config", str(cfg), cwd=tmp_path).stdout
    assert "2 new" in out
    db = sqlite3.connect(tmp_path / "state" / "pharmamod.db")
    text, = db.execute("SELECT text FROM messages WHERE message_id = 'a'").fetchone()
    assert text == "lone \ufffd here, anyone on ozempic?"
    assert db.execute("SELECT count(*) FROM pv_cases WHERE message_id = 'b'").fetchone()[0] == 1
