"""The contract suite's view of a WeChat Official Account: the fake API, and callbacks signed
(and, in safe mode, encrypted) as WeChat makes them.

WeChat puts its signature in the query (``signature``, ``timestamp``, ``nonce``,
``msg_signature``), not in headers, so a signed request here is (XML body, query) and
``deliver``/``post_webhook`` pass the query on. The channel runs in safe mode, the
default and the recommended one.

Test chats are followers ``o6_bmjrPTlm6_2sgVt7hMZ000001``...; an Official Account has no
group chats and no quoting. Every injected message opens its user's 48-hour window and
quota in the fake, as a real one does. The quota is five customer-service messages per
user message; the suite's 10,000-character reply goes out as seven 2,048-byte parts, so
the harness's fake allows twenty (the per-channel tests check the real five and the
message a user sees when it runs out).

WeChat has no 429: a scripted one is -1 "system error" ("busy, retry later") without a
wait, and the connector waits one second on its own. ``replay_rejected`` is False: the
signed timestamp is checked for five minutes, so a replay within them passes the
signature and is a duplicate for the journal. There is no connection to drop.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.channels import WebhookRequest
from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.wechat_api import MAX_BYTES, WeChatFake

__all__ = ["HARNESS", "WeChatHarness"]

CONTRACT_QUOTA = 20


class WeChatHarness(PushedHarness):
    type_name = "wechat"
    max_text = MAX_BYTES
    supports_groups = False
    quotes_replies = False
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(WeChatFake())
        self.fake: WeChatFake
        self.fake.reply_quota = CONTRACT_QUOTA

    def text_length(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def channel_config(self) -> dict[str, Any]:
        return {"app_id": self.fake.app_id, "app_secret": self.fake.app_secret,
                "token": self.fake.token, "encoding_aes_key": self.fake.encoding_aes_key,
                "encryption": "safe", "api_base": self.fake.url}

    def chat(self, i: int) -> str:
        return f"o6_bmjrPTlm6_2sgVt7hMZ{i:06d}"

    async def deliver(self, signed: Signed, *, expect: int | None = None) -> None:
        body, query = signed
        response = await self.gateway.webhook(self.type_name, WebhookRequest(
            "POST", body, {"Content-Type": "text/xml"}, query,
            path=f"/webhook/{self.type_name}"))
        wanted = self.accepted if expect is None else expect
        assert response.status == wanted, (response.status, response.body)
        if wanted == 200:
            assert response.body == "success"

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
        # logged and skipped, answered "success" so WeChat does not send it again.
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

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        if signature == "replayed":
            assert self._last_good is not None, "replay needs a good post first"
            signed, pid = self._last_good
        else:
            signed, pid = self.signed_message(chat, text, good=signature == "good")
            if signature == "good":
                self._last_good = (signed, pid)
        status, _ = await self.fake.post_callback(url, *signed)
        return status, pid


HARNESS = WeChatHarness
