"""The contract suite's view of DingTalk: the fake's Stream gateway and robot APIs.

Test chats are single chats with users 1, 2...; the connector addresses them by the user's
staff id. A message arrives as a CALLBACK frame on the robot topic; what the robot sent is
what the fake's session webhook (or, once a webhook expired, its robot send API)
accepted. A redelivery is the same frame pushed again; a dropped connection is every
Stream socket cut server-side, and what was pushed but not acked comes again on the next
connection.

The flags, honestly: ``supports_groups`` is False because DingTalk delivers a robot only
the group messages that @mention it, so "group_reply: all" cannot be shown (the group
path, mentions and group replies are in tests/connectors/test_dingtalk.py);
``queues_while_down`` is False because robot messages are fire-and-forget: sent while no
Stream client is connected they get the robot's off-duty prompt, not a queue. No
threads, no quoting, no edits. A rate limit is DingTalk's own throttle answer, which
names no wait: the connector waits the documented second, so ``rate_limit_next_send``
keeps to 1 s.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.dingtalk_api import DingTalkFake

__all__ = ["HARNESS", "DingTalkHarness"]

MAX_TEXT = 6000


class DingTalkHarness(PlatformHarness):
    type_name = "dingtalk"
    max_text = MAX_TEXT
    supports_groups = False

    def __init__(self) -> None:
        self.fake = DingTalkFake()

    def text_length(self, text: str) -> int:
        return len(text.encode("utf-8"))

    async def start(self) -> None:
        await self.fake.start()

    async def stop(self) -> None:
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"client_id": self.fake.client_id, "client_secret": self.fake.client_secret,
                "api_base": self.fake.url, "oapi_base": self.fake.url}

    def chat(self, i: int) -> str:
        return self.fake.user(i + 1).staff_id

    def _user_of(self, chat: str) -> int:
        return int(chat.removeprefix("staff"))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        user = self.fake.user(self._user_of(chat))
        return await self.fake.deliver(self.fake.message(user, text=text))

    async def redeliver(self, platform_id: str) -> None:
        await self.fake.redeliver(platform_id)

    async def inject_malformed(self) -> None:
        """A robot callback whose message has no msgId and a numeric conversation type."""
        data = self.fake.message(self.fake.user(99), text="x")
        del data["msgId"]
        data["conversationType"] = 1
        await self.fake.push_frame(self.fake.callback(data))

    async def inject_media_only(self, chat: str) -> str:
        user = self.fake.user(self._user_of(chat))
        return await self.fake.deliver(self.fake.message(
            user, msgtype="picture", content={"pictureDownloadCode": "pWjAfake",
                                              "downloadCode": "mIofFakeDownloadCode"}))

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.chat, text=m.text, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.chat == chat]

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next("send", status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("send")


HARNESS = DingTalkHarness
