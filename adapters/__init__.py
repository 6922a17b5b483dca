"""Platform edges: each adapter turns platform events into `bot.Message`s for the core and carries
out the core's actions (hold, restore, notify, review posts) on its platform.

One module per platform behind the contract in `base`; `ADAPTERS` maps a config section name
(`[adapters.<name>]`) to the module and class that serve it, imported only when configured.
Adding a platform is one module, one entry here and one config section.
"""

from importlib import import_module

from .base import ActionError, Adapter, AdapterError, Core, Sink

ADAPTERS: dict[str, str] = {
    "local": "adapters.local:LocalAdapter",
    "discord": "adapters.discord:DiscordAdapter",
    "telegram": "adapters.telegram:TelegramAdapter",
    "reddit": "adapters.reddit:RedditAdapter",
}


def adapter_class(name: str) -> type[Adapter]:
    module, cls = ADAPTERS[name].split(":")
    return getattr(import_module(module), cls)


__all__ = ["ADAPTERS", "ActionError", "Adapter", "AdapterError", "Core", "Sink", "adapter_class"]
