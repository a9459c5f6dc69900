"""XMPP: a bot account on any XMPP server (slixmpp), 1:1 chats and MUC rooms (XEP-0045).

``manifest`` (config model and spec, no SDK import) is what the registry and the setup
form read; ``_parse`` turns message stanzas into ``Inbound`` (pure, on ElementTree);
``_session`` is one slixmpp stream from connect to close; ``runtime`` is the connector.
"""
