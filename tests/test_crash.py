"""Kill `pharmamod run` at random moments and restart it: nothing is lost, nothing is delivered twice.

Why this test exists: `bot/runner.py` and `bot/outbox.py` promise that a message acknowledged is a
message stored, that every delivery a case asks for is a row in the same transaction, and that a
delivery cut off by a crash is sent again with its idempotency key so the receiver keeps one copy.
Those promises only mean something against a real crash, so this test SIGKILLs a real child
process (no clean shutdown, no `finally`) many times at seeded random moments (during start-up,
mid-batch, mid-delivery), restarts it on the same store, and finally lets it run to the end. The
result must be indistinguishable from one uninterrupted run into a fresh store (the reference):

- every valid input line is in `messages` exactly once, none edited;
- the same cases and PV cases (by message and by report id) as the reference;
- no outbox row left pending, sending or dead, and the same outbox keys as the reference;
- the JSONL drops (PV and medinfo) and the local adapter's actions file hold each key once;
- the webhook receiver got every PV key the reference sent. It is a real HTTP server in this
  process that records every POST and answers 200, like a receiver that drops repeats by their
  `Idempotency-Key`: a repeat is legitimate only when a kill cut a delivery off after the POST
  arrived but before the outbox marked it delivered. The deliverer sends one delivery at a time,
  so there can be at most one such repeat per kill: repeated keys <= kills;
- the audit chain verifies.

A run that dies by itself (exit code != 0) is, for the data, one more crash: it is counted with
the kills, and the last run is started again until it finishes, as a supervisor would. (Restarts
once died with "database is locked" when reminders shared the processor's connection; the test at
the end keeps that fixed.)
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot import audit
from bot.store import open_store

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240611
MESSAGES = 1_500
KILLS = 10
STARTUP_KILLS = 2  # of the KILLS, killed while starting (loading rules, recovering the outbox)
KILL_AFTER = (0.1, 1.5)  # seconds after start-up for the others: one whole run's work takes about 3 s
SECRET_ENV = "PHARMAMOD_TEST_WEBHOOK_SECRET"

CHATTER = [
    "good morning everyone, how was your weekend?", "thanks for the tips, really helpful",
    "anyone going to the meetup on saturday?", "my dog kept me up all night lol",
    "the weather is awful again", "welcome to the group, glad you found us!",
    "walked 10k steps today, proud of myself", "does anyone have a good soup recipe?",
    "my appointment got moved to next week again", "feeling a bit better today",
    "goedemorgen allemaal, lekker weer vandaag", "guten Morgen zusammen, wie geht's euch?",
]
AE_TEMPLATES = [
    "since I started {d} I throw up every morning", "been on {d} for two weeks and my hair is falling out",
    "{d} gives me terrible headaches, is that normal?", "my mum started {d} and now she has awful diarrhoea",
    "after the second dose of {d} I got a rash all over my arms",
]
DRUGS = ["ozempic", "metformin", "sertraline", "ibuprofen", "lisinopril", "atorvastatin", "mounjaro"]
ADVICE = ["just take 400mg of ibuprofen three times a day", "you should double your {d}, it works better",
          "ask your doctor about {d}, it changed my life"]


def _corpus() -> tuple[list[str], list[str]]:
    flagged, benign = [], []
    for f in sorted((ROOT / "tests/corpus").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                (flagged if rec["categories"] else benign).append(rec["text"])
    return flagged, benign


def write_input(path: Path, rng: random.Random) -> set[str]:
    """About 1,500 lines: 55 % benign chat, 20 % AE posts, 25 % corpus posts naming drugs or giving
    advice; unique ids; a few unreadable lines that must be skipped, not stored. Returns the valid ids."""
    flagged, benign = _corpus()
    ids = set()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(MESSAGES):
            r = rng.random()
            if r < 0.55:
                text = rng.choice(benign + CHATTER)
            elif r < 0.75:
                text = rng.choice(AE_TEMPLATES).format(d=rng.choice(DRUGS))
            elif r < 0.80:
                text = rng.choice(ADVICE).format(d=rng.choice(DRUGS))
            else:
                text = rng.choice(flagged)
            mid = f"m{i:05d}"
            ids.add(mid)
            f.write(json.dumps({"id": mid, "author": f"user{rng.randrange(200)}", "channel": "general",
                                "text": f"{text} ({i})"}, ensure_ascii=False) + "\n")
            if i % 500 == 250:  # unreadable lines: reported and skipped
                f.write('{"id": "bad-json", "text": \n')
                f.write(json.dumps({"id": f"no-text-{i}", "author": "x"}) + "\n")
    return ids


class Receiver:
    """The webhook's other end: records every POST (path, Idempotency-Key, body) and answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                try:
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                    data = json.loads(body)
                except (ValueError, TypeError, OSError):  # a POST cut off by a kill: never arrived
                    return
                with receiver.lock:
                    receiver.posts.append((self.path, self.headers["Idempotency-Key"], data))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keys(self, path: str) -> Counter:
        with self.lock:
            for _, key, data in self.posts:
                assert data["key"] == key, "the Idempotency-Key header and the body's key differ"
            return Counter(key for p, key, _ in self.posts if p == path)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(folder: Path, source: Path, webhook_url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "config.toml"
    cfg.write_text(f"""
[store]
path = "store.db"

[rules]
reload_seconds = 0

[outbox]
backoff_seconds = 0.2
backoff_max_seconds = 1
poll_seconds = 0.1

[service]
metrics_port = 0

[community.t2d]
country = "NL"
pv_routes = ["pv-jsonl", "pv-webhook"]
medinfo_routes = ["medinfo-jsonl"]

[routes.pv-jsonl]
type = "jsonl"
path = "out/pv.jsonl"

[routes.pv-webhook]
type = "webhook"
url = "{webhook_url}"
secret_env = "{SECRET_ENV}"
timeout = 5

[routes.medinfo-jsonl]
type = "jsonl"
path = "out/medinfo.jsonl"

[adapters.local]
path = {json.dumps(str(source))}
community = "t2d"
actions = "out/actions.jsonl"
""", encoding="utf-8")
    return cfg


def command(cfg: Path) -> list[str]:
    script = Path(sys.executable).parent / "pharmamod"
    if script.exists():
        return [str(script), "run", "--config", str(cfg)]
    return [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)]


