"""The contract suite's view of Rocket.Chat: the fake REST API + realtime API (DDP).

No Rocket.Chat server can run here (its Meteor bundle comes from releases.rocket.chat
and needs MongoDB, which Debian does not package), so the connector talks to
``tests/fakes/rocketchat_api.py``, written from the OpenAPI reference and the server's
streamer code. Each test chat is a direct message with
its own user; the thread case is a thread under a message of the bot's own in a direct
message (so only the message in the thread is answered); the group is a public channel
with the bot and two people, where a mention is ``@pyclaw.bot`` in the text, which the
server turns into the ``mentions`` array. What the bot sent is what ``chat.sendMessage``
stored, its edits what ``chat.update`` changed; a redelivery is the server broadcasting
the message again as it does after any update of it (a reaction). Rocket.Chat quotes a
message only by a link inside the text, so replies do not quote (``quotes_replies``).
"""

from __future__ import annotations

from typing import Any

from connectors.rocketchat.manifest import MAX_TEXT
from pyclaw_app.channels import utf16_len
from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.rocketchat_api import FakeRocketChat, random_id

__all__ = ["HARNESS", "RocketChatHarness"]


class RocketChatHarness(PlatformHarness):
    type_name = "rocketchat"
    max_text = MAX_TEXT
    supports_edit = True
    cursor_key = "cursor"
    queues_while_down = True

    def __init__(self) -> None:
        self.fake = FakeRocketChat()
        self._dms: dict[int, tuple[str, dict[str, Any]]] = {}
        self._by_rid: dict[str, dict[str, Any]] = {}
        self.alice = self.fake.add_user("alice", "Alice")
        self.bob = self.fake.add_user("bob", "Bob")
        self._group = ""

    def text_length(self, text: str) -> int:
        return utf16_len(text)

    async def start(self) -> None:
        await self.fake.start()
        self._group = self.fake.create_room("c", "general",
                                            [self.fake.bot, self.alice, self.bob])

    async def stop(self) -> None:
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        bot = self.fake.bot
        return {"server_url": self.fake.url, "user_id": bot["_id"],
                "auth_token": bot["token"], "ping_interval": 5}

    def chat(self, i: int) -> str:
        if i not in self._dms:
            user = self.fake.add_user(f"user{i}", f"User {i}")
            rid = self.fake.create_dm(self.fake.bot, user)
            self._dms[i] = (rid, user)
            self._by_rid[rid] = user
        return self._dms[i][0]

    def thread_target(self) -> tuple[str, str]:
        chat = self.chat(30)
        root = self.fake.store(self.fake.bot, chat, "thread root")
        return chat, str(root["_id"])

    def group_chat(self) -> str:
        return self._group

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        return await self.fake.post(self._by_rid[chat], chat, text, tmid=thread)

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        body = f"@{self.fake.bot['username']} {text}" if mention else text
        return await self.fake.post(self.alice, chat, body)

    async def redeliver(self, platform_id: str) -> None:
        await self.fake.touch(platform_id)

    async def inject_malformed(self) -> None:
        """A stream event whose message has no sender (``u``)."""
        chat = self.chat(0)
        await self.fake.emit_raw(chat, [{"_id": random_id(), "rid": chat, "msg": "orphan",
                                         "ts": {"$date": self.fake.now_ms()}},
                                        {"roomParticipant": True, "roomType": "d"}])

    async def inject_media_only(self, chat: str) -> str:
        fid = random_id()
        upload = {"_id": fid, "name": "cat.png", "type": "image/png", "size": 48213}
        return await self.fake.post(self._by_rid[chat], chat, "", file=upload, files=[upload],
                                    attachments=[{"title": "cat.png", "type": "file",
                                                  "title_link": f"/file-upload/{fid}/cat.png",
                                                  "title_link_download": True,
                                                  "image_url": f"/file-upload/{fid}/cat.png",
                                                  "image_type": "image/png",
                                                  "image_size": 48213}])

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=r.rid, text=r.text, thread=r.tmid, ts=r.ts)
                for r in self.fake.sent if chat is None or r.rid == chat]

    def visible(self, chat: str) -> list[str]:
        return [str(self.fake.messages[r.message_id]["msg"]) for r in self.fake.sent
                if r.rid == chat]

    def edits(self, chat: str) -> int:
        return sum(1 for e in self.fake.edit_log if e.rid == chat)

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return list(self.fake.rate_limit_log)

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next(self.fake.send_method, status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer(self.fake.send_method)

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()


HARNESS = RocketChatHarness
