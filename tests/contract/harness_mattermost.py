"""The contract suite's view of Mattermost: the fake server of tests/fakes/mattermost_api.py.

The bot is a bot account with an access token; users play through the fake's user side,
which stores the post and broadcasts its ``posted`` event as the server does. Test chat
``i`` is the direct channel (``D``) of the bot and a user ``alice<i>`` (there is one
direct channel per pair of users); the group chat is a public channel (``O``) of the bot,
alice and bob, where alice addresses the bot as ``@pyclawbot``. ``thread_target`` is a
thread under a post of bob's in another public channel (not addressed to the bot, so only
the message in the thread, which mentions it, is answered there).

What the bot sent is the posts the server accepted from it (lost answers included); edits
are its accepted patches. A dropped connection is every WebSocket's TCP connection aborted
by the server: what is posted until the bot is back reaches it only by its catch-up
(``GET /channels/{id}/posts?since=``). A redelivery is the same ``posted`` event sent
again, as a server does when a client's reconnect replays its queue. Messages posted
while the channel is stopped are read on its next start (``queues_while_down``); the
cursor is ``ctx.state["cursor"]``. A rate limit is the server's 429 ``limit exceeded``
with ``Retry-After``; a failed send a 500 or a 400 ``Invalid Message property``; a lost
answer a post the server stored whose answer the server cuts off. Mattermost has no
quoted replies (``quotes_replies`` off): a reply goes into the thread. The channel is
configured for 4000-character posts (:data:`MAX_TEXT`).
"""

from __future__ import annotations

from typing import Any

from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.mattermost_api import MattermostFake

__all__ = ["HARNESS", "MattermostHarness"]

BOT = "pyclawbot"
MAX_TEXT = 4000
"""The channel's ``max_text`` here: the 4000 characters of a server whose database was
never migrated, so the suite's 10 000-character reply is split (16383, the default, would
take it whole; the fake enforces that real limit, see tests/connectors/test_mattermost.py)."""


class MattermostHarness(PlatformHarness):
    type_name = "mattermost"
    max_text = MAX_TEXT
    supports_edit = True
    cursor_key = "cursor"
    queues_while_down = True

    def __init__(self) -> None:
        self.fake = MattermostFake()
        self.bot, self.token = self.fake.add_user(BOT, bot=True)
        self.alice, _ = self.fake.add_user("alice")
        self.bob, _ = self.fake.add_user("bob")
        self._chats: dict[int, str] = {}
        self._group: str | None = None
        self._thread: tuple[str, str] | None = None

    async def start(self) -> None:
        await self.fake.start()

    async def stop(self) -> None:
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"url": self.fake.url, "token": self.token, "max_text": MAX_TEXT,
                "ping_interval": 5.0, "ping_timeout": 5.0}

    def chat(self, i: int) -> str:
        if i not in self._chats:
            # a direct channel is one per pair of users: each test chat has its own alice
            user, _ = self.fake.add_user(f"alice{i}")
            self._chats[i] = self.fake.direct_channel(self.bot, user)
        return self._chats[i]

    def _author(self, chat: str) -> str:
        channel = self.fake.channels[chat]
        if channel.type == "D":
            return next(u for u in channel.members if u != self.bot)
        return self.alice

    def thread_target(self) -> tuple[str, str]:
        if self._thread is None:
            chat = self.fake.open_channel("threads", {self.bot, self.alice, self.bob})
            root = self.fake.store_post(self.bob, chat, "a question for the team")
            self._thread = (chat, str(root["id"]))
        return self._thread

    def group_chat(self) -> str:
        if self._group is None:
            self._group = self.fake.open_channel("town-square",
                                                 {self.bot, self.alice, self.bob})
        return self._group

    # ---- what the users send ---------------------------------------------------------------

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        group = self.fake.channels[chat].type != "D"
        post = await self.fake.user_post(self._author(chat),
                                         chat, f"@{BOT} {text}" if group else text,
                                         root_id=thread or "")
        return str(post["id"])

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        post = await self.fake.user_post(self.alice, chat,
                                         f"@{BOT} {text}" if mention else text)
        return str(post["id"])

    async def redeliver(self, platform_id: str) -> None:
        await self.fake.broadcast_post(self.fake.posts[platform_id])

    async def inject_malformed(self) -> None:
        """A ``posted`` event whose ``post`` string is cut short (not JSON)."""
        chat = self.chat(0)
        await self.fake.send_raw(chat, '{"event": "posted", "data": {"channel_type": "D", '
                                 '"post": "{\\"id\\": \\"x"}, "broadcast": {"channel_id": "'
                                 f'{chat}"}}, "seq": 99}}')

    async def inject_media_only(self, chat: str) -> str:
        post = await self.fake.user_post(self._author(chat), chat, "", files=(
            {"name": "cat.png", "mime_type": "image/png", "size": 48213},))
        return str(post["id"])

    # ---- what the bot sent -----------------------------------------------------------------

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=p.channel, text=p.text, thread=p.root_id or None,
                            ts=p.monotonic)
                for p in self.fake.sent if chat is None or p.channel == chat]

    def visible(self, chat: str) -> list[str]:
        return self.fake.visible(chat, self.bot)

    def edits(self, chat: str) -> int:
        mine = {p.id for p in self.fake.sent if p.channel == chat}
        return sum(1 for post_id, _ in self.fake.patches if post_id in mine)

    # ---- faults ----------------------------------------------------------------------------

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next("create_post", status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("create_post")


HARNESS = MattermostHarness