def start(cfg: Path, log) -> subprocess.Popen:
    env = {**os.environ, SECRET_ENV: "s3cret", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command(cfg), cwd=cfg.parent, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_to_end(cfg: Path, log, attempts: int = 20) -> int:
    """Run until it finishes cleanly; return how many runs died by themselves on the way (for the
    data one more crash, so the run is started again as a supervisor would)."""
    for died in range(attempts):
        proc = start(cfg, log)
        if proc.wait(timeout=60) == 0:
            return died
    log.flush()
    pytest.fail(f"pharmamod run failed {attempts} times in a row:\n"
                f"{Path(log.name).read_text(errors='replace')[-3000:]}")


def started_runs(db_path: Path) -> int:
    """How many runs have finished starting (audited `service_started`) on this store."""
    if not db_path.exists():
        return 0
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM audit WHERE subject = 'service' AND kind = 'service_started'"
                           ).fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    finally:
        con.close()


def kill_at_random(cfg: Path, log, rng: random.Random, during_startup: bool) -> int | None:
    """Start a run and SIGKILL it (no signal handler, no finally, no flush) at a random moment:
    while it starts, or a random delay after it has started. Return its exit code if it ended first."""
    db_path = cfg.parent / "store.db"
    before = started_runs(db_path)
    proc = start(cfg, log)
    t0 = time.monotonic()
    if during_startup:
        delay = rng.uniform(0.1, 1.0)
    else:
        delay = rng.uniform(*KILL_AFTER)
        while started_runs(db_path) == before and proc.poll() is None and time.monotonic() - t0 < 30:
            time.sleep(0.02)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def progress(db_path: Path) -> str:
    """What a kill interrupted: messages stored and outbox rows by state."""
    if not db_path.exists():
        return "no store yet"
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        n = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        states = dict(con.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    except sqlite3.OperationalError:
        return "store not migrated yet"
    finally:
        con.close()
    return f"{n} messages, outbox {states}"


def jsonl_keys(path: Path, field: str = "key") -> Counter:
    if not path.exists():
        return Counter()
    return Counter(json.loads(line)[field] for line in path.read_text(encoding="utf-8").splitlines() if line)


def snapshot(folder: Path) -> dict:
    db = open_store(folder / "store.db", readonly=True)
    try:
        count, problems = audit.verify(db)
        return {
            "messages": db.execute("SELECT message_id, count(*), max(versions) FROM messages "
                                   "GROUP BY platform, message_id").fetchall(),
            "cases": sorted(r[0] for r in db.execute("SELECT message_id FROM cases")),
            "pv_cases": sorted(r[0] for r in db.execute("SELECT report_id FROM pv_cases")),
            "outbox": dict(db.execute("SELECT key, state FROM outbox").fetchall()),
            "audit": (count, [str(p) for p in problems]),
        }
    finally:
        db.close()


def test_kill_and_restart_loses_nothing_and_delivers_once(tmp_path):
    """Ten SIGKILLs at seeded random moments, then a run to the end: same result as one clean run."""
    rng = random.Random(SEED)
    source = tmp_path / "community.jsonl"
    valid_ids = write_input(source, rng)

    with Receiver() as hook:
        ref_dir, crash_dir = tmp_path / "reference", tmp_path / "crash"
        ref_cfg = write_config(ref_dir, source, hook.url + "/reference")
        crash_cfg = write_config(crash_dir, source, hook.url + "/crash")

        with open(ref_dir / "run.log", "ab") as log:
            proc = start(ref_cfg, log)
            assert proc.wait(timeout=60) == 0, (ref_dir / "run.log").read_text(errors="replace")[-3000:]

        kills, died, interrupted = 0, 0, []
        startup = set(rng.sample(range(KILLS), STARTUP_KILLS))
        with open(crash_dir / "run.log", "ab") as log:
            for n in range(KILLS):
                rc = kill_at_random(crash_cfg, log, rng, during_startup=n in startup)
                kills += rc is None
                died += bool(rc)
                how = (f"exited {rc} by itself" if rc is not None
                       else "killed while starting" if n in startup else "killed after start-up")
                interrupted.append(f"{how}; {progress(crash_dir / 'store.db')}")
            died += run_to_end(crash_cfg, log)
        webhook_ref, webhook_crash = hook.keys("/reference"), hook.keys("/crash")

    ref, got = snapshot(ref_dir), snapshot(crash_dir)
    after_kills = "\n".join(f"  kill {i + 1}: {p}" for i, p in enumerate(interrupted))
    assert kills + died >= KILLS // 2, f"only {kills + died} runs were interrupted before finishing:\n{after_kills}"
    # A restart after a kill must start cleanly: no run may die by itself.
    assert died == 0, f"{died} runs died by themselves:\n{(crash_dir / 'run.log').read_text(errors='replace')[-3000:]}"

    # Nothing lost, nothing stored twice, no message seen as edited.
    assert {m for m, _, _ in got["messages"]} == valid_ids
    assert all(n == 1 and v == 1 for _, n, v in got["messages"])
    assert got["messages"] == ref["messages"]

    # The same cases and PV cases as one uninterrupted run.
    assert ref["pv_cases"], "the input should open PV cases"
    assert len(got["cases"]) == len(ref["cases"]) and got["cases"] == ref["cases"]
    assert len(got["pv_cases"]) == len(ref["pv_cases"]) and got["pv_cases"] == ref["pv_cases"]

    # Every delivery made, none left over.
    stuck = {k: s for k, s in got["outbox"].items() if s != "delivered"}
    assert not stuck, f"outbox rows not delivered: {dict(list(stuck.items())[:10])}"
    assert set(got["outbox"]) == set(ref["outbox"])
    pv_keys = {k for k in ref["outbox"] if k.startswith("pv:pv-jsonl:")}
    hook_keys = {k for k in ref["outbox"] if k.startswith("pv:pv-webhook:")}
    medinfo_keys = {k for k in ref["outbox"] if k.startswith("medinfo:")}
    action_keys = {k for k in ref["outbox"] if not k.startswith(("pv:", "medinfo:"))}
    assert pv_keys and hook_keys and action_keys

    # Each file route holds each key once.
    for name, want in (("pv.jsonl", pv_keys), ("medinfo.jsonl", medinfo_keys), ("actions.jsonl", action_keys)):
        seen = jsonl_keys(crash_dir / "out" / name)
        assert set(seen) == want, f"{name}: missing {sorted(want - set(seen))[:5]}, extra {sorted(set(seen) - want)[:5]}"
        doubled = {k: n for k, n in seen.items() if n > 1}
        assert not doubled, f"{name}: keys written more than once: {doubled}"

    # The webhook got every key; a repeat only for a delivery a kill cut off (at most one per kill).
    assert set(webhook_ref) == hook_keys and all(n == 1 for n in webhook_ref.values())
    assert set(webhook_crash) == hook_keys
    repeated = {k: n for k, n in webhook_crash.items() if n > 1}
    cut_off = kills + died  # a run that died by itself can leave its one in-flight delivery `sending` too
    assert sum(n - 1 for n in repeated.values()) <= cut_off, f"{repeated} after {kills} kills, {died} deaths"

    # The audit chain survived every kill.
    assert got["audit"][1] == [], got["audit"][1]
    assert ref["audit"][1] == []

    # The test is only worth something if kills landed mid-work: report where they fell.
    print(f"\n{kills} kills, {died} runs died by themselves, {len(repeated)} webhook repeats; after each:\n"
          f"{after_kills}")


async def test_reminders_run_beside_a_batch_without_sharing_its_transaction(tmp_path, monkeypatch):
    """The housekeeper's reminder pass may run while the processor has a batch open; it must work on
    its own connection, not inside that batch's transaction from another thread.

    Made deterministic: the first held message's batch stays open until the first reminder pass has
    run (or 3 s), and the community's response time is already running out, so a reminder pass that
    sees the uncommitted case tries to start its own transaction inside the batch's and fails; the
    housekeeper task then dies silently and no reminder is ever sent again.
    """
    from bot.cases import CaseBook
    from bot.config import load_config
    from bot.runner import Runner

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate([
        "since I started ozempic I throw up every morning", "good morning everyone", "thanks all"])))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[store]
