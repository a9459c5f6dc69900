"""Contract harness for Discord: the fake REST API + Gateway, with discord.py pointed at it.

Test chats are DM channels, one per index, each with its own user. The thread
case is a public thread in a guild text channel, present in the guild from the
first GUILD_CREATE: the connector addresses it as (chat=parent channel,
thread=thread id), and messages there @mention the bot, as the default
``group_reply`` requires. The group chat is a second guild text channel.
Replies quote the message they answer (a message reference), and the fake keeps
every message's edits, so ``visible`` is what a reader of the channel sees.
"""

from __future__ import annotations

from typing import Any

import discord
import yarl

from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord

__all__ = ["HARNESS", "DiscordHarness"]


class DiscordHarness(PlatformHarness):
    type_name = "discord"
    max_text = 2000
    supports_edit = True
    quotes_replies = True

    def __init__(self) -> None:
        self.fake = FakeDiscord()
        self._saved: tuple[str, yarl.URL] | None = None
        self._dms: dict[int, str] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._channel = ""
        self._thread = ""
        self._group = ""

    async def start(self) -> None:
        await self.fake.start()
        self._channel = await self.fake.create_text_channel("general")
        self._thread = await self.fake.create_thread(self._channel, "pyclaw thread")
        self._group = await self.fake.create_text_channel("random")
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.fake.gateway_url)

    async def stop(self) -> None:
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"token": self.fake.token}

    def chat(self, i: int) -> str:
        if i not in self._dms:
            self._dms[i], _ = self.fake.create_dm(f"user{i}")
        return self._dms[i]

    def _sender(self, sender: int) -> dict[str, Any]:
        if sender not in self._users:
            self._users[sender] = p.user(p.snowflake(), f"sender{sender}")
        return self._users[sender]

    def thread_target(self) -> tuple[str, str]:
        return self._channel, self._thread

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        if thread is None:
            msg = self.fake.user_message(chat, text)  # from the DM's recipient
        else:
            msg = self.fake.user_message(thread, text, author=self._sender(sender),
                                         mention_bot=True)
        return await self.fake.inject(msg)

    async def redeliver(self, platform_id: str) -> None:
        await self.fake.redeliver(platform_id)

    async def inject_malformed(self) -> None:
        """A MESSAGE_CREATE with ``content: null``: discord.py stores it without complaint,
        the connector's parser rejects it and logs the skip."""
        chat = self.chat(0)
        msg = self.fake.user_message(chat, "malformed")
        await self.fake.dispatch("MESSAGE_CREATE", {**msg, "id": p.snowflake(), "content": None})

    async def inject_media_only(self, chat: str) -> str:
        jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(48_000)  # on the fake CDN
        attachment = {**self.fake.attachment(chat, jpeg, "photo.jpg", "image/jpeg"),
                      "width": 640, "height": 480}
        msg = self.fake.user_message(chat, "", attachments=[attachment])
        return await self.fake.inject(msg)

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        """``<@botid> text`` with the bot in ``mentions`` when ``mention``, as Discord sends it."""
        msg = self.fake.user_message(chat, text, author=self._sender(1), mention_bot=mention)
        return await self.fake.inject(msg)

    def group_chat(self) -> str:
        return self._group

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=r.chat, text=r.text, thread=r.thread, reply_to=r.reply_to,
                            ts=r.ts)
                for r in self.fake.sent if chat is None or r.chat == chat]

    def visible(self, chat: str) -> list[str]:
        return [str(self.fake.messages[r.message_id]["content"]) for r in self.fake.sent
                if r.chat == chat]

    def edits(self, chat: str) -> int:
        ids = {r.message_id for r in self.fake.sent if r.chat == chat}
        return sum(1 for e in self.fake.edit_log if e.message_id in ids)

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next(self.fake.send_method, status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer(self.fake.send_method)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()


HARNESS = DiscordHarness
