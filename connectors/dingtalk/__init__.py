"""DingTalk channel: an enterprise app robot in Stream mode.

``manifest`` (config model and spec, no SDK import) is what the registry loads eagerly;
``runtime`` holds the connector, ``_stream`` the Stream-mode socket, ``_api`` the REST
calls (access token, robot sends, session webhooks) and ``_parse`` the wire formats.
"""
