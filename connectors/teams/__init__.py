"""Microsoft Teams channel: Bot Framework activities in (JWT-verified), Bot Connector REST out.

``manifest`` (config model and spec) is what the registry loads eagerly; ``runtime``
holds the connector, ``_auth`` the two token checks (the Bot Framework's JWT on every
inbound request, our client-credentials token for every outbound one) and ``_parse``
the activity parser.
"""
