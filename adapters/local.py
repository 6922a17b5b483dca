"""The local adapter: a JSONL community file (or stdin) screened as a live stream.

Lines have the `pharmamod scan` input shape (`text`, optional `id`, `author`, `community`,
`channel`, `created_at`, `reply_to`, `lang`). A bad line is reported and skipped. With
`follow = true` the file is watched for new lines, like `tail -f`. Actions are carried out by
writing them, one JSON line each, to the `actions` file: the moderated view of the community
that a person or another tool can follow. Reading the file again after a restart is safe: the
store knows every message it has seen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from bot.config import LocalAdapterConfig
from bot.outbox import Delivery
from bot.scan import read_jsonl

from .base import Adapter, Core, Sink

log = logging.getLogger("pharmamod.local")

IN_FLIGHT = 16  # messages handed to the core before waiting for the oldest to be stored


class LocalAdapter(Adapter):
    platform = "local"

    def __init__(self, name: str, settings: LocalAdapterConfig, base_dir: Path | None = None) -> None:
        super().__init__(name, settings, base_dir)
        self.finite = not settings.follow
        base = Path(base_dir or ".")
        self.source = settings.path if settings.path == "-" else str(base / settings.path)
        self.actions = base / settings.actions
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.read = 0
        self.skipped = 0
        self.failed = 0

    def _lines(self, stream: BinaryIO) -> Iterator[bytes]:
        """Complete lines; with follow, wait for more at the end instead of stopping."""
        pending = b""
        while not self._stop.is_set():
            chunk = stream.readline()
            if chunk:
                pending += chunk
                if pending.endswith(b"\n"):
                    yield pending
                    pending = b""
                continue
            if not self.settings.follow:
                break
            time.sleep(0.05)
        if pending and not self.settings.follow:
            yield pending

    def _read(self, loop: asyncio.AbstractEventLoop, sink: Sink) -> None:
        own = self.source != "-"
        try:
            stream = open(self.source, "rb") if own else sys.stdin.buffer
        except OSError as exc:
            raise SystemExit(f"local adapter: cannot read {self.source}: {exc.strerror}") from None
        in_flight: deque = deque()
        try:
            for rec in read_jsonl(self._lines(stream)):
                if self._stop.is_set():
                    break
                if rec.message is None:
                    self.skipped += 1
                    log.warning("%s line %d skipped: %s", self.source, rec.line, rec.error)
                    continue
                msg = rec.message
                if not msg.community and self.settings.community:
                    msg = msg.model_copy(update={"community": self.settings.community})
                self.read += 1
                # A few messages in flight let the core store them in batches; waiting for the
                # oldest keeps the order and stops reading when the store falls behind.
                in_flight.append((rec.line, asyncio.run_coroutine_threadsafe(sink(msg), loop)))
                if len(in_flight) >= IN_FLIGHT:
                    self._settle(*in_flight.popleft())
            while in_flight:
                self._settle(*in_flight.popleft())
        finally:
            if own:
                stream.close()

    def _settle(self, line: int, stored) -> None:
        """Wait for one message to be stored. One the core could not store is reported with its
        line and the file goes on: it is still in the file, and the next run tries it again."""
        try:
            stored.result()
        except Exception as exc:  # noqa: BLE001
            self.failed += 1
            log.error("%s line %d could not be stored (%s); it is tried again at the next run",
                      self.source, line, exc)

    async def start(self, core: Core) -> None:
        await asyncio.to_thread(self._read, asyncio.get_running_loop(), core.submit)

    async def stop(self) -> None:
        self._stop.set()

    def _already_written(self, key: str) -> bool:
        if not self.actions.exists():
            return False
        needle = '{"key": ' + json.dumps(key, ensure_ascii=False) + ","
        with open(self.actions, encoding="utf-8") as f:
            return any(line.startswith(needle) for line in f)

    def _write(self, d: Delivery) -> dict[str, Any]:
        with self._lock:
            if d.attempts > 1 and self._already_written(d.key):
                return {"file": str(self.actions), "already": True}
            self.actions.parent.mkdir(parents=True, exist_ok=True)
            line = {"key": d.key, "action": d.kind, **{k: v for k, v in d.payload.items() if k != "platform"}}
            with open(self.actions, "a", encoding="utf-8") as f:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return {"file": str(self.actions)}

    async def perform(self, delivery: Delivery) -> dict[str, Any]:
        detail = await asyncio.to_thread(self._write, delivery)
        if delivery.kind == "review_post":
            detail["ref"] = delivery.key  # the line that shows the case in the actions file
        return detail
