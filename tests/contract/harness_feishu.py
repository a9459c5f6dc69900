"""The contract suite's view of Feishu / Lark: the fake open platform, and events as Feishu
pushes them (encrypted with the Encrypt Key and signed).

The ordinary tests hand each request to ``gateway.webhook`` (the real routing and the
connector's checks; no HTTP server); ``post_webhook`` POSTs it to the real webhook server
the webhook test starts. Test chats are one-on-one chats ``oc_...``; the group case is a
group the bot is in, mentioned as Feishu mentions (``@_user_1`` and ``mentions[]``);
``thread_target`` is a thread in that group, where the connector answers in the thread.

The first part of an answer is a reply (``POST .../messages/{id}/reply``, recorded with
the quoted message as ``parent_id``) and every later part a new message, so "the next
send" is scripted on ``reply`` and "the send after ``skip`` ones" on ``send``.
``replay_rejected``: the signature covers a timestamp and a nonce, and a request accepted
once is refused when it comes again.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.feishu_api import FeishuFake

__all__ = ["HARNESS", "FeishuHarness"]

GROUP = "oc_" + "0a" * 16


class FeishuHarness(PushedHarness):
    type_name = "feishu"
    max_text = 8000
    supports_edit = True
    quotes_replies = True
    replay_rejected = True

    def __init__(self) -> None:
        super().__init__(FeishuFake())
        self.fake: FeishuFake
        self._thread_root: str | None = None

    def channel_config(self) -> dict[str, Any]:
        return {"app_id": self.fake.app_id, "app_secret": self.fake.app_secret,
                "verification_token": self.fake.verification_token,
                "encrypt_key": self.fake.encrypt_key, "base_url": self.fake.url}

    def chat(self, i: int) -> str:
        return "oc_" + f"{1000 + i:032x}"

    async def _post(self, event: dict[str, Any]) -> None:
        await self.deliver(self.fake.signed(event))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        if thread is not None:
            event = self.fake.message_event(chat, text, sender=sender, group=True,
                                            mention_bot=True, thread_root=thread)
        else:
            event = self.fake.message_event(chat, text, sender=sender)
        await self._post(event)
        return event["event"]["message"]["message_id"]

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self.fake.redelivery(platform_id))

    async def inject_malformed(self) -> None:
        # A message event whose content is not the JSON string Feishu documents, then one
        # with no chat_id: each is logged and skipped, and answered 200 (not redelivered).
        broken = self.fake.message_event(self.chat(99), "x")
        broken["event"]["message"]["content"] = {"text": "an object, not a JSON string"}
        await self._post(broken)
        no_chat = self.fake.message_event(self.chat(99), "y")
        del no_chat["event"]["message"]["chat_id"]
        await self._post(no_chat)

    async def inject_media_only(self, chat: str) -> str:
        event = self.fake.message_event(chat, kind="image", content={
            "image_key": "img_v3_02ab_5b7c3d4e-6f70-4a81-9b2c-3d4e5f607182g"})
        await self._post(event)
        return event["event"]["message"]["message_id"]

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.chat, text=m.text, reply_to=m.parent or None,
                            thread=self.fake.thread_root(m.thread) if m.thread else None,
                            ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.chat == chat]

    def visible(self, chat: str) -> list[str]:
        return [m.text for m in self.fake.sent if m.chat == chat]

    def edits(self, chat: str) -> int:
        return sum(1 for mid, _ in self.fake.edit_log if self.fake.messages[mid].chat == chat)

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.fail_next("reply", 429, retry_after=retry_after)

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        if skip == 0:
            self.fake.fail_next("reply", status)
        else:
            self.fake.fail_next("send", status, skip=skip - 1)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("reply")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        event = self.fake.message_event(chat, text)
        key = None if good else "not-this-apps-encrypt-key"
        return self.fake.signed(event, encrypt_key=key), event["event"]["message"]["message_id"]

    def group_chat(self) -> str:
        return GROUP

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        event = self.fake.message_event(chat, text, group=True, mention_bot=mention)
        await self._post(event)
        return event["event"]["message"]["message_id"]

    def thread_target(self) -> tuple[str, str]:
        if self._thread_root is None:
            self._thread_root = self.fake.thread(GROUP)
        return GROUP, self._thread_root


HARNESS = FeishuHarness
