"""Platform edges: each adapter turns platform events into `bot.Message`s for the core and carries
out the core's actions (hold, restore, notify, ...) on its platform.

One module per platform behind the contract in `base`; `ADAPTERS` maps a config section name
(`[adapters.<name>]`) to the class that serves it. Adding a platform is one module and one entry.
"""

from .base import ActionError, Adapter, Sink
from .local import LocalAdapter

ADAPTERS: dict[str, type[Adapter]] = {"local": LocalAdapter}

__all__ = ["ADAPTERS", "ActionError", "Adapter", "LocalAdapter", "Sink"]