path = "store.db"
[rules]
reload_seconds = 0
[service]
metrics_port = 0
[community.c]
respond_within_hours = 1
remind_before_hours = 2
[adapters.local]
path = {json.dumps(str(source))}
community = "c"
actions = "actions.jsonl"
""")
    in_batch, remind_done, errors = threading.Event(), threading.Event(), []
    record, remind = CaseBook.record_in_transaction, CaseBook.remind

    def record_and_wait(self, *args, **kwargs):
        out = record(self, *args, **kwargs)
        if out.case_id is not None and not in_batch.is_set():
            in_batch.set()
            remind_done.wait(3)  # keep this batch's transaction open while the reminder pass runs
        return out

    def remind_during_batch(self, at=None):
        in_batch.wait(10)
        try:
            return remind(self, at)
        except Exception as exc:
            errors.append(exc)
            raise
        finally:
            remind_done.set()

    monkeypatch.setattr(CaseBook, "record_in_transaction", record_and_wait)
    monkeypatch.setattr(CaseBook, "remind", remind_during_batch)
    runner = Runner(load_config(cfg))
    await runner.run()
    assert remind_done.is_set(), "the housekeeper never ran a reminder pass"
    assert errors == [], f"the reminder pass failed inside the processor's transaction: {errors!r}"
