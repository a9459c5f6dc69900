"""The contract suite's view of Telegram: the fake Bot API, spoken to as Telegram would.

Test chats are private chats ``1001``, ``1002``...; the thread case is topic
``42`` of the forum supergroup ``-1001234567890``, where the harness mentions
the bot (``@pyclaw_test_bot ...`` with a ``mention`` entity) because the
channel runs in the default mention-only group mode. ``sent()`` reports the
text as the user reads it (HTML parsed), which is what the fake records.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.telegram_api import MAX_TEXT, FakeTelegram, utf16_len

__all__ = ["HARNESS", "TelegramHarness"]

FORUM_CHAT = -1001234567890
FORUM_TOPIC = 42


class TelegramHarness(PlatformHarness):
    type_name = "telegram"
    max_text = MAX_TEXT

    def __init__(self) -> None:
        self.fake = FakeTelegram()

    def text_length(self, text: str) -> int:
        return utf16_len(text)

    async def start(self) -> None:
        await self.fake.start()  # PTB takes base_url per Bot: no module-level overrides

    async def stop(self) -> None:
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {
            "token": self.fake.token,
            "base_url": f"{self.fake.url}/bot",
            "base_file_url": f"{self.fake.url}/file/bot",
            "mode": "polling",
            "group_mode": "mention",
            "poll_timeout": 2,
        }

    def chat(self, i: int) -> str:
        return str(1001 + i)

    def thread_target(self) -> tuple[str, str] | None:
        return str(FORUM_CHAT), str(FORUM_TOPIC)

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        chat_id = int(chat)
        entities = None
        if chat_id < 0:  # a group: address the bot so mention-only mode answers
            text = f"@{self.fake.username} {text}"
            entities = self.fake.mention_entities(text)
        message = self.fake.inject_message(
            chat_id, text, sender=sender, thread=int(thread) if thread else None,
            entities=entities,
        )
        return f"{chat_id}:{message['message_id']}"

    async def redeliver(self, platform_id: str) -> None:
        chat, _, message_id = platform_id.rpartition(":")
        self.fake.redeliver(int(chat), int(message_id))

    async def inject_malformed(self) -> None:
        # A message update whose chat is missing and whose text is not a string.
        self.fake.inject_update({"message": {"message_id": 77, "date": 0, "text": {"x": 1}}})

    async def inject_media_only(self, chat: str) -> str:
        photo = [
            {"file_id": f"AgAC-small-{chat}", "file_unique_id": "AQADs", "file_size": 1200,
             "width": 90, "height": 60},
            {"file_id": f"AgAC-large-{chat}", "file_unique_id": "AQADl", "file_size": 48000,
             "width": 1280, "height": 853},
        ]
        message = self.fake.inject_message(int(chat), None, extra={"photo": photo})
        return f"{chat}:{message['message_id']}"

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [
            SentMessage(
                chat=str(s.chat_id),
                text=s.text,
                thread=str(s.thread_id) if s.thread_id is not None else None,
                reply_to=f"{s.chat_id}:{s.reply_to_message_id}" if s.reply_to_message_id else None,
                ts=s.ts,
            )
            for s in self.fake.sent_to(int(chat) if chat is not None else None)
        ]

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return self.fake.rate_limit_log

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()


HARNESS = TelegramHarness
