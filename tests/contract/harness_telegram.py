"""The contract suite's view of Telegram: the fake Bot API, spoken to as Telegram would.

Test chats are private chats ``1001``, ``1002``...; the thread case is topic
``42`` of the forum supergroup ``-1001234567890``, where the harness mentions
the bot (``@pyclaw_test_bot ...`` with a ``mention`` entity) because groups are
answered on a mention or reply by default; the group case is the supergroup
``-1009876543210``. ``sent()`` reports the text as the user reads it (HTML
parsed), which is what the fake records. Webhook mode posts Update JSON with
the secret in ``X-Telegram-Bot-Api-Secret-Token``; a replayed update is only a
duplicate to the journal (Telegram signs nothing), so it is answered 200.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.telegram_api import MAX_TEXT, FakeTelegram, utf16_len

__all__ = ["HARNESS", "TelegramHarness"]

FORUM_CHAT = -1001234567890
FORUM_TOPIC = 42
GROUP_CHAT = -1009876543210
WEBHOOK_SECRET = "contract_secret-1"


class TelegramHarness(PlatformHarness):
    type_name = "telegram"
    max_text = MAX_TEXT
    supports_edit = True
    quotes_replies = True
    webhook = True
    replay_rejected = False
    cursor_key = "offset"
    queues_while_down = True

    def __init__(self) -> None:
        self.fake = FakeTelegram()
        self.fake.add_chat(GROUP_CHAT, "supergroup", title="Contract group")
        self._last_posted: dict[str, Any] | None = None

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
            "poll_timeout": 2,
        }

    def webhook_config(self) -> dict[str, Any]:
        return {**self.channel_config(), "mode": "webhook",
                "webhook_url": "https://bot.example/webhook/telegram",
                "webhook_secret": WEBHOOK_SECRET}

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
        jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(1200)  # held by the fake's files
        photo = [
            {**self.fake.add_file(jpeg[:300], folder="photos"), "width": 90, "height": 60},
            {**self.fake.add_file(jpeg, folder="photos"), "width": 1280, "height": 853},
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

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next("sendMessage", status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("sendMessage")

    def visible(self, chat: str) -> list[str]:
        return [self.fake.text_of(s.chat_id, s.message_id) for s in self.fake.sent_to(int(chat))]

    def edits(self, chat: str) -> int:
        return sum(1 for s in self.fake.sent
                   if s.method == "editMessageText" and s.chat_id == int(chat))

    def group_chat(self) -> str:
        return str(GROUP_CHAT)

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        entities = None
        if mention:
            text = f"@{self.fake.username} {text}"
            entities = self.fake.mention_entities(text)
        message = self.fake.inject_message(int(chat), text, sender=7, entities=entities)
        return f"{chat}:{message['message_id']}"

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        if signature == "replayed":
            if self._last_posted is None:
                raise AssertionError("nothing was posted to replay")
            update = self._last_posted
        else:
            update = self.fake.message_update(int(chat), text)
        secret = WEBHOOK_SECRET if signature != "bad" else "not_the_secret"
        status = await self.fake.post_webhook(url, update, secret_token=secret)
        if signature == "good":
            self._last_posted = update
        message = update["message"]
        return status, f"{message['chat']['id']}:{message['message_id']}"


HARNESS = TelegramHarness
