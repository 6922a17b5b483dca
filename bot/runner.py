"""`pharmamod run`: adapters -> engine -> cases, PV cases and the outbox -> routes and adapters.

Three loops share one asyncio event loop:
- the processor takes messages from the adapters in small batches, screens them and records each
  batch in one transaction; an adapter's `sink(message)` returns only after that commit, so a
  message acknowledged to the platform is a message stored;
- the deliverer sends due outbox rows (PV routes in a worker thread, actions through the adapter
  that owns the platform) and records each result;
- the housekeeper reloads changed rule files (a broken file keeps the running rules and is
  reported), and queues response-time reminders.
SIGTERM and SIGINT stop the adapters, finish the batch in hand and close the store. Health and
Prometheus metrics are served on `service.metrics_port` (127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from . import audit, outbox
from .cases import CaseBook, Recorded
from .config import Config, ConfigError
from .engine import screen
from .models import Message
from .packs.errors import RuleFileError
from .routes import Route, build_routes
from .ruleset import RuleSet, load_ruleset, settle, unsettle
from .store import now, open_store, transaction

log = logging.getLogger("pharmamod")

BATCH = 256
_SURROGATE = re.compile("[\ud800-\udfff]")
DRAIN_SECONDS = 15.0  # a finite run waits this long for retries due soon before it stops


def load_rulesets(config: Config) -> dict[str, RuleSet]:
    profiles = sorted({c.profile for c in config.community.values()} | {"default"})
    rules_dir = config.path(config.rules.path) if config.rules.path else None
    return {p: load_ruleset(rules_dir, profile=p) for p in profiles}


class Pipeline:
    """Screen and record, synchronously: the heart of `run`, also driven directly by the benchmark."""

    def __init__(self, config: Config, db, rulesets: dict[str, RuleSet]):
        self.config = config
        self.db = db
        self.rulesets = rulesets
        self.book = CaseBook(db, config)

    def ruleset_for(self, msg: Message) -> RuleSet:
        return self.rulesets.get(self.config.community_of(msg.community).profile) or self.rulesets["default"]

    def screen(self, msg: Message):
        rs = self.ruleset_for(msg)
        if _SURROGATE.search(msg.text) or _SURROGATE.search(msg.author.display_name):
            # Lone surrogates (a "\ud800" escape in JSON) are not text: SQLite cannot store them.
            # One replacement character each keeps every span in place.
            msg = msg.model_copy(update={
                "text": _SURROGATE.sub("\ufffd", msg.text),
                "author": msg.author.model_copy(update={"display_name": _SURROGATE.sub("\ufffd",
                                                                                       msg.author.display_name)})})
        if msg.reply_to is not None and not msg.reply_to.text:
            # The parent may be gone from the platform (held, deleted): its stored text gives the context.
            row = self.db.execute("SELECT text FROM messages WHERE platform = ? AND message_id = ?",
                                  (msg.platform, msg.reply_to.message_id)).fetchone()
            if row and row[0]:
                msg = msg.model_copy(update={"reply_to": msg.reply_to.model_copy(update={"text": row[0]})})
        if msg.jurisdiction is None or msg.audience != rs.profile.audience:
            msg = msg.model_copy(update={"jurisdiction": msg.jurisdiction or rs.profile.jurisdiction,
                                         "audience": rs.profile.audience})
        return msg, screen(msg, rs)

    def process(self, batch: list[tuple[Message, datetime]]) -> list[Recorded]:
        out = []
        with transaction(self.db):
            for msg, seen_at in batch:
                msg, verdict = self.screen(msg)
                out.append(self.book.record_in_transaction(msg, verdict, seen_at))
        return out


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter("pharmamod_messages", "Messages recorded, by status (new, edited, duplicate)",
                                ["status"], registry=r)
        self.held = Counter("pharmamod_held", "Messages held for review", registry=r)
        self.pv = Counter("pharmamod_pv_cases", "PV cases opened or followed up", registry=r)
        self.deliveries = Counter("pharmamod_deliveries", "Delivery attempts by route and result",
                                  ["route", "result"], registry=r)
        self.outbox = Gauge("pharmamod_outbox_rows", "Outbox rows by state", ["state"], registry=r)
        self.open_cases = Gauge("pharmamod_open_cases", "Cases held or escalated", registry=r)
        self.latency = Histogram("pharmamod_store_seconds", "From a message arriving to its case being stored",
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0), registry=r)
        self.reload_failures = Counter("pharmamod_rules_reload_failures", "Rule reloads refused", registry=r)
        self.ruleset = Gauge("pharmamod_ruleset_info", "Running rule set", ["profile", "version"], registry=r)


@dataclass
class RunStats:
    new: int = 0
    edited: int = 0
    duplicate: int = 0
    held: int = 0
    pv_cases: int = 0
    delivered: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)


class Runner:
    def __init__(self, config: Config, *, adapters: dict[str, Any] | None = None):
        self.config = config
        self.db_path = config.path(config.store.path)
        self.db = open_store(self.db_path)
        self.rulesets = load_rulesets(config)
        settle()
        self.pipeline = Pipeline(config, self.db, self.rulesets)
        self.routes: dict[str, Route] = build_routes(config)
        self.adapters = adapters if adapters is not None else build_adapters(config)
        self.metrics = Metrics()
        self.stats = RunStats()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=BATCH * 8)
        self._stopping = asyncio.Event()
        self._inputs_done = asyncio.Event()
        self._wake = asyncio.Event()  # set when the processor queued deliveries: holds go out at once
        # Moderators' clicks and review-post bookkeeping use their own connection, one at a time.
        self._control = CaseBook(open_store(self.db_path), config)
        self._control_lock = asyncio.Lock()
        self._mtimes = self._rule_mtimes()
        self.healthy = True

    # -- adapters to store ----------------------------------------------------------------------

    async def sink(self, msg: Message) -> None:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((msg, now(), time.perf_counter(), fut))
        await fut

    # The adapters' view of the core (adapters.base.Core).
    submit = sink

    async def _control_call(self, fn, *args):
        async with self._control_lock:
            return await asyncio.to_thread(fn, *args)

    async def decide(self, case_id: int, decision: str, actor, reason_code: str, note: str = "") -> str:
        """A moderator's decision from a chat platform; raises cases.Refused (already audited)."""
        new = await self._control_call(self._control.decide, case_id, decision, actor, reason_code, note)
        self._wake.set()
        return new

    async def not_an_ae(self, case_id: int, actor, reason: str) -> str:
        """Mark the case's PV case "not an AE" (a reason is required); returns its report id."""
        report = await self._control_call(self._control.not_an_ae_for_case, case_id, actor, reason)
        self._wake.set()  # the review post's update goes out now
        return report

    async def refuse(self, actor, case_id: int, action: str, why: str) -> None:
        await self._control_call(self._control.refuse, actor, f"case:{case_id}", action, why)

    async def card(self, case_id: int) -> dict:
        return await self._control_call(self._control.card, case_id)

    async def case_of(self, platform: str, message_id: str) -> int | None:
        return await self._control_call(self._control.case_of, platform, message_id)

    async def review_post(self, case_id: int, room: str) -> str | None:
        return await self._control_call(self._control.review_post, case_id, room)

    def community(self, name: str):
        return self.config.community_of(name)

    def review_rooms(self) -> dict[str, list[str]]:
        """Every configured review room and the communities it serves (adapters check their rights there)."""
        rooms: dict[str, list[str]] = {}
        for name, c in self.config.community.items():
            if c.review_room:
                rooms.setdefault(c.review_room, []).append(name)
        return rooms

    async def _processor(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            items = [item]
            while len(items) < BATCH and not self.queue.empty():
                nxt = self.queue.get_nowait()
                if nxt is None:
                    self.queue.put_nowait(None)
                    break
                items.append(nxt)
            try:
                results = await asyncio.to_thread(self.pipeline.process, [(m, t) for m, t, _, _ in items])
            except Exception:  # noqa: BLE001 - one bad message must not sink the others: one at a time
                results = []
                for m, t, _, fut in items:
                    try:
                        results.append((await asyncio.to_thread(self.pipeline.process, [(m, t)]))[0])
                    except Exception as exc:  # noqa: BLE001 - not stored: its adapter is told and keeps it
                        log.exception("could not store message %s:%s", m.platform, m.message_id)
                        if not fut.done():
                            fut.set_exception(exc)
                        results.append(None)
            done = time.perf_counter()
            for (_, _, t0, fut), rec in zip(items, results):
                if rec is None:
                    continue
                self.metrics.latency.observe(done - t0)
                self.metrics.messages.labels(rec.status).inc()
                setattr(self.stats, rec.status, getattr(self.stats, rec.status) + 1)
                if rec.case_id is not None and rec.status != "duplicate":
                    self.stats.held += 1
                    self.metrics.held.inc()
                if rec.pv_report_id:
                    self.stats.pv_cases += 1
                    self.metrics.pv.inc()
                if rec.case_id is not None or rec.deliveries:
                    self._wake.set()
                if not fut.done():
                    fut.set_result(rec)

    # -- outbox to routes and platforms --------------------------------------------------------

    async def _deliverer(self) -> None:
        db = open_store(self.db_path)
        o = self.config.outbox
        known = set(self.routes) | {f"adapter:{a.platform}" for a in self.adapters.values()}
        by_platform = {a.platform: a for a in self.adapters.values()}
        idle_since: float | None = None
        while True:
            if self._stopping.is_set():
                db.close()
                return
            try:
                batch = await asyncio.to_thread(outbox.claim, db, known, 50)
            except Exception:  # noqa: BLE001 - the store is busy or failing: report, wait, try again
                log.exception("cannot read the outbox; deliveries wait")
                self.healthy = False
                await asyncio.sleep(o.poll_seconds)
                continue
            self.healthy = True
            for d in batch:
                try:
                    await self._deliver_one(db, d, by_platform)
                except Exception:  # noqa: BLE001 - the row stays 'sending' and is sent again after a restart
                    log.exception("could not record delivery %s", d.key)
                    self.healthy = False
            if batch:
                idle_since = None
                continue
            if self._inputs_done.is_set() or self._stopping.is_set():
                due_soon = db.execute(
                    "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending') AND route IN (%s)"
                    % ",".join("?" * len(known)), sorted(known)).fetchone()[0] if known else 0
                idle_since = idle_since or time.monotonic()
                if self._stopping.is_set() or not due_soon or time.monotonic() - idle_since > DRAIN_SECONDS:
                    db.close()
                    return
            try:
                await asyncio.wait_for(self._wake.wait(), o.poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _deliver_one(self, db, d, by_platform) -> None:
        """Send one claimed delivery and record how it went."""
        o = self.config.outbox
        try:
            if d.route.startswith("adapter:") and d.kind in ("hold", "restore") and "case_id" in d.payload:
                wanted, changed = await self._control_call(self._control.still_wanted,
                                                           d.payload["case_id"], d.kind)
                if not wanted:
                    await asyncio.to_thread(outbox.delivered, db, d, {"superseded": "a later decision"})
                    return
                if changed:
                    d = dataclasses.replace(d, payload={**d.payload, **changed})
            if d.route.startswith("adapter:"):
                detail = await by_platform[d.route.split(":", 1)[1]].perform(d)
            else:
                detail = await asyncio.to_thread(self.routes[d.route].send, d)
        except Exception as exc:  # noqa: BLE001 - a route's bug must not stop every delivery
            if not isinstance(exc, outbox.DeliveryError):
                log.exception("delivery %s to %s raised", d.key, d.route)
                exc = outbox.DeliveryError(f"{type(exc).__name__}: {exc}")
            state = await asyncio.to_thread(outbox.failed, db, d, exc, max_attempts=o.max_attempts,
                                            backoff=o.backoff_seconds, backoff_max=o.backoff_max_seconds)
            log.warning("delivery %s to %s failed (attempt %d, now %s): %s", d.key, d.route, d.attempts,
                        state, exc)
            self.metrics.deliveries.labels(d.route, state).inc()
            self.stats.failed += 1
            if state == "dead" and d.route.startswith("adapter:") and d.kind in ("hold", "restore", "notify"):
                await self._control_call(self._control.action_failed, d.payload["case_id"], d.kind, str(exc))
            return
        detail = detail or {}
        if d.kind in ("review_post", "review_update") and detail.get("ref"):
            await self._control_call(self._control.record_review_post, d.payload["case_id"],
                                     d.payload["room"], str(detail["ref"]))
        elif d.kind == "restore" and detail.get("reposted"):
            await self._control_call(self._control.record_reposts, d.payload["case_id"],
                                     [str(r) for r in detail["reposted"]])
        elif d.kind == "hold" and d.payload.get("reposted"):
            await self._control_call(self._control.record_reposts, d.payload["case_id"], [])
        await asyncio.to_thread(outbox.delivered, db, d, detail or {})
        self.metrics.deliveries.labels(d.route, "delivered").inc()
        self.stats.delivered += 1

    # -- housekeeping ----------------------------------------------------------------------------

    def _rule_mtimes(self) -> dict[Path, float]:
        out = {}
        for rs in self.rulesets.values():
            for f in rs.files:
                try:
                    out[Path(f)] = Path(f).stat().st_mtime
                except OSError:
                    out[Path(f)] = -1.0
        return out

    def _audit(self, kind: str, subject: str, data: dict, db=None) -> None:
        db = db or self.db
        with transaction(db):
            audit.append(db, kind, subject, data)

    async def _reload_rules(self, db) -> None:
        mtimes = await asyncio.to_thread(self._rule_mtimes)
        if mtimes == self._mtimes:
            return
        self._mtimes = mtimes
        try:
            fresh = await asyncio.to_thread(load_rulesets, self.config)
        except RuleFileError as exc:
            self.metrics.reload_failures.inc()
            log.error("rule files changed but do not load; the running rules stay:\n%s", exc)
            await asyncio.to_thread(self._audit, "ruleset_rejected", "rules", {"errors": str(exc).splitlines()[:20]}, db)
            return
        unsettle()  # the replaced rule sets may hold cycles: let the collector see them again
        # Replace in place, never empty: the processor thread looks profiles up meanwhile.
        self.rulesets.update(fresh)
        for gone in set(self.rulesets) - set(fresh):
            del self.rulesets[gone]
        settle()
        self._publish_rulesets()
        log.info("rule files reloaded: %s", ", ".join(f"{p} {rs.version}" for p, rs in self.rulesets.items()))
        await asyncio.to_thread(self._audit, "ruleset_loaded", "rules",
                                {p: rs.version for p, rs in self.rulesets.items()}, db)

    def _publish_rulesets(self) -> None:
        self.metrics.ruleset.clear()
        for p, rs in self.rulesets.items():
            self.metrics.ruleset.labels(p, rs.version).set(1)

    async def _housekeeper(self) -> None:
        # Its own connection: the processor's is inside a batch transaction at any moment.
        db = open_store(self.db_path)
        book = CaseBook(db, self.config)
        next_remind = 0.0
        interval = self.config.rules.reload_seconds
        try:
            while not self._stopping.is_set():
                if interval > 0:
                    try:
                        await self._reload_rules(db)
                    except Exception:  # noqa: BLE001 - the running rules stay; tried again next time
                        log.exception("could not check the rule files")
                if time.monotonic() >= next_remind:
                    try:
                        await asyncio.to_thread(book.remind)
                    except Exception:  # noqa: BLE001 - reminders are retried next minute, never fatal
                        log.exception("could not queue reminders")
                    next_remind = time.monotonic() + 60
                try:
                    await asyncio.wait_for(self._stopping.wait(), interval if interval > 0 else 60)
                except asyncio.TimeoutError:
                    pass
        finally:
            db.close()

    # -- health and metrics --------------------------------------------------------------------

    def _refresh_gauges(self, db) -> dict[str, int]:
        counts = outbox.counts(db)
        for state in ("pending", "sending", "delivered", "dead"):
            self.metrics.outbox.labels(state).set(counts.get(state, 0))
        self.metrics.open_cases.set(db.execute(
            "SELECT count(*) FROM cases WHERE state IN ('held', 'escalated')").fetchone()[0])
        return counts

    async def _serve_metrics(self):
        from aiohttp import web

        db = open_store(self.db_path, readonly=True)

        async def health(_request):
            counts = await asyncio.to_thread(self._refresh_gauges, db)
            body = {"status": "ok" if self.healthy else "failing", "queue": self.queue.qsize(),
                    "outbox": counts, "rules": {p: rs.version for p, rs in self.rulesets.items()}}
            return web.json_response(body, status=200 if self.healthy else 503)

        async def metrics(_request):
            await asyncio.to_thread(self._refresh_gauges, db)
            return web.Response(body=generate_latest(self.metrics.registry),
                                headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

        app = web.Application()
        app.router.add_get("/healthz", health)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.service.metrics_host, self.config.service.metrics_port)
        await site.start()
        return runner, db

    # -- the whole -----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> RunStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):
                pass
        recovered = outbox.recover(self.db)
        if recovered:
            log.warning("%d deliveries were cut off by the last stop; sending them again", recovered)
        self._publish_rulesets()
        self._audit("service_started", "service", {
            "rules": {p: rs.version for p, rs in self.rulesets.items()}, "adapters": sorted(self.adapters)})
        http = await self._serve_metrics() if self.config.service.metrics_port else None
        processor = asyncio.create_task(self._processor(), name="processor")
        deliverer = asyncio.create_task(self._deliverer(), name="deliverer")
        housekeeper = asyncio.create_task(self._housekeeper(), name="housekeeper")
        inputs = [asyncio.create_task(a.start(self), name=f"adapter:{n}") for n, a in self.adapters.items()]
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            finite = all(a.finite for a in self.adapters.values())
            if inputs and finite:
                await asyncio.wait([asyncio.gather(*inputs), stopping], return_when=asyncio.FIRST_COMPLETED)
            else:
                # A live adapter that fails (it cannot start, or its platform is lost for good) stops
                # the run at once with its error, instead of leaving the bot running half-blind.
                pending = {stopping, *inputs}
                while not stopping.done():
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    if any(t is not stopping and (t.cancelled() or t.exception()) for t in done):
                        break
            for a in self.adapters.values():
                await a.stop()
            for t in inputs:
                if t.done() and not t.cancelled() and t.exception():
                    raise t.exception()
            await asyncio.wait_for(asyncio.gather(*inputs, return_exceptions=True), 10)
            await self.queue.put(None)
            await processor
            self._inputs_done.set()
            await deliverer
        finally:
            self._stopping.set()
            self._wake.set()
            stopping.cancel()
            for a in self.adapters.values():
                with contextlib.suppress(Exception):
                    await a.stop()
            for t in inputs:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*inputs, return_exceptions=True)
            # The core's loops are not cancelled mid-step: a worker thread may be writing on a
            # connection, which must not be closed under it. They finish the step and return.
            if not processor.done():
                await self.queue.put(None)
            loops = [processor, deliverer, housekeeper]
            _, late = await asyncio.wait(loops, timeout=30)
            for t in late:
                log.error("%s did not stop within 30 s; cancelling it", t.get_name())
                t.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if http:
                await http[0].cleanup()
                http[1].close()
            self._audit("service_stopped", "service", {
                "new": self.stats.new, "edited": self.stats.edited, "duplicate": self.stats.duplicate})
            self.db.close()
            self._control.db.close()
        return self.stats


def build_adapters(config: Config) -> dict[str, Any]:
    """One adapter per `[adapters.<name>]` section; each validates its own section."""
    from adapters import ADAPTERS, adapter_class

    out = {}
    extra = config.adapters.model_extra or {}
    sections = {"local": config.adapters.local, **extra}
    for name, settings in sections.items():
        if settings is None:
            continue
        if name not in ADAPTERS:
            raise ConfigError(f"[adapters.{name}]: no such adapter; available: {', '.join(sorted(ADAPTERS))}")
        out[name] = adapter_class(name)(name, settings, config.base)
    return out
