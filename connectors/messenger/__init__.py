"""Facebook Messenger channel: a Page's signed webhooks in, the Send API out.

``manifest`` (config model and spec) is what the registry loads eagerly;
``runtime`` holds the connector. No SDK (Meta publishes none for Python): the
Graph API calls go through the kit's ``ChannelHttp``.
"""
