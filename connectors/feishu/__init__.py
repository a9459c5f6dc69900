"""Feishu / Lark channel: a custom app's bot, v2 events pushed over HTTP in, the IM API out.

``manifest`` (config model and spec) is what the registry loads eagerly; ``runtime``
holds the connector, ``_parse`` the event parser, ``_crypto`` the webhook's
signature and decryption, ``_api`` the IM calls with the tenant access token. No
SDK at run time (``runtime``'s docstring says why); the tests check the wire against
the official ``lark-oapi``.
"""
