"""The contract suite's view of Teams: the fake Bot Framework, and activities signed as it signs.

Teams pushes every activity to the messaging endpoint with the Bot Framework's JWT, so
every message arrives through ``gateway.webhook`` (the real routing and the connector's
token check); ``post_webhook`` POSTs it to the real webhook server the webhook test
starts. A "bad" signature is a token signed with a key the Bot Framework does not list,
under the real key's id; ``replay_rejected`` is False: a replayed request carries a token
still within its hour, so the journal recognises the message, not the token check.

Test chats are personal chats ``a:1pyclaw-chat-NNNN``; the group is a group chat
(``19:...@thread.v2``), the thread target a channel thread (``19:...@thread.tacv2`` with
``;messageid=<root>``), where the injected message @mentions the bot. Platform ids are
``<chat>|<message id>`` (Teams message ids are unique only per conversation), which is
how ``sent()`` reports what a reply answered. ``quotes_replies``: the first part is a
ReplyToActivity to the message it answers.
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import SentMessage
from tests.contract.pushed_harness import PushedHarness, Signed
from tests.fakes.teams_api import TeamsFake

__all__ = ["HARNESS", "TeamsHarness"]

CHANNEL = "19:pyclaw0channel0001@thread.tacv2"
GROUP = "19:pyclaw0group0001@thread.v2"
THREAD_ROOT = "1700000000001"


class TeamsHarness(PushedHarness):
    type_name = "teams"
    max_text = 4000
    supports_edit = True
    quotes_replies = True
    replay_rejected = False

    def __init__(self) -> None:
        super().__init__(TeamsFake())
        self.fake: TeamsFake

    def text_length(self, text: str) -> int:
        return len(text.encode("utf-16-le")) // 2

    def channel_config(self) -> dict[str, Any]:
        return {"app_id": self.fake.app_id, "app_password": self.fake.app_password,
                "token_url": self.fake.token_url,
                "openid_metadata_url": self.fake.metadata_url,
                "service_url_hosts": ["127.0.0.1"]}

    def chat(self, i: int) -> str:
        return f"a:1pyclaw-chat-{i:04d}"

    def thread_target(self) -> tuple[str, str]:
        return CHANNEL, THREAD_ROOT

    def group_chat(self) -> str:
        return GROUP

    def _activity(self, chat: str, text: str, *, thread: str | None = None,
                  mention: bool = False, sender: int = 1) -> dict[str, Any]:
        if chat == CHANNEL:  # a top-level post starts its own thread
            mid = self.fake.next_id()
            return self.fake.message(f"{chat};messageid={thread or mid}", text, kind="channel",
                                     mention=True, sender=sender, activity_id=mid)
        kind = "groupChat" if chat.startswith("19:") else "personal"
        return self.fake.message(chat, text, kind=kind, mention=mention, sender=sender)

    async def _post(self, activity: dict[str, Any]) -> str:
        await self.deliver(self.fake.signed(activity))
        return _pid(activity)

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        return await self._post(self._activity(chat, text, thread=thread, sender=sender))

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        return await self._post(self._activity(chat, text, mention=mention))

    async def redeliver(self, platform_id: str) -> None:
        await self._post(self.fake.redelivery(platform_id))

    async def inject_malformed(self) -> None:
        # A genuine, signed message activity without an id or sender and with a non-string
        # text: logged and skipped, the request still answered 200.
        broken = self.fake.message(self.chat(99), "x")
        del broken["id"], broken["from"]
        broken["text"] = {"unexpected": True}
        await self.deliver(self.fake.signed(broken))

    async def inject_media_only(self, chat: str) -> str:
        return await self._post(self.fake.image(chat))

    def signed_message(self, chat: str, text: str, *, good: bool) -> tuple[Signed, str]:
        activity = self._activity(chat, text)
        return self.fake.signed(activity, forged=not good), _pid(activity)

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=p.chat, text=p.text, thread=p.thread,
                            reply_to=f"{p.chat}|{p.reply_to}" if p.reply_to else None,
                            ts=p.monotonic)
                for p in self.fake.posted if chat is None or p.chat == chat]

    def visible(self, chat: str) -> list[str]:
        return [p.current for p in self.fake.posted if p.chat == chat]

    def edits(self, chat: str) -> int:
        return sum(1 for c, _, _ in self.fake.updates if c == chat)


def _pid(activity: dict[str, Any]) -> str:
    chat = activity["conversation"]["id"].partition(";messageid=")[0]
    return f"{chat}|{activity['id']}"


HARNESS = TeamsHarness
