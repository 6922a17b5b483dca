"""Shared fixtures: one compiled rule set per session (compiling takes a second or two)."""

from __future__ import annotations

import os

import pytest

from bot.ruleset import load_ruleset


@pytest.fixture(autouse=True)
def _no_secrets_or_proxies(monkeypatch):
    """Tests never see real tokens or proxies from the developer's environment; loopback traffic
    to the fake platform servers never goes through a proxy (httpx and requests honour env proxies)."""
    for name in list(os.environ):
        if name.endswith("_TOKEN") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def rules():
    return load_ruleset()
