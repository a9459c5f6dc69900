"""WeCom (企业微信, WeChat Work) channel: a self-built app's encrypted XML callbacks in, the app
message API out.

``manifest`` (config model and spec) is what the registry loads eagerly; ``runtime``
holds the connector. No SDK: the REST calls go through the kit's ``ChannelHttp``. The
signature, the AES envelope, safe XML, the token cache, the message parser and the
connector's shared half are the WeChat Official Account's (``connectors.wechat._crypto``,
``_wire``, ``_parse``, ``_tencent``): the two platforms share Tencent's callback protocol
and API conventions, and one implementation serves both.
"""
