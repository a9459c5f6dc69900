"""The contract suite's view of WhatsApp: the fake Cloud API, and webhooks signed as Meta signs.

WhatsApp is webhook-only, so every message arrives as a signed ``WebhookPayload``.
The ordinary tests hand it to ``gateway.webhook`` (the real routing and the
connector's signature check; those tests run no HTTP server); ``post_webhook``
POSTs it to the real webhook server the webhook test starts.

Test chats are one-on-one chats with users ``155500010NN`` (wa_ids); the Cloud API
has no bot groups, so ``supports_groups`` is False. ``quotes_replies``: the first
part carries ``context.message_id`` of the message it answers. Every injected
message opens its user's 24-hour window in the fake, as a real one does.

The Graph API's throttling is an HTTP 400 with code 130429 and no Retry-After, so
``retry_after`` cannot be put on the wire: the connector waits the one-second
throughput window on its own. ``replay_rejected`` is False: the signature covers no
timestamp, a replayed request is a duplicate for the journal. There is no connection
to drop and no edit API.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.whatsapp_api import MAX_TEXT, WhatsAppFake

__all__ = ["HARNESS", "WhatsAppHarness"]


class WhatsAppHarness(PushedHarness):
    type_name = "whatsapp"
    max_text = MAX_TEXT
    supports_groups = False
    quotes_replies = True
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(WhatsAppFake())
        self.fake: WhatsAppFake

    def channel_config(self) -> dict[str, Any]:
        return {"access_token": self.fake.access_token, "app_secret": self.fake.app_secret,
                "verify_token": self.fake.verify_token,
                "phone_number_id": self.fake.phone_number_id, "api_base": self.fake.url}

    def chat(self, i: int) -> str:
        return f"1555{i:07d}"

    async def _post(self, *messages: Any) -> None:
        await self.deliver(self.fake.signed(self.fake.payload(messages=list(messages))))

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        message = self.fake.message(chat, text)
        secret = None if good else "not-the-app-secret"
        return (self.fake.signed(self.fake.payload(messages=[message]), secret=secret),
                str(message["id"]))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        message = self.fake.message(chat, text)
        await self._post(message)
        return str(message["id"])

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self.fake.redelivery(platform_id))

    async def inject_malformed(self) -> None:
        # One change: a text message with no sender and a non-string body, then a reaction;
        # the broken one is logged and skipped, the request still answered 200.
        broken = self.fake.message(self.chat(99), "x")
        del broken["from"]
        broken["text"] = {"body": {"unexpected": True}}
        reaction = {"from": self.chat(99), "id": "wamid.reaction", "timestamp": "1",
                    "type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}}
        await self._post(broken, reaction)

    async def inject_media_only(self, chat: str) -> str:
        message = self.fake.media(chat, "image")
        await self._post(message)
        return str(message["id"])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.to, text=m.text, reply_to=m.quoted, ts=m.monotonic)
                for m in self.fake.sent if m.kind == "text" and (chat is None or m.to == chat)]


HARNESS = WhatsAppHarness
