"""Mattermost: a bot or user account on any Mattermost server, over REST API v4 and its
WebSocket event stream.

``manifest`` (config model and spec) is what the registry and the setup form read;
``runtime`` holds the connector, ``_socket`` one WebSocket connection, ``_api`` the REST
client and its error mapping, ``_parse`` the pure event and post parsers.
"""
