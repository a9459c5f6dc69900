"""WeChat Official Account channel: signed (and, in safe mode, encrypted) XML callbacks in,
the customer-service message API out.

``manifest`` (config model and spec) is what the registry loads eagerly; ``runtime``
holds the connector. No SDK (wechatpy is unmaintained and synchronous): the REST calls
go through the kit's ``ChannelHttp``. ``_crypto`` (the signature and the AES envelope),
``_wire`` (safe XML, errcodes, the access_token cache), ``_parse`` (the message XML) and
``_tencent`` (the connector both subclass: token, calls, client, journaling a callback)
are shared with ``connectors.wecom``, which speaks the same protocol family.
"""
