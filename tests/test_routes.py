"""Delivery routes end to end: real PV cases queued in a real SQLite outbox and sent to a real SMTP
server (aiosmtpd), a real HTTP receiver that checks webhook signatures itself with `hmac`, an E2B
folder and a JSONL drop.

Each attempt takes the steps `Runner._deliverer` takes (claim, send, delivered or failed with the
[outbox] settings); time is moved by passing `at=` instead of sleeping.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import ValidationError

from bot import audit, outbox
from bot.config import Config, ConfigError
from bot.e2b import HL7, ROOT_REPORT_ID, missing_elements
from bot.engine import screen
from bot.models import Author, Message
from bot.pv import build_pv_case, is_pv
from bot.routes import build_routes, verify_signature
from bot.store import open_store, parse_time, transaction

POST = "My daughter was hospitalised after taking Ozempic and ibuprofen, she had seizures and a rash"
DAY_ZERO = datetime(2024, 5, 1, 22, 5, 30, tzinfo=timezone.utc)
SECRET = "s3cret-for-tests"
SECRET_ENV = "PHARMAMOD_TEST_HOOK_SECRET"
NS = {"h": HL7}
# Small backoff so a whole retry story takes milliseconds of simulated time.
OUTBOX = {"max_attempts": 3, "backoff_seconds": 2.0, "backoff_max_seconds": 60.0}


# -- real parts -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_payload(rules, message_id: str = "m-1") -> dict:
    """A PV case as the case book queues it: a real post, screened, built, dumped to JSON."""
    msg = Message(text=POST, platform="discord", community="t2d", message_id=message_id,
                  author=Author(id="u1", display_name="Anne"),
                  permalink=f"https://discord.com/channels/1/2/{message_id}")
    verdict = screen(msg, rules)
    assert is_pv(verdict)
    case = build_pv_case(msg, verdict, DAY_ZERO, country="NL")
    assert case.serious  # "hospitalised": the subject must say SERIOUS
    return json.loads(case.model_dump_json())


@pytest.fixture
def payload(rules):
    return case_payload(rules)


@pytest.fixture
def db(tmp_path):
    d = open_store(tmp_path / "s.db")
    yield d
    d.close()


def setup(tmp_path, routes: dict, **outbox_cfg):
    cfg = Config.model_validate({"routes": routes, "outbox": {**OUTBOX, **outbox_cfg}, "base": tmp_path})
    return cfg, build_routes(cfg)


def queue(db, route: str, payload: dict, version: int = 1) -> str:
    """Queue a PV case delivery the way `CaseBook` does: key pv:<route>:<report id>:v<version>."""
    rid = payload["report_id"]
    key = f"pv:{route}:{rid}:v{version}"
    with transaction(db):
        assert outbox.enqueue(db, key, route, "pv_case", f"pv:{rid}", payload)
    return key


def attempt(db, cfg, route, at: datetime | None = None) -> tuple[outbox.Delivery, str, dict | str]:
    """One pass of the deliverer over one due row: (delivery, new state, detail or error)."""
    claimed = outbox.claim(db, {route.name}, at=at)
    assert len(claimed) == 1, f"expected one due row, got {claimed}"
    d = claimed[0]
    o = cfg.outbox
    try:
        detail = route.send(d)
    except outbox.DeliveryError as exc:
        state = outbox.failed(db, d, exc, max_attempts=o.max_attempts, backoff=o.backoff_seconds,
                              backoff_max=o.backoff_max_seconds, at=at)
        return d, state, str(exc)
    outbox.delivered(db, d, detail, at=at)
    return d, "delivered", detail


def row(db, key: str) -> dict:
    r = db.execute("SELECT state, attempts, next_at, last_error FROM outbox WHERE key = ?", (key,)).fetchone()
    return {"state": r[0], "attempts": r[1], "next_at": parse_time(r[2]), "last_error": r[3]}


def audit_kinds(db, key: str) -> list[str]:
    return [kind for kind, data in db.execute("SELECT kind, data FROM audit ORDER BY seq")
            if json.loads(data).get("key") == key]


def chain_ok(db) -> bool:
    _, problems = audit.verify(db)
    return problems == []


# -- SMTP -------------------------------------------------------------------------------------------

class Mailbox:
    """aiosmtpd handler keeping what arrives; `reject` makes it answer DATA with that reply."""

    def __init__(self):
        self.envelopes = []
        self.reject: str | None = None

    async def handle_DATA(self, server, session, envelope):
        if self.reject:
            return self.reject
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [email.message_from_bytes(e.original_content, policy=email.policy.default) for e in self.envelopes]


@pytest.fixture
def smtp():
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield ctl, box
    ctl.stop()


def smtp_route(port: int, **extra) -> dict:
    return {"mail": {"type": "smtp", "host": "127.0.0.1", "port": port, "from": "pharmamod@example.org",
                     "to": ["safety@example.org", "qa@example.org"], "timeout": 5, **extra}}


def test_smtp_mail_carries_case_key_and_both_attachments(tmp_path, db, payload, smtp):
    """The safety mailbox gets one mail per case: a subject a person can triage, the key that lets it
    drop a repeat, and the case as JSON and as E2B(R3) XML its database can import."""
    ctl, box = smtp
    cfg, routes = setup(tmp_path, smtp_route(ctl.port))
    key = queue(db, "mail", payload)
    d, state, detail = attempt(db, cfg, routes["mail"])
    assert state == "delivered" and row(db, key)["state"] == "delivered"

    [env] = box.envelopes
    assert env.mail_from == "pharmamod@example.org"
    assert env.rcpt_tos == ["safety@example.org", "qa@example.org"]
    [m] = box.messages()
    assert m["From"] == "pharmamod@example.org"
    assert m["To"] == "safety@example.org, qa@example.org"
    assert payload["report_id"] in m["Subject"] and "SERIOUS" in m["Subject"]
    assert m["X-Pharmamod-Idempotency-Key"] == key
    assert m["Message-ID"] == detail["message_id"]

    atts = {p.get_content_type(): p for p in m.iter_attachments()}
    assert set(atts) == {"application/json", "application/xml"}
    assert json.loads(atts["application/json"].get_content()) == payload
    xml = atts["application/xml"].get_content()
    xml = xml if isinstance(xml, bytes) else xml.encode()
    root = ET.fromstring(xml)
    assert missing_elements(xml) == []
    inv = root.find("h:PORR_IN049016UV/h:controlActProcess/h:subject/h:investigationEvent", NS)
    assert inv.find(f"h:id[@root='{ROOT_REPORT_ID}']", NS).get("extension") == payload["report_id"]  # C.1.1
    assert POST in inv.find("h:text", NS).text  # H.1 narrative

    # Deterministic Message-ID: the same delivery sent again carries the same one.
    routes["mail"].send(d)
    assert box.messages()[1]["Message-ID"] == m["Message-ID"]
    assert "delivered" in audit_kinds(db, key) and chain_ok(db)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # on purpose: no certs here
def test_smtp_logs_in_with_credentials_from_environment(tmp_path, db, payload, monkeypatch):
    """Relays that require AUTH get the username and password from the named env vars, never the file."""
    monkeypatch.setenv("PHARMAMOD_TEST_SMTP_USER", "pv-bot")
    monkeypatch.setenv("PHARMAMOD_TEST_SMTP_PASS", "hunter2")
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"pv-bot", b"hunter2"))

    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                     auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        cfg, routes = setup(tmp_path, smtp_route(ctl.port, username_env="PHARMAMOD_TEST_SMTP_USER",
                                                 password_env="PHARMAMOD_TEST_SMTP_PASS"))
        queue(db, "mail", payload)
        _, state, _ = attempt(db, cfg, routes["mail"])
    finally:
        ctl.stop()
    assert state == "delivered"
    assert logins == [(b"pv-bot", b"hunter2")]
    assert len(box.envelopes) == 1


def test_smtp_5xx_rejection_is_dead_after_one_attempt(tmp_path, db, payload, smtp):
    """A 5xx is the server's final word: retrying would only repeat it, so the row is dead and audited."""
    ctl, box = smtp
    box.reject = "550 5.7.1 Message rejected by policy"
    cfg, routes = setup(tmp_path, smtp_route(ctl.port))
    key = queue(db, "mail", payload)
    _, state, error = attempt(db, cfg, routes["mail"])
    assert state == "dead"
    r = row(db, key)
    assert r["state"] == "dead" and r["attempts"] == 1 and "550" in r["last_error"]
    assert audit_kinds(db, key) == ["delivery_dead"] and chain_ok(db)


