"""IRC: a bot on any IRC network, over the RFC directly (asyncio streams, TLS, SASL PLAIN).

``manifest`` (config model and spec) is what the registry and the setup form read;
``runtime`` holds the connector, ``_conn`` one connection, ``_parse`` the pure line
parser that Twitch chat can reuse.
"""
