"""The one contract between pharmamod's core and a platform.

The core calls `start(core)` and awaits it. The adapter listens to its platform and:
- awaits `core.submit(message)` for every new or edited message; it returns once the message is
  safely stored, so the adapter may acknowledge it to its platform then;
- turns a moderator's click in its review room into `core.decide(case_id, decision, actor,
  reason_code)`, after checking the clicker's rights on the platform (then `Actor.verified`); a
  click it refuses is recorded with `core.refuse(...)`.
`perform(delivery)` carries out one action the core queued in the outbox and returns details for
the audit log (`{"ref": ...}` for a review post: the id of the post, so updates can edit it):
- `hold`, `restore`, `notify`: on the platform the message came from (payload: `case_id`,
  `community`, `channel`, `message_id`, `author`, `author_name`, `text`, `permalink`, `reposted`).
  A `restore` that reposts returns `{"reposted": [ids]}` (ids in the form of `message_id`); a
  `hold` whose payload has `reposted` (a case reopened after approval) removes those reposts;
- `review_post`, `review_update`: in the review room (payload: `room` = "<adapter>:<room id>",
  plus the case card: see `bot.cases.CaseBook.card`); `remind`: a response-time reminder.
It raises `ActionError` when the platform refuses; `permanent=True` when retrying cannot help (no
permission, message already gone or too old): the case then shows the failure to moderators.
`stop()` makes `start` return. Tokens come from environment variables named in the config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.cases import Actor, Refused
from bot.config import Community
from bot.models import Message
from bot.outbox import Delivery, DeliveryError

Sink = Callable[[Message], Awaitable[None]]


class AdapterError(RuntimeError):
    """The adapter cannot run (missing token, missing permission, wrong room): the message says
    what to fix. Raised from `start`; `pharmamod run` stops with it instead of running half-blind."""

ActionError = DeliveryError
# The review-room buttons: a case decision (`core.decide`), or "not_ae" (`core.not_an_ae`).
DECISIONS = ("approve", "reject", "escalate", "not_ae")


class Core(Protocol):
    """What the running bot offers its adapters (implemented by `bot.runner.Runner`)."""

    async def submit(self, message: Message) -> None: ...

    async def decide(self, case_id: int, decision: str, actor: Actor, reason_code: str, note: str = "") -> str:
        """Apply a decision; raises `Refused` (already audited) with a message to show the clicker."""

    async def not_an_ae(self, case_id: int, actor: Actor, reason: str) -> str:
        """Mark the case's PV case "not an AE" (never deleted); a reason is required."""

    async def refuse(self, actor: Actor, case_id: int, action: str, why: str) -> None: ...

    async def card(self, case_id: int) -> dict[str, Any]: ...

    async def case_of(self, platform: str, message_id: str) -> int | None: ...

    async def review_post(self, case_id: int, room: str) -> str | None: ...

    def community(self, name: str) -> Community: ...

    def review_rooms(self) -> dict[str, list[str]]:
        """Every configured review room ("<adapter>:<room id>") and the communities it serves."""


class Adapter(ABC):
    platform: str = ""
    # True when `start` returns by itself once its input is exhausted (a file), so `run` can finish.
    finite: bool = False

    def __init__(self, name: str, settings: Any, base_dir: Any = None) -> None:
        self.name = name
        self.settings = settings
        self.base_dir = base_dir

    @abstractmethod
    async def start(self, core: Core) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def perform(self, delivery: Delivery) -> dict[str, Any]: ...


__all__ = ["ActionError", "Actor", "AdapterError", "Adapter", "Core", "DECISIONS", "Refused", "Sink"]
