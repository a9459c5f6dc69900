"""LINE channel: the Messaging API's signed webhooks in, the reply and push APIs out.

``manifest`` (config model and spec) is what the registry loads eagerly;
``runtime`` holds the connector. No SDK: the REST calls go through the kit's
``ChannelHttp`` (see ``runtime``'s docstring for why).
"""
