"""Platform edges (Discord, Telegram, Reddit): each turns platform events into `bot.Message`.

The adapters arrive with the adapters issue; the core never imports from here.
"""
