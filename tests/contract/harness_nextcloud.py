"""The contract suite's view of Nextcloud Talk: the fake bot API, and webhooks signed as Talk
signs them.

Talk only pushes, one signed activity per request. The ordinary tests hand it to
``gateway.webhook`` (the real routing and the connector's signature check; those tests
run no HTTP server); ``post_webhook`` POSTs it to the real webhook server the webhook
test starts.

Talk's webhooks do not say who is in a conversation, so the test conversations
``chat(i)`` are listed in ``direct_conversations`` (answered like direct messages) and
the group case is a conversation that is not. ``quotes_replies``: the first part is a
reply (``replyTo``) to the message it answers. Talk never redelivers a webhook; the
nearest thing, the same activity posted again with a fresh random, is what ``redeliver``
sends, and the journal recognises the message id. ``replay_rejected``: a request
repeated byte for byte carries a random already seen, and is refused.

The fake server announces a ``max-length`` of 4,000 (Talk before 16.0.1 had 1,000; today
32,000): the connector reads the capability at start, so the split tests split.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.nextcloud_api import BOT_NAME, NextcloudFake

__all__ = ["HARNESS", "NextcloudHarness"]

GROUP = "teamroom01"
DIRECT = 128
SERVER_MAX_LENGTH = 4000


class NextcloudHarness(PushedHarness):
    type_name = "nextcloud"
    max_text = SERVER_MAX_LENGTH
    quotes_replies = True
    replay_rejected = True

    def __init__(self) -> None:
        super().__init__(NextcloudFake())
        self.fake: NextcloudFake
        self.fake.max_length = SERVER_MAX_LENGTH
        self._activities: dict[str, dict[str, Any]] = {}

    def channel_config(self) -> dict[str, Any]:
        return {"server_url": self.fake.url, "secret": self.fake.secret, "bot_name": BOT_NAME,
                "direct_conversations": [self.chat(i) for i in range(DIRECT)]}

    def chat(self, i: int) -> str:
        return f"direct{i:04d}"

    async def _post(self, activity: dict[str, Any], *, expect: int | None = None) -> str:
        await self.deliver(self.fake.signed(activity), expect=expect)
        pid = str(activity["object"]["id"])
        self._activities[pid] = activity
        return pid

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        return await self._post(self.fake.message(
            chat, text, sender=f"users/user{sender}", sender_name=f"User {sender}"))

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self._activities[platform_id])

    async def inject_malformed(self) -> None:
        # A message whose content is not the JSON Talk puts there: refused with 400 and
        # logged (Talk counts the error against the bot, which its admin can see).
        broken = self.fake.message(self.chat(99), "x")
        broken["object"]["content"] = "{not json"
        await self._post(broken, expect=400)

    async def inject_media_only(self, chat: str) -> str:
        return await self._post(self.fake.file_message(chat))

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=m.token, text=m.text, reply_to=m.reply_to, ts=m.monotonic)
                for m in self.fake.sent if chat is None or m.token == chat]

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        activity = self.fake.message(chat, text)
        secret = None if good else "not-the-bot-secret-" + "x" * 30
        return self.fake.signed(activity, secret=secret), str(activity["object"]["id"])

    def group_chat(self) -> str:
        return GROUP

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        make = self.fake.mention_bot if mention else self.fake.message
        return await self._post(make(chat, text))


HARNESS = NextcloudHarness
