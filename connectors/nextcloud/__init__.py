"""Nextcloud Talk channel: a webhook bot (Talk 17.1+), signed posts in, the OCS bot API out.

``manifest`` (config model and spec) is what the registry loads eagerly;
``runtime`` holds the connector. There is no official Python SDK: the REST calls
go through the kit's ``ChannelHttp`` and the signatures are HMACs on both sides.
"""
