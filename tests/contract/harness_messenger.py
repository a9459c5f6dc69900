"""The contract suite's view of Messenger: the fake Send API, and Page webhooks signed by Meta.

Messenger is webhook-only, so every message arrives as a signed ``object: "page"`` body.
The ordinary tests hand it to ``gateway.webhook`` (the real routing and the connector's
signature check; those tests run no HTTP server); ``post_webhook`` POSTs it to the real
webhook server the webhook test starts.

Test chats are one-on-one conversations with people ``NNNN...`` (page-scoped ids); a Page
is never in a group, so ``supports_groups`` is False. The Send API has no way to quote a
message, so ``quotes_replies`` is False. Every injected message opens its person's
24-hour window in the fake, as a real one does.

The Graph API's throttling is an HTTP 400 with code 613 and a usage header that counts in
minutes, so a one-second ``retry_after`` cannot be put on the wire: the connector waits
one second (the Send API's limits are per second) when Meta's estimate is 0.
``replay_rejected`` is False: the signature covers no timestamp, a replayed request is a
duplicate for the journal. There is no connection to drop and no edit API.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.channels import utf16_len
from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.messenger_api import MAX_TEXT, MessengerFake

__all__ = ["HARNESS", "MessengerHarness"]


class MessengerHarness(PushedHarness):
    type_name = "messenger"
    max_text = MAX_TEXT
    supports_groups = False
    quotes_replies = False
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(MessengerFake())
        self.fake: MessengerFake

    def text_length(self, text: str) -> int:
        return utf16_len(text)

    def channel_config(self) -> dict[str, Any]:
        return {"page_access_token": self.fake.page_access_token,
                "app_secret": self.fake.app_secret, "verify_token": self.fake.verify_token,
                "api_base": self.fake.url}

    def chat(self, i: int) -> str:
        return f"{6024000000000000 + i}"

    async def _post(self, *events: Any) -> None:
        await self.deliver(self.fake.signed(self.fake.payload(*events)))

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        event = self.fake.message(chat, text)
        secret = None if good else "not-the-app-secret"
        return (self.fake.signed(self.fake.payload(event), secret=secret),
                str(event["message"]["mid"]))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        event = self.fake.message(chat, text)
        await self._post(event)
        return str(event["message"]["mid"])

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self.fake.redelivery(platform_id))

    async def inject_malformed(self) -> None:
        # Three events in one body: a message without a sender, a message whose text is not
        # a string, and a read receipt; the broken ones are logged and skipped, the request
        # still answered 200.
        no_sender = self.fake.message(self.chat(99), "x")
        del no_sender["sender"]
        bad_text = self.fake.message(self.chat(99), "y")
        bad_text["message"]["text"] = {"unexpected": True}
        await self._post(no_sender, bad_text, self.fake.read(self.chat(99)))

    async def inject_media_only(self, chat: str) -> str:
        event = self.fake.media(chat, "image")
        await self._post(event)
        return str(event["message"]["mid"])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.to, text=m.text, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.to == chat]


HARNESS = MessengerHarness
