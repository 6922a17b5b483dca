"""The one contract between pharmamod's core and a platform.

The core calls `start(sink)` and awaits it: the adapter listens to its platform and awaits
`sink(message)` for every new or edited message, which returns once the message is safely stored
(so an adapter may acknowledge it to its platform then). `perform(delivery)` carries out one
action the core queued in the outbox (`hold`, `restore`, `notify`, `remind`, ...); it raises
`ActionError` when the platform refuses, `permanent=True` when retrying cannot help (no
permission, message already gone). `stop()` makes `start` return.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from bot.models import Message
from bot.outbox import Delivery, DeliveryError

Sink = Callable[[Message], Awaitable[None]]
ActionError = DeliveryError


class Adapter(ABC):
    platform: str = ""
    # True when `start` returns by itself once its input is exhausted (a file), so `run` can finish.
    finite: bool = False

    def __init__(self, name: str, settings: Any, base_dir: Any = None) -> None:
        self.name = name
        self.settings = settings
        self.base_dir = base_dir

    @abstractmethod
    async def start(self, sink: Sink) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def perform(self, delivery: Delivery) -> dict[str, Any]: ...