def test_smtp_closed_port_is_transient_and_backs_off(tmp_path, db, payload):
    """Nobody listening is an outage, not a verdict: the row stays pending and waits 2 s, then 4 s."""
    port = free_port()  # nothing listens here
    cfg, routes = setup(tmp_path, smtp_route(port))
    key = queue(db, "mail", payload)
    t0 = datetime.now(timezone.utc)
    _, state, error = attempt(db, cfg, routes["mail"], at=t0)
    r = row(db, key)
    assert state == "pending" and r["state"] == "pending" and r["attempts"] == 1
    assert r["next_at"] == t0 + timedelta(seconds=2)
    assert f"127.0.0.1:{port}" in r["last_error"]
    assert outbox.claim(db, {"mail"}, at=t0 + timedelta(seconds=1)) == []  # not due yet

    t1 = r["next_at"]
    _, state, _ = attempt(db, cfg, routes["mail"], at=t1)
    r = row(db, key)
    assert state == "pending" and r["attempts"] == 2 and r["next_at"] == t1 + timedelta(seconds=4)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A certificate for 127.0.0.1 that no trust store knows, as a man in the middle would present."""
    d = tmp_path_factory.mktemp("tls")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem"), "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate: {exc}")
    return d / "c.pem", d / "k.pem"


def test_smtp_implicit_tls_refuses_an_untrusted_certificate(tmp_path, db, payload, self_signed):
    """With ssl = true the server's certificate must be checked, like STARTTLS and the webhook do."""
    cert, key_file = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key_file)
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=free_port(), ssl_context=server_ctx)
    ctl.start()
    try:
        cfg, routes = setup(tmp_path, smtp_route(ctl.port, ssl=True))
        queue(db, "mail", payload)
        _, state, error = attempt(db, cfg, routes["mail"])
    finally:
        ctl.stop()
    assert box.envelopes == [], "the case went to a server whose certificate nobody trusts"
    assert state != "delivered"


