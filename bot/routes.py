"""Where PV cases and medical inquiries go: SMTP mail, a signed HTTPS webhook, an E2B(R3) folder, a
JSONL drop. Each route sends one outbox `Delivery` and raises `DeliveryError` when it cannot; the
outbox decides about retries. Every route carries the delivery's idempotency key, so the receiver
keeps one copy when an attempt is repeated after a crash.

Webhook signature (for receivers): header `X-Pharmamod-Signature: v1=<hex>` where hex is
HMAC-SHA256(secret, "<X-Pharmamod-Timestamp>.<raw body>"); reject a timestamp more than five
minutes old (replay) and a repeated `Idempotency-Key`. `verify_signature` does exactly that check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from .config import Config, E2BRoute, JsonlRoute, SmtpRoute, WebhookRoute, secret
from .outbox import Delivery, DeliveryError
from .pv import PVCase
from .store import parse_time

SIGNATURE_TOLERANCE = 300  # seconds


class Route(Protocol):
    name: str

    def send(self, d: Delivery) -> dict: ...


def sign(secret_value: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret_value.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret_value: str, timestamp: str, body: bytes, signature: str,
                     now: float | None = None, tolerance: int = SIGNATURE_TOLERANCE) -> bool:
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret_value, timestamp, body).encode(),
                                                    signature.encode("utf-8", "replace"))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def summary(d: Delivery) -> tuple[str, str]:
    """Subject and plain-text body for a person reading the delivery."""
    p = d.payload
    if d.kind == "pv_case":
        serious = "SERIOUS" if any(p.get("seriousness", {}).values()) else "non-serious"
        due = min((x["due"] for x in p.get("deadlines", [])), default="no expedited deadline")
        missing = [k for k, c in p.get("criteria", {}).items() if not c.get("present")]
        lines = [
            f"Possible {' and '.join(k.replace('_', ' ') for k in p.get('kinds', []))} seen on {p['platform']} "
            f"({p['community']}), report {p['report_id']}.",
            f"Day zero (first seen): {p['day_zero']}",
            f"Seriousness: {serious} {', '.join(k for k, v in p.get('seriousness', {}).items() if v)}",
            f"Due: {due}",
            f"Suspect drug(s): {', '.join(s['as_reported'] for s in p.get('suspect_drugs', [])) or 'missing'}",
            f"Event(s) as reported: {', '.join(p.get('events', [])) or 'missing'}",
            f"Special situation(s): {', '.join(p.get('special_situations', [])) or 'none'}",
            f"Patient: {p.get('patient')}",
            f"Minimum criteria missing: {', '.join(missing) or 'none'}",
            "", "Post:", p.get("narrative", ""), "",
            "The full case is attached as JSON and as ICH E2B(R3) XML.",
        ]
        return f"[pharmamod] {serious} PV case {p['report_id']} due {str(due)[:10]}", "\n".join(lines)
    lines = [f"Medical inquiry seen on {p.get('platform')} ({p.get('community')}), message {p.get('message_id')}.",
             "", p.get("text") or "", "", p.get("permalink") or ""]
    return f"[pharmamod] medical inquiry from {p.get('community')}", "\n".join(lines)


class SmtpSender:
    def __init__(self, name: str, cfg: SmtpRoute, pv_sender: str, pv_receiver: str):
        self.name, self.cfg = name, cfg
        self.user, self.password = secret(cfg.username_env), secret(cfg.password_env)
        self.pv_sender, self.pv_receiver = pv_sender, pv_receiver

    def send(self, d: Delivery) -> dict:
        subject, body = summary(d)
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = self.cfg.sender, ", ".join(self.cfg.to), subject
        m["Message-ID"] = f"<{hashlib.sha256(d.key.encode()).hexdigest()[:32]}@pharmamod>"
        m["X-Pharmamod-Idempotency-Key"] = d.key
        m.set_content(body)
        m.add_attachment(json.dumps(d.payload, ensure_ascii=False, indent=2).encode(), maintype="application",
                         subtype="json", filename=f"{_safe(d.subject)}.json")
        if d.kind == "pv_case":
            from .e2b import to_e2b

            xml = to_e2b(PVCase.model_validate(d.payload), sender=self.pv_sender, receiver=self.pv_receiver,
                         created=_created(d))
            m.add_attachment(xml, maintype="application", subtype="xml", filename=f"{_safe(d.payload['report_id'])}.xml")
        try:
            if self.cfg.ssl:
                conn = smtplib.SMTP_SSL(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout,
                                        context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout)
            with conn as s:
                if self.cfg.starttls:
                    s.starttls(context=ssl.create_default_context())
                if self.user:
                    s.login(self.user, self.password or "")
                refused = s.send_message(m)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=500 <= exc.smtp_code < 600) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused every recipient: {sorted(exc.recipients)}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP {self.cfg.host}:{self.cfg.port}: {exc}") from None
        if refused:
            raise DeliveryError(f"SMTP refused {sorted(refused)}", permanent=True)
        return {"message_id": m["Message-ID"]}


def _where(url: str) -> str:
    """scheme://host[:port] only: a path or query may hold a token, and errors end in the audit log."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body: treat a redirect as a failure."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def _created(d: Delivery) -> datetime | None:
    """The time the delivery was queued, so that sending it again produces the same bytes."""
    return parse_time(d.created_at) if d.created_at else None


