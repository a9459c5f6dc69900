"""The contract suite's view of Slack: the fake in Socket Mode, spoken to as Slack would.

Test chats are DMs (``D0001``, ``D0002``...); a message with a ``thread`` is a
threaded message in that conversation (an ``app_mention`` when the chat is a
channel such as ``C0001``). ``sent()`` reports text as the user reads it,
i.e. with Slack's ``&amp; &lt; &gt;`` escaping undone.

``quotes_replies`` is False: Slack has no quote-reply, and the test chats are
DMs, which the connector answers flat (a channel message is answered in its
thread, which ``thread_target`` checks). Webhook mode is the Events API: each
request is signed (``v0`` HMAC over the timestamp and body), and a replay is an
old signed timestamp, which the five-minute window refuses.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.slack._parse import unescape_text
from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.slack_api import SlackFake

__all__ = ["HARNESS", "SlackHarness"]


class SlackHarness(PlatformHarness):
    type_name = "slack"
    max_text = 4000
    supports_edit = True
    webhook = True
    replay_rejected = True
    queues_while_down = True  # Slack redelivers what no connection acked

    def __init__(self) -> None:
        self.fake = SlackFake()
        self._last_signed: dict[str, Any] | None = None

    async def start(self) -> None:
        await self.fake.start()  # slack-sdk needs no module-level overrides

    async def stop(self) -> None:
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {
            "bot_token": self.fake.bot_token,
            "app_token": self.fake.app_token,
            "signing_secret": self.fake.signing_secret,
            "mode": "socket",
            "base_url": self.fake.api_url,
        }

    def chat(self, i: int) -> str:
        return f"D{i + 1:04d}"

    def thread_target(self) -> tuple[str, str]:
        """A thread in channel C0001: the injected message is an @mention posted in it."""
        return "C0001", "1700000000.000100"

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        user = f"U{sender:04d}"
        if chat.startswith(("C", "G")):
            payload = self.fake.app_mention_event(chat, text, user=user, thread_ts=thread)
        else:
            payload = self.fake.message_event(chat, text, user=user, thread_ts=thread)
        await self.fake.deliver(payload)
        return f"{chat}:{payload['event']['ts']}"

    async def redeliver(self, platform_id: str) -> None:
        await self.fake.redeliver(platform_id)

    async def inject_malformed(self) -> None:
        # A real envelope whose message event lacks channel/ts/user and has a non-string text.
        payload = self.fake.event_callback({"type": "message", "channel_type": "im",
                                            "text": {"unexpected": True}})
        await self.fake.deliver(payload)

    async def inject_media_only(self, chat: str) -> str:
        png = b"\x89PNG\r\n\x1a\n" + bytes(1200)  # held by the fake, as Slack holds files
        payload = self.fake.message_event(
            chat, "", files=[self.fake.add_file(png, "photo.png", "image/png")])
        await self.fake.deliver(payload)
        return f"{chat}:{payload['event']['ts']}"

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=p.channel, text=unescape_text(p.text), thread=p.thread_ts,
                            reply_to=None, ts=p.monotonic)
                for p in self.fake.posts if chat is None or p.channel == chat]

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next("chat.postMessage", status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("chat.postMessage")

    def visible(self, chat: str) -> list[str]:
        return [unescape_text(self.fake.text_of(p.channel, p.ts))
                for p in self.fake.posts if p.channel == chat]

    def edits(self, chat: str) -> int:
        return len([u for u in self.fake.updates if u.channel == chat])

    def group_chat(self) -> str:
        return "C0100"

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        if mention:
            payload = self.fake.app_mention_event(chat, text)
        else:
            payload = self.fake.message_event(chat, text)
        await self.fake.deliver(payload)
        return f"{chat}:{payload['event']['ts']}"

    def webhook_config(self) -> dict[str, Any]:
        return {
            "bot_token": self.fake.bot_token,
            "signing_secret": self.fake.signing_secret,
            "mode": "events",
            "base_url": self.fake.api_url,
        }

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        if signature == "replayed":
            assert self._last_signed is not None, "replay needs a good post first"
            payload = self._last_signed  # the same body, its signature 10 minutes old
            status, _ = await self.fake.post_event(url, payload,
                                                   timestamp=int(time.time()) - 600)
        else:
            payload = self.fake.message_event(chat, text)
            secret = None if signature == "good" else "not-the-signing-secret"
            status, _ = await self.fake.post_event(url, payload, secret=secret)
            if signature == "good":
                self._last_signed = payload
        return status, f"{payload['event']['channel']}:{payload['event']['ts']}"


HARNESS = SlackHarness