# -- webhook ----------------------------------------------------------------------------------------

class Receiver:
    """A webhook receiver as a customer writes it: checks the signature with hmac, drops repeated keys.

    `script` holds the answers to give, in order, as (status, headers); then 200. A bad signature or
    a stale timestamp gets 401; an unknown path gets a loud 404.
    """

    def __init__(self, secret: str):
        self.secret = secret
        self.script: list[tuple[int, dict]] = []
        self.arrivals: list[dict] = []  # every POST that passed the signature check
        self.kept: dict[str, dict] = {}  # what the receiver stores: one per Idempotency-Key
        self.gets: list[str] = []
        self.lock = threading.Lock()

    def check(self, ts: str, body: bytes, signature: str) -> bool:
        expected = "v1=" + hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        try:
            fresh = abs(time.time() - int(ts)) <= 300
        except ValueError:
            return False
        return fresh and hmac.compare_digest(expected.encode(), signature.encode())

    def handler(self):
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, headers: dict | None = None, body: bytes = b""):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/hook":
                    return self.answer(404, body=b"no such endpoint")
                ts = self.headers.get("X-Pharmamod-Timestamp", "")
                if not rx.check(ts, body, self.headers.get("X-Pharmamod-Signature", "")):
                    return self.answer(401, body=b"bad signature")
                with rx.lock:
                    key = self.headers["Idempotency-Key"]
                    rx.arrivals.append({"key": key, "body": json.loads(body), "headers": dict(self.headers)})
                    status, headers = rx.script.pop(0) if rx.script else (200, {})
                    if status == 200:
                        rx.kept.setdefault(key, json.loads(body))
                self.answer(status, headers)

            def do_GET(self):
                rx.gets.append(self.path)
                if self.path == "/landing":  # where a misconfigured proxy sends browsers
                    return self.answer(200, {"Content-Type": "text/html"}, b"<h1>Welcome</h1>")
                self.answer(404, body=b"no such endpoint")

        return Handler


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    rx = Receiver(SECRET)
    server = ThreadingHTTPServer(("127.0.0.1", 0), rx.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rx.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield rx
    server.shutdown()
    server.server_close()


def hook_route(url: str) -> dict:
    return {"hook": {"type": "webhook", "url": url, "secret_env": SECRET_ENV, "timeout": 5}}


def test_webhook_signed_post_is_verified_delivered_and_audited(tmp_path, db, payload, receiver):
    """The receiver can check origin and freshness with nothing but the shared secret and hmac."""
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    _, state, detail = attempt(db, cfg, routes["hook"])
    assert state == "delivered" and detail == {"status": 200}

    [hit] = receiver.arrivals
    assert hit["key"] == key
    assert hit["body"]["key"] == key and hit["body"]["kind"] == "pv_case" and hit["body"]["data"] == payload
    assert hit["headers"]["X-Pharmamod-Signature"].startswith("v1=")
    assert abs(int(hit["headers"]["X-Pharmamod-Timestamp"]) - time.time()) < 60
    assert row(db, key)["state"] == "delivered"
    assert audit_kinds(db, key) == ["delivered"] and chain_ok(db)


def test_webhook_500_twice_then_200_is_delivered_on_third_attempt(tmp_path, db, payload, receiver):
    """A receiver that is briefly down gets the case once it is back, on the backoff schedule."""
    receiver.script = [(500, {}), (500, {})]
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    t = datetime.now(timezone.utc)
    for expected_wait in (2, 4):
        _, state, error = attempt(db, cfg, routes["hook"], at=t)
        assert state == "pending" and "HTTP 500" in error
        assert row(db, key)["next_at"] == t + timedelta(seconds=expected_wait)
        t = row(db, key)["next_at"]
    d, state, _ = attempt(db, cfg, routes["hook"], at=t)
    assert state == "delivered" and d.attempts == 3 and row(db, key)["attempts"] == 3
    assert len(receiver.arrivals) == 3 and list(receiver.kept) == [key]
    assert audit_kinds(db, key) == ["delivered"] and chain_ok(db)


def test_webhook_429_retry_after_sets_the_next_attempt(tmp_path, db, payload, receiver):
    """A receiver that says when to come back is obeyed instead of the backoff (2 s here)."""
    receiver.script = [(429, {"Retry-After": "7"})]
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    t = datetime.now(timezone.utc)
    _, state, _ = attempt(db, cfg, routes["hook"], at=t)
    assert state == "pending"
    assert row(db, key)["next_at"] == t + timedelta(seconds=7)
    assert outbox.claim(db, {"hook"}, at=t + timedelta(seconds=6)) == []
    _, state, _ = attempt(db, cfg, routes["hook"], at=t + timedelta(seconds=7))
    assert state == "delivered"


def test_webhook_absurd_retry_after_is_capped(tmp_path, db, payload, receiver):
    """One misbehaving receiver must not stop the deliverer or park a case for centuries."""
    receiver.script = [(429, {"Retry-After": "999999999999"})]
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    t = datetime.now(timezone.utc)
    _, state, _ = attempt(db, cfg, routes["hook"], at=t)
    assert state == "pending"
    assert row(db, key)["next_at"] <= t + timedelta(seconds=cfg.outbox.backoff_max_seconds)


def test_webhook_401_is_dead_at_once_and_audited(tmp_path, db, payload, receiver, monkeypatch):
    """A wrong secret (receiver answers 401) will not fix itself: dead at once, audited for an operator."""
    monkeypatch.setenv(SECRET_ENV, "rotated-on-our-side-only")
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    _, state, error = attempt(db, cfg, routes["hook"])
    assert state == "dead" and "HTTP 401" in error
    assert row(db, key)["attempts"] == 1
    assert receiver.arrivals == []  # the receiver refused the signature
    assert audit_kinds(db, key) == ["delivery_dead"] and chain_ok(db)


def test_webhook_dead_after_max_attempts_then_retry_dead_revives_it(tmp_path, db, payload, receiver):
    """Transient failures stop after max_attempts (3 here); `outbox retry` gives the row a fresh start."""
    receiver.script = [(503, {})] * 3
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    t = datetime.now(timezone.utc)
    states = []
    for _ in range(3):
        _, state, _ = attempt(db, cfg, routes["hook"], at=t)
        states.append(state)
        t = row(db, key)["next_at"]
    assert states == ["pending", "pending", "dead"]
    assert row(db, key)["attempts"] == 3 and audit_kinds(db, key) == ["delivery_dead"]
    assert outbox.claim(db, {"hook"}, at=t + timedelta(days=1)) == []  # dead rows are never claimed

    assert outbox.retry_dead(db, actor="anna", key=key) == 1
    r = row(db, key)
    assert r["state"] == "pending" and r["attempts"] == 0
    d, state, _ = attempt(db, cfg, routes["hook"])
    assert state == "delivered" and d.attempts == 1
    assert audit_kinds(db, key) == ["delivery_dead", "outbox_retry", "delivered"] and chain_ok(db)


def test_webhook_recovered_row_is_sent_again_with_the_same_key(tmp_path, db, payload, receiver):
    """A crash after the POST but before `delivered` re-sends after `recover`; the same
    Idempotency-Key lets the receiver keep one copy."""
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    [d] = outbox.claim(db, {"hook"})
    routes["hook"].send(d)  # arrived; then the process died before outbox.delivered
    assert row(db, key)["state"] == "sending"

    assert outbox.recover(db) == 1
    assert row(db, key)["state"] == "pending"
    d2, state, _ = attempt(db, cfg, routes["hook"])
    assert state == "delivered" and d2.attempts == 2
    assert [a["key"] for a in receiver.arrivals] == [key, key]
    assert receiver.arrivals[0]["body"] == receiver.arrivals[1]["body"]
    assert list(receiver.kept) == [key]
    assert audit_kinds(db, key) == ["delivered"] and chain_ok(db)


def test_webhook_redirect_is_not_taken_as_delivered(tmp_path, db, payload, receiver):
    """Only the receiver's own 2xx to our POST proves a delivery."""
    receiver.script = [(302, {"Location": "/landing"})]
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    _, state, _ = attempt(db, cfg, routes["hook"])
    assert receiver.kept == {}
    assert state != "delivered" and row(db, key)["state"] != "delivered"


def test_verify_signature_accepts_fresh_and_rejects_stale_or_tampered():
    """The documented receiver check: right secret, body unchanged, timestamp within five minutes."""
    body = b'{"key":"pv:hook:x:v1","kind":"pv_case","data":{}}'
    ts = "1700000000"
    sig = "v1=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, ts, body, sig, now=1700000000 + 10)
    assert verify_signature(SECRET, ts, body, sig, now=1700000000 + 300)
    assert not verify_signature(SECRET, ts, body, sig, now=1700000000 + 301)  # replayed later
    assert not verify_signature(SECRET, ts, body.replace(b"{}", b'{"x":1}'), sig, now=1700000000)  # tampered
    assert not verify_signature("other-secret", ts, body, sig, now=1700000000)
    assert not verify_signature(SECRET, "not-a-time", body, sig, now=1700000000)


def test_verify_signature_rejects_a_non_ascii_signature_without_raising():
    """Whatever arrives in the header, the check answers False rather than blowing up the receiver."""
    assert verify_signature(SECRET, "1700000000", b"{}", "v1=\u00e9", now=1700000000) is False


# -- E2B folder and JSONL drop ---------------------------------------------------------------------

def test_e2b_folder_writes_one_file_per_case_version_atomically(tmp_path, db, payload):
    """A follow-up (v2) is a new file beside v1; no .tmp is ever left for an importer to pick up."""
    cfg, routes = setup(tmp_path, {"e2b": {"type": "e2b", "path": "icsr"}})
    queue(db, "e2b", payload, version=1)
    queue(db, "e2b", payload, version=2)
    details = []
    for d in outbox.claim(db, {"e2b"}):
        details.append(routes["e2b"].send(d))
        outbox.delivered(db, d, details[-1])
    folder = tmp_path / "icsr"
    rid = payload["report_id"]
    assert sorted(p.name for p in folder.iterdir()) == [f"{rid}-v1.xml", f"{rid}-v2.xml"]
    assert {Path(d["file"]).name for d in details} == {f"{rid}-v1.xml", f"{rid}-v2.xml"}
    for f in folder.iterdir():
        assert missing_elements(f.read_bytes()) == []


def test_e2b_folder_same_delivery_twice_leaves_one_file(tmp_path, db, payload):
    """A repeated attempt replaces the file in place: the importer still sees one file for the version."""
    cfg, routes = setup(tmp_path, {"e2b": {"type": "e2b", "path": "icsr"}})
    queue(db, "e2b", payload)
    [d] = outbox.claim(db, {"e2b"})
    first = routes["e2b"].send(d)
    second = routes["e2b"].send(d)
    assert first == second
    assert [p.name for p in (tmp_path / "icsr").iterdir()] == [Path(first["file"]).name]


def test_e2b_folder_refuses_what_is_not_a_pv_case(tmp_path, db):
    """A medical inquiry routed to an E2B folder is a configuration mistake: permanent, not retried."""
    cfg, routes = setup(tmp_path, {"e2b": {"type": "e2b", "path": "icsr"}})
    with transaction(db):
        outbox.enqueue(db, "medinfo:e2b:m1:v1", "e2b", "medical_inquiry", "msg:1", {"text": "dose?"})
    _, state, error = attempt(db, cfg, routes["e2b"])
    assert state == "dead" and "PV cases only" in error


def test_e2b_folder_same_delivery_twice_leaves_an_identical_file(tmp_path, db, payload):
    """An importer that sees the file change would import the case again under a new batch number."""
    cfg, routes = setup(tmp_path, {"e2b": {"type": "e2b", "path": "icsr"}})
    queue(db, "e2b", payload)
    [d] = outbox.claim(db, {"e2b"})
    path = Path(routes["e2b"].send(d)["file"])
    before = path.read_bytes()
    time.sleep(1.05 - time.time() % 1)  # into the next second
    routes["e2b"].send(d)
    assert path.read_bytes() == before


def test_jsonl_repeated_attempt_with_same_key_adds_no_second_line(tmp_path, db, rules):
    """After a crash between append and `delivered`, the re-sent row finds its own line and stops."""
    cfg, routes = setup(tmp_path, {"drop": {"type": "jsonl", "path": "out/pv.jsonl"}})
    key = queue(db, "drop", case_payload(rules, "m-1"))
    [d] = outbox.claim(db, {"drop"})
    routes["drop"].send(d)  # written; the process died before outbox.delivered
    outbox.recover(db)
    d2, state, detail = attempt(db, cfg, routes["drop"])
    assert d2.attempts == 2 and state == "delivered" and detail.get("already") is True

    other = queue(db, "drop", case_payload(rules, "m-2"))
    attempt(db, cfg, routes["drop"])
    lines = [json.loads(x) for x in (tmp_path / "out" / "pv.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["key"] for x in lines] == [key, other]
    assert lines[0]["data"]["report_id"] == "pharmamod-discord-m-1"


def test_jsonl_repeated_attempt_with_non_ascii_key_adds_no_second_line(tmp_path, db, rules):
    """Message ids come from platforms and local files; a repeat must be found whatever they contain."""
    cfg, routes = setup(tmp_path, {"drop": {"type": "jsonl", "path": "pv.jsonl"}})
    queue(db, "drop", case_payload(rules, "café-1"))
    [d] = outbox.claim(db, {"drop"})
    routes["drop"].send(d)
    outbox.recover(db)
    attempt(db, cfg, routes["drop"])
    assert len((tmp_path / "pv.jsonl").read_text(encoding="utf-8").splitlines()) == 1


@pytest.mark.parametrize("route", [{"type": "jsonl", "path": "blocked/pv.jsonl"},
                                   {"type": "e2b", "path": "blocked/icsr"}], ids=["jsonl", "e2b"])
def test_file_routes_report_io_errors_as_delivery_errors(tmp_path, db, payload, route):
    """A folder that cannot be written is a failed attempt the outbox retries, not a crash."""
    (tmp_path / "blocked").write_text("a file where the folder should be")
    cfg, routes = setup(tmp_path, {"out": route})
    key = queue(db, "out", payload)
    _, state, _ = attempt(db, cfg, routes["out"])
    assert state == "pending" and row(db, key)["state"] == "pending"


# -- outbox ----------------------------------------------------------------------------------------

def test_claim_is_not_starved_by_rows_for_routes_it_does_not_serve(tmp_path, db, payload, receiver):
    """Rows for a route that is gone must not block the PV cases of the routes that are there."""
    t = datetime.now(timezone.utc) - timedelta(minutes=5)
    with transaction(db):
        for i in range(200):
            outbox.enqueue(db, f"hold:old:{i}", "adapter:gone", "hold", f"case:{i}", {}, at=t)
    cfg, routes = setup(tmp_path, hook_route(receiver.url))
    key = queue(db, "hook", payload)
    claimed = outbox.claim(db, {"hook"})
    assert [d.key for d in claimed] == [key]


# -- configuration ---------------------------------------------------------------------------------

def test_webhook_plain_http_to_a_remote_host_is_refused():
    """PV cases carry health data: plain http is allowed only to the local machine, for testing."""
    with pytest.raises(ValidationError, match="webhook url must be https://"):
        Config.model_validate({"routes": hook_route("http://safety.example.com/hook")})
    for ok in ("https://safety.example.com/hook", "http://127.0.0.1:8080/hook", "http://localhost/hook"):
        Config.model_validate({"routes": hook_route(ok)})


@pytest.mark.parametrize("url", ["http://127.0.0.1.nip.io/hook", "http://localhost.evil.example/hook",
                                 "http://localhost@evil.example/hook"])
def test_webhook_plain_http_to_a_host_that_only_looks_local_is_refused(url):
    """The host, not the start of the string, decides whether plain http stays on this machine."""
    with pytest.raises(ValidationError):
        Config.model_validate({"routes": hook_route(url)})


def test_missing_secret_names_the_variable_and_no_value(tmp_path, monkeypatch):
    """Start-up stops with the variable to export, and never prints a secret it did find."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    cfg = Config.model_validate({"routes": hook_route("https://safety.example.com/hook")})
    with pytest.raises(ConfigError, match=SECRET_ENV):
        build_routes(cfg)

    monkeypatch.setenv("PHARMAMOD_TEST_SMTP_USER", "user-value-7f3a")
    monkeypatch.delenv("PHARMAMOD_TEST_SMTP_PASS", raising=False)
    cfg = Config.model_validate({"routes": smtp_route(25, username_env="PHARMAMOD_TEST_SMTP_USER",
                                                      password_env="PHARMAMOD_TEST_SMTP_PASS")})
    with pytest.raises(ConfigError) as err:
        build_routes(cfg)
    assert "PHARMAMOD_TEST_SMTP_PASS" in str(err.value)
    assert "user-value-7f3a" not in str(err.value)


def test_webhook_url_with_credentials_is_refused():
    """A user or password in the URL would reach logs and the audit log with every failed attempt."""
    from bot.config import Config as _Config

    with pytest.raises(Exception, match="no user or password"):
        _Config.model_validate({"routes": {"h": {"type": "webhook", "url": "https://u:pw@hooks.example/x",
                                                  "secret_env": "S"}}})
