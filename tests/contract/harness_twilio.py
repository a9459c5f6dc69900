"""The contract suite's view of Twilio: the fake Messages API, and webhooks signed as Twilio signs.

Twilio is webhook-only, so every message arrives as a signed form POST. The
ordinary tests hand it to ``gateway.webhook`` (the real routing and the
connector's signature check; those tests run no HTTP server); ``post_webhook``
POSTs it to the real webhook server the webhook test starts. Either way the
request is signed for the public URL Twilio was given (``webhook_url``), as it
is when a reverse proxy hands Twilio's request to the gateway.

Test chats alternate between SMS (even ``i``: ``+1555...``) and WhatsApp via Twilio
(odd ``i``: ``whatsapp:+1555...``), so both channels run the whole contract; every
injected WhatsApp message opens its user's 24-hour window in the fake. There are no
groups (SMS and WhatsApp via Twilio are one-on-one), no quoting and no edit API.
Parts are counted in UTF-16 units (``max_text`` 1,600, the ``Body`` limit).

Twilio's 429 (code 20429) carries no Retry-After: the connector waits its one-second
back-off, which the contract's ``retry_after`` of 1 s checks. ``replay_rejected`` is
False: the signature covers no timestamp, a replayed request is a duplicate for the
journal.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.channels import utf16_len
from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.twilio_api import MAX_BODY, TwilioFake

__all__ = ["HARNESS", "TwilioHarness"]


class TwilioHarness(PushedHarness):
    type_name = "twilio"
    max_text = MAX_BODY
    supports_groups = False
    quotes_replies = False
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(TwilioFake())
        self.fake: TwilioFake

    def text_length(self, text: str) -> int:
        return utf16_len(text)

    def channel_config(self) -> dict[str, Any]:
        return {"account_sid": self.fake.account_sid, "auth_token": self.fake.auth_token,
                "webhook_url": self.fake.webhook_url, "api_base": self.fake.url,
                "messaging_api_base": self.fake.url}

    def chat(self, i: int) -> str:
        number = f"+1555{i:07d}"
        return f"whatsapp:{number}" if i % 2 else number

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        params = self.fake.inbound(chat, text)
        token = None if good else "0" * 32
        return self.fake.signed(params, token=token), params["MessageSid"]

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        params = self.fake.inbound(chat, text)
        await self.deliver(self.fake.signed(params))
        return params["MessageSid"]

    async def redeliver(self, platform_id: str) -> None:
        await self.deliver(self.fake.signed(self.fake.redelivery(platform_id)))

    async def inject_malformed(self) -> None:
        # A correctly signed request that has lost its From and To: logged, answered 200.
        params = self.fake.inbound(self.chat(98), "x")
        del params["From"], params["To"]
        await self.deliver(self.fake.signed(params))

    async def inject_media_only(self, chat: str) -> str:
        params = self.fake.inbound(chat, "", media=("image/jpeg",))
        await self.deliver(self.fake.signed(params))
        return params["MessageSid"]

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.to, text=m.body, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.to == chat]


HARNESS = TwilioHarness
