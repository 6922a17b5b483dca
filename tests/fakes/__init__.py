"""Fake platform servers for adapter tests: real HTTP (and WebSocket) on 127.0.0.1, speaking each
platform's wire protocol to the real client library. See ../shared/docs/offline-clients.md."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web


async def start_fake(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on a free port of 127.0.0.1; returns the runner (to clean up) and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


class Recorder:
    """Every call a fake received, in order, and a way to wait for one with a deadline."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []  # (method, path or API method, body/params)
        self._changed = asyncio.Event()

    def record(self, method: str, path: str, body: Any = None) -> None:
        self.calls.append((method, path, body))
        self._changed.set()

    def called(self, method: str, path_part: str = "") -> list[Any]:
        return [b for m, p, b in self.calls if m == method and path_part in p]

    async def wait_for(self, method: str, path_part: str = "", count: int = 1, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.called(method, path_part)
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                seen = "\n".join(f"  {m} {p}" for m, p, _ in self.calls[-30:])
                raise AssertionError(f"timed out waiting for {count} x {method} {path_part}; last calls:\n{seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass


async def until(check, timeout: float = 10.0, what: str = "condition"):
    """Poll `check()` until it returns something truthy, with a deadline (the store is written by
    the runner's threads, so there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(config):
    """The real `pharmamod run` core (bot.runner.Runner) in this event loop, stopped on exit."""
    from bot.runner import Runner

    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)
