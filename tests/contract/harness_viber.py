"""The contract suite's view of Viber: the fake REST bot API, and callbacks signed as Viber signs.

Viber is webhook-only, so every message arrives as one signed ``message`` callback.
The ordinary tests hand it to ``gateway.webhook`` (the real routing and the
connector's signature check; those tests run no HTTP server); ``post_webhook`` POSTs
it to the real webhook server the webhook test starts. Because that server starts
after the channel, the fake takes ``webhook_url`` on trust at ``set_webhook`` instead
of calling it back (the callback check has its own test in test_viber.py).

Test chats are one-on-one chats with users ``user_id(1000 + i)``; each writes first, which
subscribes them, so the bot may answer. Bots have no groups, no edits and no quoting.
Sends are ``send_message`` calls. What each scripted failure is on the wire:

* ``rate_limit_next_send``: Viber's rate limit is status 12 ``tooManyRequests`` in an
  HTTP 200, with no Retry-After (Viber documents none), so ``retry_after`` cannot be put
  on the wire: the connector waits a one-second window on its own.
* ``fail_next_send(500)``: Viber's front end really answers HTTP 5xx when it is down (an
  HTML page, not a status); ``fail_next_send(400)``: status 3 ``badData`` in an HTTP 200,
  Viber's answer to a request it will not carry out.

``replay_rejected`` is False: the signature covers no timestamp, a replayed request is a
duplicate for the journal. There is no connection to drop.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.viber_api import BOT_NAME, MAX_TEXT, ViberFake, user_id

__all__ = ["HARNESS", "ViberHarness"]

WEBHOOK_URL = "https://pyclaw.example/webhook/viber"


class ViberHarness(PushedHarness):
    type_name = "viber"
    max_text = MAX_TEXT
    supports_groups = False
    quotes_replies = False
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(ViberFake())
        self.fake: ViberFake

    def channel_config(self) -> dict[str, Any]:
        return {"auth_token": self.fake.auth_token, "webhook_url": WEBHOOK_URL,
                "bot_name": BOT_NAME, "api_base": self.fake.api_base}

    def chat(self, i: int) -> str:
        return user_id(1000 + i)

    async def _post(self, body: bytes | dict[str, Any]) -> None:
        await self.deliver(self.fake.signed(body))

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        event = self.fake.message_event(chat, text)
        token = None if good else "not-the-bot-auth-token"
        return self.fake.signed(event, token=token), str(event["message_token"])

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        # One-on-one only: the chat is the sender, so ``sender`` has nothing to choose.
        event = self.fake.message_event(chat, text)
        await self._post(event)
        return str(event["message_token"])

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self.fake.redelivery(platform_id))

    async def inject_malformed(self) -> None:
        # A message callback with no sender and a text that is not a string: logged as
        # malformed and answered 200; then an event type Viber may add later: ignored.
        broken = self.fake.message_event(self.chat(99), "x")
        del broken["sender"]
        broken["message"]["text"] = {"unexpected": True}
        await self._post(broken)
        await self._post({"event": "client_status", "timestamp": 1, "message_token": 7})

    async def inject_media_only(self, chat: str) -> str:
        event = self.fake.message_event(
            chat, kind="picture", media=self.fake.media_url(b"not a picture", "image/jpeg"),
            thumbnail=self.fake.media_url(b"not a thumbnail", "image/jpeg"),
            file_name="IMG_0001.jpg", file_size=48213)
        await self._post(event)
        return str(event["message_token"])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.to, text=m.text, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.to == chat]


HARNESS = ViberHarness
