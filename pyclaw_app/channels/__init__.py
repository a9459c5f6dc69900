"""The channel contract and the kit a channel is built on.

A channel package imports from here (and ``pyclaw_app.model``/``errors``) only;
the core finds channel types through the ``pyclaw.channels`` entry points and
never imports a channel package. See docs/channels.md.
"""

from pyclaw_app.channels.contract import (
    Capabilities,
    Category,
    ChannelConfig,
    Connector,
    ConnectorContext,
    ConnectorSpec,
    GroupReply,
    Limits,
    ProbeResult,
    StateStore,
    SubmitResult,
    Transport,
    secret_field,
)
from pyclaw_app.channels.http import ChannelHttp, HttpAnswer
from pyclaw_app.channels.lifecycle import ConnectorBase, Phase
from pyclaw_app.channels.net import is_loopback
from pyclaw_app.channels.recent import Recent
from pyclaw_app.channels.rejections import RejectionLog
from pyclaw_app.channels.rest import RestConnector
from pyclaw_app.channels.text import split_text, utf8_len, utf16_len
from pyclaw_app.channels.turns import Turns
from pyclaw_app.channels.webhook import (
    WebhookRejected,
    WebhookRequest,
    WebhookResponse,
    fresh_timestamp,
    hmac_digest,
    same_secret,
    verify_hmac,
)

__all__ = [
    "Capabilities",
    "Category",
    "ChannelConfig",
    "ChannelHttp",
    "Connector",
    "ConnectorBase",
    "ConnectorContext",
    "ConnectorSpec",
    "GroupReply",
    "HttpAnswer",
    "Limits",
    "Phase",
    "ProbeResult",
    "Recent",
    "RejectionLog",
    "RestConnector",
    "StateStore",
    "SubmitResult",
    "Transport",
    "Turns",
    "WebhookRejected",
    "WebhookRequest",
    "WebhookResponse",
    "fresh_timestamp",
    "hmac_digest",
    "is_loopback",
    "same_secret",
    "secret_field",
    "split_text",
    "utf8_len",
    "utf16_len",
    "verify_hmac",
]
