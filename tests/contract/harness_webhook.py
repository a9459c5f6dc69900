"""The contract suite's view of the signed webhook: a caller signing requests, and its
callback receiver (tests/fakes/webhook_client.py) recording the reply parts.

Every message arrives as a signed POST. The ordinary tests hand it to
``gateway.webhook`` (the real routing and the connector's signature check) in
callback mode: each is answered 202 once stored, and its reply's parts are
POSTed to the receiver, where the shared controls (``fail_next``, 429, lost
answers) apply under ``callback``. ``quotes_replies``: every part names the
message it answers (``in_reply_to``).

``webhook_config`` is sync mode, which the webhook test drives through the real
HTTP server: a good request is answered 200 with the reply in the response body,
recorded here as a delivered message (and the receiver must see nothing, or the
reply would have gone twice). Callback mode answers 202, which the webhook
test's "good is 200" does not allow; its 202 is tested in
tests/connectors/test_webhook_channel.py. ``replay_rejected``: the signature covers a
timestamp, so the captured request sent again with its old timestamp is refused.
There is no connection to drop.
"""

from __future__ import annotations

import time
from typing import Any

from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness
from tests.fakes.webhook_client import WebhookClientFake, attachment
from tests.test_attachments import PNG

__all__ = ["HARNESS", "WebhookHarness"]

MAX_TEXT = 4000
GROUP = "group:kitchen"
REPLAY_AGE = 600


class WebhookHarness(PushedHarness):
    type_name = "webhook"
    max_text = MAX_TEXT
    supports_groups = True
    quotes_replies = True
    replay_rejected = True
    accepted = 202

    def __init__(self) -> None:
        super().__init__(WebhookClientFake())
        self.fake: WebhookClientFake
        self._sync_replies: list[SentMessage] = []
        self._last_message: dict[str, Any] | None = None

    def channel_config(self) -> dict[str, Any]:
        return {"secret": self.fake.secret, "callback_url": self.fake.callback_url,
                "max_text": MAX_TEXT}

    def webhook_config(self) -> dict[str, Any]:
        return {**self.channel_config(), "reply_mode": "sync"}

    def chat(self, i: int) -> str:
        return f"chat-{i}"

    async def _post(self, message: dict[str, Any] | bytes, *, expect: int | None = None
                    ) -> None:
        await self.deliver(self.fake.signed(message), expect=expect)

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        message = self.fake.message(chat, text, sender=sender)
        await self._post(message)
        return str(message["id"])

    async def redeliver(self, platform_id: str) -> None:
        # The caller retries: the same body, signed again with a fresh timestamp.
        await self._post(self.fake.request_of(platform_id))

    async def inject_malformed(self) -> None:
        # Signed correctly, but no id and a chat that is not a string: 400, logged.
        await self._post({"chat": ["not", "a", "string"], "text": 5}, expect=400)

    async def inject_media_only(self, chat: str) -> str:
        message = self.fake.message(chat, "", attachments=[
            attachment(PNG, "door.png", "image/png", "image")])
        await self._post(message)
        return str(message["id"])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        received = [SentMessage(chat=c.chat, text=c.text, reply_to=c.in_reply_to,
                                ts=c.monotonic) for c in self.fake.received]
        return sorted((m for m in received + self._sync_replies
                       if chat is None or m.chat == chat), key=lambda m: m.ts)

    def group_chat(self) -> str:
        return GROUP

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        message = self.fake.message(chat, text, group=True, mentioned=mention)
        await self._post(message)
        return str(message["id"])

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        if signature == "replayed":
            assert self._last_message is not None, "replay needs a good post first"
            message = self._last_message  # captured, and sent again with its old timestamp
            body, headers = self.fake.signed(message,
                                             timestamp=int(time.time()) - REPLAY_AGE)
        else:
            message = self.fake.message(chat, text)
            secret = None if signature == "good" else "not-the-shared-secret"
            body, headers = self.fake.signed(message, secret=secret)
            if signature == "good":
                self._last_message = message
        status, answer = await self.fake.post(url, body, headers)
        if status == 200 and isinstance(answer, dict) and isinstance(answer.get("reply"), str):
            self._sync_replies.append(SentMessage(chat=chat, text=answer["reply"],
                                                  reply_to=str(message["id"]),
                                                  ts=time.monotonic()))
        return status, str(message["id"])


HARNESS = WebhookHarness
