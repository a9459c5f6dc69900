"""The contract suite's view of Webex: the fake REST API, and notifications signed as Webex signs.

Webex only pushes: each message arrives as a signed ``messages``/``created``
notification that names it, and the connector fetches the message from the fake. The
ordinary tests hand the notification to ``gateway.webhook`` (the real routing and the
connector's signature check; those tests run no HTTP server); ``post_webhook`` POSTs it
to the real webhook server the webhook test starts. The channel registers its webhook
with the fake on start (``webhook_url`` is set), so the notifications carry that
webhook's id and are signed with the secret it registered.

The account is a *person's* token, not a bot's: Webex tells a bot only of the
group-space messages that @mention it, so "group_reply: all" could not be shown with a
bot. What is a bot's own (those notifications, the warning) is in
tests/connectors/test_webex.py.

Test chats are 1:1 spaces with users 1, 2...; the group case is the space "team".
``thread_target``: a thread in that space, under a message of user 2; the injected
message is an @mention posted in it and is answered in it (``parentId``). Replies are
not quoted (Webex has none), so ``quotes_replies`` is False. A 429 carries Retry-After.
``replay_rejected`` is False: the signature covers no timestamp, a replayed request is a
duplicate for the journal. There is no connection to drop.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.webex_api import MAX_TEXT, WebexFake

__all__ = ["HARNESS", "WebexHarness"]

WEBHOOK_URL = "https://bot.example.com/webhook/webex"


class WebexHarness(PushedHarness):
    type_name = "webex"
    max_text = MAX_TEXT
    supports_edit = True
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(WebexFake(account_type="person"))
        self.fake: WebexFake
        self._thread: tuple[str, str] | None = None

    def text_length(self, text: str) -> int:
        return len(text.encode("utf-8"))  # Webex's limit is 7,439 bytes

    def channel_config(self) -> dict[str, Any]:
        return {"access_token": self.fake.access_token,
                "webhook_secret": self.fake.webhook_secret, "webhook_url": WEBHOOK_URL,
                "api_base": self.fake.api_base}

    def chat(self, i: int) -> str:
        return self.fake.direct_room(i)

    def thread_target(self) -> tuple[str, str]:
        if self._thread is None:
            room = self.fake.group_room()
            self._thread = (room, self.fake.post(room, "a question for the team",
                                                 sender=2)["id"])
        return self._thread

    async def _notify(self, message: dict[str, Any]) -> None:
        signed = self.fake.notifications(message)
        assert signed, "no active webhook of the channel would fire (was it registered?)"
        for request in signed:
            await self.deliver(request)

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        group = self.fake.rooms[chat].type == "group"
        message = self.fake.post(chat, text, sender=sender, mention=group, parent=thread)
        await self._notify(message)
        return str(message["id"])

    async def redeliver(self, platform_id: str) -> None:
        for request in self.fake.redelivery(platform_id):
            await self.deliver(request)

    async def inject_malformed(self) -> None:
        # A correctly signed notification whose data has no message id and a numeric roomId:
        # logged and answered 200, nothing fetched.
        message = self.fake.post(self.chat(99), "x")
        hook = next(h for h in self.fake.webhooks.values() if h["status"] == "active")
        envelope = self.fake.envelope(message, hook)
        del envelope["data"]["id"]
        envelope["data"]["roomId"] = 42
        await self.deliver(self.fake.signed(envelope, hook["secret"]))

    async def inject_media_only(self, chat: str) -> str:
        message = self.fake.post(chat, files=(self.fake.content_url("report.pdf"),))
        await self._notify(message)
        return str(message["id"])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.room, text=m.text, thread=m.parent, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.room == chat]

    def visible(self, chat: str) -> list[str]:
        return self.fake.visible(chat)

    def edits(self, chat: str) -> int:
        return self.fake.edits(chat)

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        message = self.fake.post(chat, text)
        signed = self.fake.notifications(message,
                                         secret=None if good else "not-the-webhook-secret")
        return signed[0], str(message["id"])

    def group_chat(self) -> str:
        return self.fake.group_room()

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        message = self.fake.post(chat, text, sender=2, mention=mention)
        await self._notify(message)
        return str(message["id"])


HARNESS = WebexHarness
