"""Webex channel: signed webhook notifications in, the Messages REST API out.

``manifest`` (config model and spec) is what the registry loads eagerly;
``runtime`` holds the connector. No SDK: the REST calls go through the kit's
``ChannelHttp`` (see ``runtime``'s docstring for why ``webexpythonsdk`` is not used).
"""
