"""`pharmamod run` configuration: a TOML file validated with pydantic.

Secrets never sit in the file: a route or platform names the environment variable that holds its
secret (`secret_env = "PHARMAMOD_WEBHOOK_SECRET"`) and `secret()` reads it when the route starts.
Relative paths are taken from the config file's folder, so the bot behaves the same from any
working directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StoreConfig(_Strict):
    path: Path = Path("pharmamod.db")


class RulesConfig(_Strict):
    path: Path | None = None
    reload_seconds: float = 2.0  # how often rule files are checked for changes; 0 turns reloading off


class Community(_Strict):
    profile: str = "default"
    country: str = ""  # ISO 3166 alpha-2, the reporter's country on PV cases
    solicited: bool = False  # posts gathered by an organised activity (survey, campaign): C.1.3 = 2
    notify_authors: bool = True
    safety_contact: str = ""  # how authors reach the safety team ("safety@acme.example, +31 20 123 4567")
    respond_within_hours: float = 48.0  # "respond within 48 hours"
    remind_before_hours: float = 12.0
    moderators: list[str] = []  # identities allowed to decide from the terminal (`review --as`)
    moderator_roles: list[str] = ["moderator", "admin"]  # platform roles that may decide in chat
    review_room: str = ""  # "<adapter>:<room id>" where moderators review held messages, e.g. "discord:1234"
    pv_routes: list[str] = []
    medinfo_routes: list[str] = []


_DEFAULT_COMMUNITY = Community()


class PVConfig(_Strict):
    sender: str = "pharmamod"  # prefix of C.1.1, the sender's unique report id
    receiver: str = "drug-safety"
    deadlines: dict[str, dict[str, int | None]] = {}  # jurisdiction -> {serious, non_serious} days


class OutboxConfig(_Strict):
    max_attempts: int = Field(8, ge=1)
    backoff_seconds: float = Field(2.0, gt=0)
    backoff_max_seconds: float = Field(900.0, gt=0)
    poll_seconds: float = Field(0.5, gt=0)


class ServiceConfig(_Strict):
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # /healthz and /metrics; 0 turns the endpoint off


class SmtpRoute(_Strict):
    type: Literal["smtp"]
    host: str
    port: int = 25
    sender: str = Field(alias="from")
    to: list[str]
    starttls: bool = False
    ssl: bool = False
    username_env: str | None = None
    password_env: str | None = None
    timeout: float = 20.0

    @model_validator(mode="after")
    def _no_clear_text_password(self) -> "SmtpRoute":
        if self.username_env and not (self.starttls or self.ssl) and self.host not in ("127.0.0.1", "localhost"):
            raise ValueError("a login over plain SMTP would send the password in clear: set starttls = true "
                             "(port 587) or ssl = true (port 465)")
        return self


class WebhookRoute(_Strict):
    type: Literal["webhook"]
    url: str
    secret_env: str
    timeout: float = 20.0

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.username or parts.password:
            raise ValueError("put no user or password in the webhook url (it would reach logs); the route is "
                             "authenticated by its HMAC secret (secret_env)")
        local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not (parts.scheme == "https" and parts.hostname) and not local:
            raise ValueError("webhook url must be https:// (plain http only to 127.0.0.1/localhost, for testing)")
        return v


class E2BRoute(_Strict):
    type: Literal["e2b"]
    path: Path


class JsonlRoute(_Strict):
    type: Literal["jsonl"]
    path: Path


RouteConfig = Annotated[SmtpRoute | WebhookRoute | E2BRoute | JsonlRoute, Field(discriminator="type")]


class LocalAdapterConfig(_Strict):
    path: str = "-"  # a JSONL community file, or "-" for stdin
    follow: bool = False  # keep reading as the file grows (a live stream) instead of stopping at its end
    community: str = ""  # for lines without a "community" field
    actions: Path = Path("pharmamod-actions.jsonl")  # where holds, restores and notices are written


class AdaptersConfig(BaseModel):
    model_config = ConfigDict(extra="allow")  # platform sections arrive with their adapters
    local: LocalAdapterConfig | None = None


class Config(_Strict):
    store: StoreConfig = StoreConfig()
    rules: RulesConfig = RulesConfig()
    pv: PVConfig = PVConfig()
    outbox: OutboxConfig = OutboxConfig()
    service: ServiceConfig = ServiceConfig()
    community: dict[str, Community] = {}
    routes: dict[str, RouteConfig] = {}
    adapters: AdaptersConfig = AdaptersConfig()
    base: Path = Path(".")

    def path(self, p: Path | str) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.base / p

    def community_of(self, name: str) -> Community:
        """Messages from a community not in the file get the defaults (and no routes): screened, never dropped."""
        return self.community.get(name) or self.community.get("*") or _DEFAULT_COMMUNITY


def secret(env: str | None) -> str | None:
    """Read a secret from the environment; the error names the variable, never a value."""
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"environment variable {env} is not set; export it before starting pharmamod")
    return value


def load_config(path: Path | str) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (copy config.example.toml to start)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        cfg = Config.model_validate({**raw, "base": path.resolve().parent})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"{path}: [{where}] {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    for name, c in cfg.community.items():
        for r in c.pv_routes + c.medinfo_routes:
            if r not in cfg.routes:
                raise ConfigError(f"{path}: community {name!r} routes to {r!r}, which no [routes.{r}] section defines")
    return cfg
