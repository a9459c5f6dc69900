"""LINE channel: the Messaging API's signed webhooks in, the reply and push APIs out.

``manifest`` (config model and spec) is what the registry loads eagerly and
imports no SDK; ``runtime`` holds the connector, on line-bot-sdk v3 (signature
check and REST calls; ``_api`` maps the SDK's outcomes to pyclaw's errors);
``_parse`` reads webhook events as plain dicts.
"""
