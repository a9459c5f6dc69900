"""The contract suite's view of Zulip: the fake server (tests/fakes/zulip_api.py), spoken to
through its REST API by the people in the organization.

The bot "Pyclaw Bot" is a bot user with its own key. Test chat ``i`` is a direct message
from a person of its own (``dm:<their id>``), so chats never share a conversation; the
group chat is the stream ``contract-group`` and the thread case the topic ``contract
topic`` of the stream ``contract``, where the sender @-mentions the bot
(``@**Pyclaw Bot**``) because groups are answered on a mention by default. A media message
is how Zulip attaches a file: a Markdown link to ``/user_uploads/...``; a malformed one a
``message`` event without a sender whose content is not text.

The fake tells the connector a ``max_message_length`` of 4,000 at ``/register`` (a server
setting; Zulip's default is 10,000) so the split tests split. ``sent()`` reports each
message's content as the connector sent it: the server strips trailing whitespace from
what it stores, and a part that ends a paragraph ends with its blank line; ``visible()``
reports what the server stored and shows, after edits.

Platform events made real: a dropped connection cuts the long poll in flight (the queue
keeps the events, so nothing is lost); a redelivery is the server queueing the message's
event again; messages sent while the channel is stopped are fetched from the bot's
history when it starts (``queues_while_down``), from the cursor ``last_message_id``. A
rate limit is Zulip's 429 ``RATE_LIMIT_HIT`` with ``Retry-After``; a failure a 500 or a
400; a lost answer a message the server stored whose answer is cut. UTF-8 on the wire
cannot carry a lone surrogate, so a user sends U+FFFD in its place, as a browser does.
"""

from __future__ import annotations

import re
from typing import Any

from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.zulip_api import FakeZulip, Message, User, ZulipUser

__all__ = ["HARNESS", "ZulipHarness"]

MAX_TEXT = 4000
TOPIC = "contract topic"
_LONE = re.compile("[\ud800-\udfff]")
_UPLOAD = "[cat.png](/user_uploads/2/4e/GpWQdAJk3sLxlJgBwPyOhEdd/cat.png)"


class ZulipHarness(PlatformHarness):
    type_name = "zulip"
    max_text = MAX_TEXT
    supports_edit = True
    cursor_key = "last_message_id"
    queues_while_down = True

    def __init__(self) -> None:
        self.fake = FakeZulip()
        self.fake.max_message_length = MAX_TEXT
        self.fake.heartbeat_interval = 0.5
        self.bot = self.fake.add_user("Pyclaw Bot", is_bot=True)
        self.alice = self.fake.add_user("Alice")
        self.bob = self.fake.add_user("Bob")
        people = (self.bot, self.alice, self.bob)
        self.topics = self.fake.add_stream("contract", people)
        self.group = self.fake.add_stream("contract-group", people)
        self._people: dict[int, User] = {}
        self._clients: dict[int, ZulipUser] = {}

    async def start(self) -> None:
        await self.fake.start()

    async def stop(self) -> None:
        for client in self._clients.values():
            await client.close()
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"site": self.fake.url, "email": self.bot.email, "api_key": self.bot.api_key}

    def _client(self, user: User) -> ZulipUser:
        if user.user_id not in self._clients:
            self._clients[user.user_id] = self.fake.client(user)
        return self._clients[user.user_id]

    def chat(self, i: int) -> str:
        if i not in self._people:
            self._people[i] = self.fake.add_user(f"Person {i}")
        return f"dm:{self._people[i].user_id}"

    def thread_target(self) -> tuple[str, str]:
        return f"stream:{self.topics.stream_id}", TOPIC

    def group_chat(self) -> str:
        return f"stream:{self.group.stream_id}"

    # ---- what people send ------------------------------------------------------------------

    async def _post(self, chat: str, content: str, *, topic: str = TOPIC,
                    sender: User | None = None) -> str:
        content = _LONE.sub("\ufffd", content)
        kind, _, ident = chat.partition(":")
        if kind == "dm":
            person = self.fake.users[int(ident)]
            return str(await self._client(sender or person).direct([self.bot.user_id],
                                                                   content))
        return str(await self._client(sender or self.alice).stream(int(ident), topic,
                                                                   content))

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        if chat.startswith("stream:"):
            text = f"@**{self.bot.full_name}** {text}"
        return await self._post(chat, text, topic=thread or TOPIC)

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        content = f"@**{self.bot.full_name}** {text}" if mention else text
        return await self._post(chat, content, sender=self.bob)

    async def redeliver(self, platform_id: str) -> None:
        self.fake.redeliver(int(platform_id))

    async def inject_malformed(self) -> None:
        self.fake.push_event(self.bot, {"type": "message", "flags": [], "message": {
            "id": self.fake.next_message_id(), "type": "private",
            "content": {"text": "not a string"}, "display_recipient": "nobody",
            "timestamp": 0}})

    async def inject_media_only(self, chat: str) -> str:
        return await self._post(chat, _UPLOAD)

    # ---- what the bot sent -----------------------------------------------------------------

    def _chat_of(self, message: Message) -> str:
        if message.type == "stream":
            return f"stream:{message.stream_id}"
        others = sorted(u for u in message.receivers if u != self.bot.user_id)
        return "dm:" + ",".join(map(str, others))

    def _mine(self, chat: str | None) -> list[Message]:
        return [m for m in self.fake.messages if m.sender_id == self.bot.user_id
                and (chat is None or self._chat_of(m) == chat)]

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=self._chat_of(m), text=m.raw_content,
                            thread=m.topic if m.type == "stream" else None, ts=m.sent_at)
                for m in self._mine(chat)]

    def visible(self, chat: str) -> list[str]:
        return [m.content for m in self._mine(chat)]

    def edits(self, chat: str) -> int:
        return sum(m.edits for m in self._mine(chat))

    # ---- faults ----------------------------------------------------------------------------

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return self.fake.rate_limit_log

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next("send_message", status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("send_message")


HARNESS = ZulipHarness
