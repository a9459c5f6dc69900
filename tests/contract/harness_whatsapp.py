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

import json
from typing import Any

from pyclaw_app.channels import WebhookRequest
from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.whatsapp_api import MAX_TEXT, WhatsAppFake

__all__ = ["HARNESS", "WhatsAppHarness"]


class WhatsAppHarness(PlatformHarness):
    type_name = "whatsapp"
    max_text = MAX_TEXT
    supports_drop = False
    supports_edit = False
    supports_groups = False
    quotes_replies = True
    webhook = True
    replay_rejected = False

    def __init__(self) -> None:
        self.fake = WhatsAppFake()
        self.gateway: Any = None
        self._last_good: tuple[bytes, dict[str, str]] | None = None

    def attach(self, gateway: Any) -> None:
        self.gateway = gateway

    async def start(self) -> None:
        await self.fake.start()

    async def stop(self) -> None:
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"access_token": self.fake.access_token, "app_secret": self.fake.app_secret,
                "verify_token": self.fake.verify_token,
                "phone_number_id": self.fake.phone_number_id, "api_base": self.fake.url}

    def webhook_config(self) -> dict[str, Any]:
        return self.channel_config()

    def chat(self, i: int) -> str:
        return f"1555{i:07d}"

    async def _post(self, *messages: Any) -> None:
        body, headers = self.fake.signed(self.fake.payload(messages=list(messages)))
        response = await self.gateway.webhook(self.type_name, WebhookRequest(
            "POST", body, headers, path=f"/webhook/{self.type_name}"))
        assert response.status == 200, (response.status, response.body)

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

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    async def drop_connection(self) -> None:
        raise NotImplementedError("WhatsApp pushes webhooks: there is no connection to drop")

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next("send", status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("send")

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        if signature == "replayed":
            assert self._last_good is not None, "replay needs a good post first"
            body, headers = self._last_good
        else:
            message = self.fake.message(chat, text)
            secret = None if signature == "good" else "not-the-app-secret"
            body, headers = self.fake.signed(self.fake.payload(messages=[message]),
                                             secret=secret)
            if signature == "good":
                self._last_good = (body, headers)
        status, _ = await self.fake.post_webhook(url, body, headers)
        return status, _message_id(body)


def _message_id(body: bytes) -> str:
    return str(json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"])


HARNESS = WhatsAppHarness
