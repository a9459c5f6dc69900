"""Email: a mailbox of its own, read over IMAP (aioimaplib, IDLE) and answered by SMTP.

``manifest`` (config model and spec, no mail library) is what the registry and the setup
form read; ``_parse`` and ``_text`` turn a fetched mail into ``Inbound`` (pure);
``_compose`` builds a threaded reply; ``_imap`` is one IMAP connection, ``_smtp`` one
send; ``runtime`` is the connector.
"""