class WebhookSender:
    def __init__(self, name: str, cfg: WebhookRoute):
        self.name, self.cfg = name, cfg
        self.secret = secret(cfg.secret_env)

    def send(self, d: Delivery) -> dict:
        body = json.dumps({"key": d.key, "kind": d.kind, "subject": d.subject, "data": d.payload},
                          ensure_ascii=False, separators=(",", ":")).encode()
        ts = str(int(time.time()))
        req = urllib.request.Request(self.cfg.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "pharmamod",
            "X-Pharmamod-Timestamp": ts, "X-Pharmamod-Signature": sign(self.secret, ts, body),
            "Idempotency-Key": d.key})
        try:
            with _NO_REDIRECTS.open(req, timeout=self.cfg.timeout) as resp:
                return {"status": resp.status}
        except urllib.error.HTTPError as exc:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            transient = exc.code in (408, 425, 429) or exc.code >= 500
            raise DeliveryError(f"webhook answered HTTP {exc.code}", permanent=not transient,
                                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None) from None
        except (OSError, urllib.error.URLError) as exc:
            raise DeliveryError(f"webhook {_where(self.cfg.url)}: {getattr(exc, 'reason', exc)}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class E2BFolder:
    """One XML file per case version, named by the key: writing it again replaces it with itself."""

    def __init__(self, name: str, cfg: E2BRoute, base: Config):
        self.name, self.folder = name, base.path(cfg.path)
        self.pv_sender, self.pv_receiver = base.pv.sender, base.pv.receiver

    def send(self, d: Delivery) -> dict:
        if d.kind != "pv_case":
            raise DeliveryError(f"route {self.name} takes PV cases only, not {d.kind}", permanent=True)
        from .e2b import to_e2b

        version = d.key.rsplit(":", 1)[-1]
        path = self.folder / f"{_safe(d.payload['report_id'])}-{_safe(version)}.xml"
        xml = to_e2b(PVCase.model_validate(d.payload), sender=self.pv_sender, receiver=self.pv_receiver,
                     created=_created(d))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, xml)
        except OSError as exc:
            raise DeliveryError(f"cannot write {path}: {exc.strerror or exc}") from None
        return {"file": str(path)}


class JsonlDrop:
    """Appends one line per delivery; a repeated attempt first looks for its key, so a line is never doubled."""

    def __init__(self, name: str, cfg: JsonlRoute, base: Config):
        self.name, self.path = name, base.path(cfg.path)

    def send(self, d: Delivery) -> dict:
        line = json.dumps({"key": d.key, "kind": d.kind, "subject": d.subject, "data": d.payload},
                          ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if d.attempts > 1 and self.path.exists():
                needle = '{"key": ' + json.dumps(d.key, ensure_ascii=False) + ","
                with open(self.path, encoding="utf-8") as f:
                    if any(l.startswith(needle) for l in f):
                        return {"file": str(self.path), "already": True}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return {"file": str(self.path)}


def build_routes(cfg: Config) -> dict[str, Route]:
    """Every configured route, ready to send; a missing secret stops start-up with its variable's name."""
    out: dict[str, Route] = {}
    for name, r in cfg.routes.items():
        if isinstance(r, SmtpRoute):
            out[name] = SmtpSender(name, r, cfg.pv.sender, cfg.pv.receiver)
        elif isinstance(r, WebhookRoute):
            out[name] = WebhookSender(name, r)
        elif isinstance(r, E2BRoute):
            out[name] = E2BFolder(name, r, cfg)
        elif isinstance(r, JsonlRoute):
            out[name] = JsonlDrop(name, r, cfg)
    return out
