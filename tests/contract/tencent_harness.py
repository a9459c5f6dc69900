"""The part of a harness both Tencent platforms share (WeChat Official Accounts, WeCom apps):
they sign in the query (``signature``/``msg_signature``, ``timestamp``, ``nonce``), not in
headers, so a signed request here is (XML body, query) and :meth:`deliver` passes the
query on (the fakes' ``post_signed`` does the same over HTTP). Every message a fake builds
is remembered for its retries, and a malformed one is signed and sealed like any other.

Neither has group chats that reach the channel, nor quoting. Neither has a 429: a
scripted one is errcode -1 (WeChat's "system error", WeCom's "system busy": retry later)
without a wait, and the connector waits a second on its own. ``replay_rejected`` is
False: the signed timestamp is checked for five minutes, so a replay within them passes
the signature and is a duplicate for the journal. There is no connection to drop.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.channels import WebhookRequest
from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed

__all__ = ["TencentHarness"]


class TencentHarness(PushedHarness):
    """A subclass sets ``type_name``, ``max_text``, ``ack`` (the body the channel answers a
    journaled callback with), ``channel_config`` and ``chat``."""

    supports_groups = False
    quotes_replies = False
    replay_rejected = False
    ack: str

    fake: Any
    """A :class:`tests.fakes.wechat_api.TencentFake`: message, media, callback, sent."""

    def text_length(self, text: str) -> int:
        return len(text.encode("utf-8"))

    async def deliver(self, signed: Signed, *, expect: int | None = None) -> None:
        body, query = signed
        response = await self.gateway.webhook(self.type_name, WebhookRequest(
            "POST", body, {"Content-Type": "text/xml"}, query,
            path=f"/webhook/{self.type_name}"))
        wanted = self.accepted if expect is None else expect
        assert response.status == wanted, (response.status, response.body)
        if wanted == 200:
            assert response.body == self.ack

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        fields = self.fake.message(chat, text)
        return (self.fake.callback(fields, token=None if good else "not-our-token"),
                str(fields["MsgId"]))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        fields = self.fake.message(chat, text)
        await self.deliver(self.fake.callback(fields))
        return str(fields["MsgId"])

    async def redeliver(self, platform_id: str) -> None:
        await self.deliver(self.fake.callback(self.fake.redelivery(platform_id)))

    async def inject_malformed(self) -> None:
        # Signed and encrypted, but the message inside has no sender and no numeric MsgId:
        # logged and skipped, acknowledged so the platform does not send it again.
        broken = self.fake.message(self.chat(99), "x")
        del broken["FromUserName"]
        broken["MsgId"] = "not-a-number"
        await self.deliver(self.fake.callback(broken))

    async def inject_media_only(self, chat: str) -> str:
        fields = self.fake.media(chat, "image")
        await self.deliver(self.fake.callback(fields))
        return str(fields["MsgId"])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.to, text=m.text, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.to == chat]
