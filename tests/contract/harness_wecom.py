"""The contract suite's view of a WeCom app: the fake server API, and the encrypted callbacks
WeCom makes.

WeCom signs in the query (``msg_signature`` over ``Encrypt``, ``timestamp``, ``nonce``),
not in headers, so a signed request here is (XML body, query) and ``deliver``/
``post_webhook`` pass the query on. Every callback is encrypted; the channel answers an
empty 200.

Test chats are members ``pyclaw_user_000001``...; an app's callbacks come from one-on-one
conversations with it (group robots are another product), and nothing is quoted. A
member who writes to the app is in its visible range in the fake.

WeCom has no 429: a scripted one is -1 "system busy" without a wait, and the connector
waits one second on its own. ``replay_rejected`` is False: the signed timestamp is
checked for five minutes, so a replay within them passes the signature and is a
duplicate for the journal. There is no connection to drop.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.channels import WebhookRequest
from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.wecom_api import MAX_BYTES, WeComFake

__all__ = ["HARNESS", "WeComHarness"]


class WeComHarness(PushedHarness):
    type_name = "wecom"
    max_text = MAX_BYTES
    supports_groups = False
    quotes_replies = False
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(WeComFake())
        self.fake: WeComFake

    def text_length(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def channel_config(self) -> dict[str, Any]:
        return {"corp_id": self.fake.corp_id, "agent_id": self.fake.agent_id,
                "corp_secret": self.fake.corp_secret, "token": self.fake.token,
                "encoding_aes_key": self.fake.encoding_aes_key, "api_base": self.fake.url}

    def chat(self, i: int) -> str:
        return f"pyclaw_user_{i:06d}"

    async def deliver(self, signed: Signed, *, expect: int | None = None) -> None:
        body, query = signed
        response = await self.gateway.webhook(self.type_name, WebhookRequest(
            "POST", body, {"Content-Type": "text/xml"}, query,
            path=f"/webhook/{self.type_name}"))
        wanted = self.accepted if expect is None else expect
        assert response.status == wanted, (response.status, response.body)

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
        # logged and skipped, answered 200 so WeCom does not send it again.
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


HARNESS = WeComHarness
