"""The contract suite's view of LINE: the fake Messaging API, and webhooks signed as LINE signs.

LINE is webhook-only, so every message arrives as a signed ``CallbackRequest``.
The ordinary tests hand it to ``gateway.webhook`` (the real routing and the
connector's signature check; those tests run no HTTP server); ``post_webhook``
POSTs it to the real webhook server the webhook test starts.

Test chats are one-on-one chats with users ``U000...01``, ``U000...02``...; the
group case is group ``C...``. ``quotes_replies``: the first part quotes the message
it answers (``quoteToken``), which the fake resolves to that message's id.

A conversation's first send is a reply-API call (its fresh reply token), every
later send a push, so "the next send" is scripted on ``reply`` and "the send after
``skip`` ones" on ``push``. LINE's 429 has no Retry-After, so ``retry_after`` cannot
be put on the wire: the connector waits a one-second window on its own.
``replay_rejected`` is False: the signature covers no timestamp, a replayed request
is a duplicate for the journal. There is no connection to drop.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.channels import utf16_len
from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.line_api import MAX_TEXT, LineFake

__all__ = ["HARNESS", "LineHarness"]

GROUP = "C" + "0a" * 16


class LineHarness(PushedHarness):
    type_name = "line"
    max_text = MAX_TEXT
    quotes_replies = True
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(LineFake())
        self.fake: LineFake

    def text_length(self, text: str) -> int:
        return utf16_len(text)

    def channel_config(self) -> dict[str, Any]:
        return {"channel_access_token": self.fake.access_token,
                "channel_secret": self.fake.channel_secret, "api_base": self.fake.url}

    def chat(self, i: int) -> str:
        return "U" + f"{1000 + i:032x}"

    async def _post(self, *events: Any) -> None:
        await self.deliver(self.fake.signed(list(events)))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        event = self.fake.message_event(chat, text, sender=sender)
        await self._post(event)
        return event["message"]["id"]

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self.fake.redelivery(platform_id))

    async def inject_malformed(self) -> None:
        # One batch: a message event with no source and a non-string text, then a follow
        # event; the broken one is logged and skipped, the batch still answered 200.
        broken = self.fake.message_event(self.chat(99), "x")
        del broken["source"]
        broken["message"]["text"] = {"unexpected": True}
        follow = {"type": "follow", "mode": "active", "timestamp": 1, "webhookEventId": "x",
                  "deliveryContext": {"isRedelivery": False}, "replyToken": "r",
                  "source": {"type": "user", "userId": self.chat(99)},
                  "follow": {"isUnblocked": False}}
        await self._post(broken, follow)

    async def inject_media_only(self, chat: str) -> str:
        event = self.fake.message_event(chat, kind="image",
                                        contentProvider={"type": "line"})
        await self._post(event)
        return event["message"]["id"]

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.to, text=m.text, reply_to=m.quoted, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.to == chat]

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.fail_next("reply", 429, retry_after=retry_after)

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        if skip == 0:
            self.fake.fail_next("reply", status)
        else:
            self.fake.fail_next("push", status, skip=skip - 1)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("reply")

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        event = self.fake.message_event(chat, text)
        secret = None if good else "not-the-channel-secret"
        return self.fake.signed([event], secret=secret), event["message"]["id"]

    def group_chat(self) -> str:
        return GROUP

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        event = self.fake.message_event(chat, text, mention_bot=mention)
        await self._post(event)
        return event["message"]["id"]


HARNESS = LineHarness
