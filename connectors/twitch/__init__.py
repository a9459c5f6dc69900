"""Twitch chat: a bot in Twitch channels' chat, over Twitch's IRC dialect (TLS, OAuth).

``manifest`` (config model and spec) is what the registry and the setup form read;
``runtime`` holds the connector, ``_inbound`` the pure reading of Twitch's tagged lines,
``_pace`` the send pacing Twitch's rate limits ask for. The line parser and the socket
are IRC's (``connectors.irc._parse``, ``connectors.irc._conn``).
"""
