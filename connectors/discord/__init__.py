"""Discord: a bot account over the Gateway WebSocket (discord.py), replies over REST.

``manifest`` (config model and spec, no SDK import) is what the registry and
the setup form read; ``runtime`` holds the connector and imports discord.py.
"""
