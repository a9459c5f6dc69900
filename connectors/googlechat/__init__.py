"""Google Chat channel: an HTTP endpoint Chat app. Google-signed interaction events in; the
Chat REST API as the app's service account (or the HTTP response itself) out.

``manifest`` (config model and spec) is what the registry loads eagerly; ``runtime`` holds
the connector, ``_verify`` the bearer-token check, ``_account`` the service account's access
token and ``_parse`` the event parser. google-auth verifies and signs; the REST calls go
through the kit's ``ChannelHttp`` (see ``runtime``'s docstring for why).
"""
