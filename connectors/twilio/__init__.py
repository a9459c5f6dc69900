"""Twilio channel: SMS and WhatsApp through Twilio's Programmable Messaging.

``manifest`` (config model and spec) is what the registry loads eagerly;
``runtime`` holds the connector. The official ``twilio`` SDK checks the webhook
signatures (``RequestValidator``) and writes the TwiML answer; the two REST calls
go through the kit's ``ChannelHttp`` (see ``runtime``'s docstring for why).
"""
