"""The contract suite's view of Google Chat: the fake Chat API and token endpoint, and
interaction events carrying the bearer token Google Chat signs.

Google Chat only pushes, so every message arrives as a signed ``MESSAGE`` event. The ordinary
tests hand it to ``gateway.webhook`` (the real routing and the connector's token check) in
reply_mode async: each is answered ``{}`` once stored, and the reply's parts are created
through the fake's ``spaces.messages.create``, where the shared controls apply (method
``create``); streamed replies are edits (``patch``).

Test chats are direct-message spaces; the group case is a threaded space, where a message is
answered in its thread (``thread_target``: an @mention posted in an existing thread).
``quotes_replies`` is False: a Chat app cannot quote a message, and a DM has no threads.
Google's 429 has no Retry-After, so ``retry_after`` cannot be put on the wire: the connector
waits the one-second per-space write window on its own.

``webhook_config`` is reply_mode sync, which the webhook test drives through the real HTTP
server: a good request is answered 200 with the reply as its ``Message`` body, recorded here
as a delivered message (the fake's REST API must see nothing, or it went twice).
``replay_rejected`` is False: the token is not bound to the body and stays valid for an
hour, so a replayed request is recognised by the journal (same message name) instead.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from pyclaw_app.channels import utf16_len
from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.googlechat_api import MAX_TEXT, GoogleChatFake
from tests.fakes.googlechat_keys import signing_key

__all__ = ["HARNESS", "GoogleChatHarness"]

GROUP = "spaces/AAAAteamroom"


class GoogleChatHarness(PushedHarness):
    type_name = "googlechat"
    max_text = MAX_TEXT
    supports_edit = True
    quotes_replies = False
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(GoogleChatFake())
        self.fake: GoogleChatFake
        self._sync_replies: list[SentMessage] = []
        self._thread: str | None = None

    def text_length(self, text: str) -> int:
        return utf16_len(text)

    def channel_config(self) -> dict[str, Any]:
        return {"project_number": self.fake.project_number,
                "service_account_key": self.fake.service_account_json(),
                "api_base": self.fake.url, "certs_url": self.fake.certs_url}

    def webhook_config(self) -> dict[str, Any]:
        return {**self.channel_config(), "reply_mode": "sync"}

    def chat(self, i: int) -> str:
        return self.fake.space(f"spaces/AAAAdm{i:04d}")

    def thread_target(self) -> tuple[str, str]:
        """A thread in the group space, started by a user's earlier message."""
        if self._thread is None:
            self.fake.space(GROUP, "SPACE")
            self._thread = self.fake.message_event(GROUP, "a thread")["message"]["thread"][
                "name"]
        return GROUP, self._thread

    async def _post(self, event: dict[str, Any] | bytes) -> None:
        await self.deliver(self.fake.signed(event))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        event = self.fake.message_event(chat, text, sender=sender, thread=thread,
                                        mention=chat == GROUP)
        await self._post(event)
        return str(event["message"]["name"])

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self.fake.redelivery(platform_id))

    async def inject_malformed(self) -> None:
        # Authentic, but a MESSAGE whose message has no name and a text that is not a string:
        # logged and skipped, the request still answered 200 (Google would show an error).
        event = self.fake.message_event(self.chat(99), "x")
        del event["message"]["name"]
        event["message"]["text"] = {"unexpected": True}
        await self._post(event)

    async def inject_media_only(self, chat: str) -> str:
        event = self.fake.message_event(chat, attachments=[
            {"contentName": "door.jpg", "contentType": "image/jpeg"}])
        await self._post(event)
        return str(event["message"]["name"])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        made = [SentMessage(chat=r.space, text=r.text, thread=r.thread, ts=r.monotonic)
                for r in self.fake.sent(chat)]
        return sorted(made + [m for m in self._sync_replies if chat is None or m.chat == chat],
                      key=lambda m: m.ts)

    def visible(self, chat: str) -> list[str]:
        return [r.text for r in self.fake.sent(chat)]

    def edits(self, chat: str) -> int:
        return sum(r.edits for r in self.fake.sent(chat))

    def group_chat(self) -> str:
        return self.fake.space(GROUP, "SPACE")

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        event = self.fake.message_event(chat, text, mention=mention)
        await self._post(event)
        return str(event["message"]["name"])

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        event = self.fake.message_event(chat, text)
        token = None if good else self.fake.bearer(key=signing_key("impostor"))
        return self.fake.signed(event, token=token), str(event["message"]["name"])

    async def post_webhook(self, url: str, chat: str, text: str, *,
                           signature: str = "good") -> tuple[int, str]:
        if signature == "replayed":
            assert self._last_good is not None, "replay needs a good post first"
            (body, headers), pid = self._last_good
        else:
            (body, headers), pid = self.signed_message(chat, text, good=signature == "good")
            if signature == "good":
                self._last_good = ((body, headers), pid)
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body, headers=headers) as resp:
            status, answer = resp.status, await resp.text()
        reply = json.loads(answer).get("text") if status == 200 and answer else None
        if isinstance(reply, str):
            self._sync_replies.append(SentMessage(chat=chat, text=reply, ts=time.monotonic()))
        return status, pid


HARNESS = GoogleChatHarness
