"""The contract suite's view of Matrix: a real Synapse, a real matrix-nio client as the user.

Each harness registers its own accounts on the process-wide Synapse (``tests/servers/
synapse.py``): the bot ``bot<tag>`` (logging in with its password), the user
``alice<tag>`` who talks to it (a matrix-nio client), and ``bob<tag>`` who makes the
group room a group (three members). A test chat is a direct room alice creates and
invites the bot to; the harness
joins the bot itself so the room is ready before the first message (the invite policy
has its own platform tests). What the bot sent, and its edits (``m.replace``), are the
message events Synapse accepted from it, recorded by the proxy as Synapse's answer passed
(so a part counts as sent at the moment the server has it, lost answers included).

The connector reaches Synapse through :class:`MatrixProxy`: ``drop_connection`` cuts the
long poll; a rate limit is Synapse's 429 ``M_LIMIT_EXCEEDED`` body with
``retry_after_ms``, a failed send a 500 ``M_UNKNOWN`` or 400 ``M_BAD_JSON``, answered by
the proxy in Synapse's wire format (Synapse's own limiter cannot be told to refuse one
given request); a lost answer is a send Synapse carried out whose answer the proxy cuts.
A redelivery is the proxy serving the bot's next ``/sync`` from the token it held before
the message arrived, so Synapse itself hands the same event over again.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from typing import Any

from nio import AsyncClient, RoomSendResponse

from connectors.matrix.manifest import MAX_TEXT
from pyclaw_app.channels import utf8_len
from tests.contract.harness import PlatformHarness, SentMessage
from tests.servers.synapse import MatrixProxy, Synapse, shared_synapse

__all__ = ["HARNESS", "MatrixHarness"]

_IDS = itertools.count(1)
_LONE = re.compile("[\ud800-\udfff]")


class MatrixHarness(PlatformHarness):
    type_name = "matrix"
    max_text = MAX_TEXT
    supports_edit = True
    quotes_replies = True
    cursor_key = "since"
    queues_while_down = True

    def __init__(self) -> None:
        self.tag = f"{next(_IDS)}{uuid.uuid4().hex[:6]}"
        self.server: Synapse | None = None
        self.proxy: MatrixProxy | None = None
        self.user: AsyncClient | None = None
        self._chats: dict[int, str] = {}
        self._group: str | None = None
        self._since_at: dict[str, str | None] = {}

    # ---- accounts and rooms ----------------------------------------------------------------

    @property
    def synapse(self) -> Synapse:
        assert self.server is not None, "harness not started"
        return self.server

    @property
    def bot(self) -> str:
        return self.synapse.user_id(f"bot{self.tag}")

    @property
    def alice(self) -> str:
        return f"alice{self.tag}"

    def text_length(self, text: str) -> int:
        return utf8_len(text)

    async def start(self) -> None:
        self.server = await shared_synapse()
        server = self.server
        await asyncio.to_thread(server.register, f"bot{self.tag}", displayname="Pyclaw Bot")
        await asyncio.to_thread(server.register, self.alice, displayname="Alice")
        await asyncio.to_thread(server.register, f"bob{self.tag}", displayname="Bob")
        self.proxy = MatrixProxy(server.url)
        await self.proxy.start()
        self.user = AsyncClient(server.url, server.user_id(self.alice))
        self.user.access_token = server.token(self.alice)
        self.user.user_id = server.user_id(self.alice)

    async def stop(self) -> None:
        if self.user is not None:
            await self.user.close()
        if self.proxy is not None:
            await self.proxy.stop()

    def _room(self, *, group: bool = False) -> str:
        """A room alice made, with the bot (and bob for a group) joined."""
        server = self.synapse
        others = [self.bot, *([server.user_id(f"bob{self.tag}")] if group else [])]
        room = server.create_room(self.alice, invite=others, direct=not group,
                                  name="group" if group else None)
        server.join(f"bot{self.tag}", room)
        if group:
            server.join(f"bob{self.tag}", room)
        return room

    def channel_config(self) -> dict[str, Any]:
        assert self.proxy is not None
        return {"homeserver": self.proxy.url, "user_id": self.bot,
                "password": self.synapse.password(f"bot{self.tag}"), "sync_timeout": 10}

    def chat(self, i: int) -> str:
        if i not in self._chats:
            self._chats[i] = self._room()
        return self._chats[i]

    def thread_target(self) -> tuple[str, str]:
        """A thread in a direct room, rooted at a notice of alice's (which bots never
        answer, so only the message in the thread gets a reply)."""
        chat = self.chat(30)
        return chat, self.synapse.send(self.alice, chat, {"msgtype": "m.notice",
                                                          "body": "thread root"})

    def group_chat(self) -> str:
        if self._group is None:
            self._group = self._room(group=True)
        return self._group

    # ---- what the user sends ---------------------------------------------------------------

    async def _send(self, chat: str, content: dict[str, Any]) -> str:
        assert self.proxy is not None
        since = self.proxy.last_since
        assert self.user is not None
        answer = await self.user.room_send(chat, "m.room.message", content)
        assert isinstance(answer, RoomSendResponse), answer
        self._since_at[answer.event_id] = since
        return answer.event_id

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        """A text from alice. A lone surrogate cannot travel: Synapse answers 500 to JSON
        carrying one, so it goes as U+FFFD, as a client's UTF-8 encoder would send it."""
        content: dict[str, Any] = {"msgtype": "m.text", "body": _LONE.sub("\ufffd", text)}
        if thread is not None:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread,
                                       "is_falling_back": True,
                                       "m.in_reply_to": {"event_id": thread}}
        return await self._send(chat, content)

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text, "m.mentions": {}}
        if mention:
            content["body"] = f"Pyclaw Bot: {text}"
            content["m.mentions"] = {"user_ids": [self.bot]}
        return await self._send(chat, content)

    async def redeliver(self, platform_id: str) -> None:
        assert self.proxy is not None
        self.proxy.rewind_next_sync(self._since_at[platform_id])
        self.proxy.drop()  # end the long poll in flight, so the next one is the rewound one

    async def inject_malformed(self) -> None:
        """An image without its ``url`` (Synapse checks only ``msgtype`` and ``body``)."""
        await self._send(self.chat(0), {"msgtype": "m.image", "body": "broken.png"})

    async def inject_media_only(self, chat: str) -> str:
        return await self._send(chat, {
            "msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/abcdefcat",
            "info": {"mimetype": "image/png", "size": 48213, "w": 640, "h": 480}})

    # ---- what the bot sent -----------------------------------------------------------------

    def _records(self) -> list[tuple[str, SentMessage, str | None, str]]:
        """(event id, message, the event it edits, its new text) of each message the
        connector sent, in the order Synapse accepted them."""
        assert self.proxy is not None
        records, seen = [], set()
        for room_id, content, event_id, ts in self.proxy.accepted:
            if event_id in seen:  # a PUT sent again with its transaction id: the same event
                continue
            seen.add(event_id)
            relates = content.get("m.relates_to") or {}
            edited = relates.get("event_id") if relates.get("rel_type") == "m.replace" else None
            if content.get("msgtype") == "m.notice":
                continue
            reply = (relates.get("m.in_reply_to") or {}).get("event_id")
            thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
            new_text = str((content.get("m.new_content") or {}).get("body", ""))
            records.append((event_id, SentMessage(
                chat=room_id, text=str(content.get("body", "")), thread=thread,
                reply_to=None if edited else reply, ts=ts), edited, new_text))
        return records

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [m for _, m, edited, _ in self._records()
                if edited is None and (chat is None or m.chat == chat)]

    def visible(self, chat: str) -> list[str]:
        texts: dict[str, str] = {}
        for event_id, message, edited, new_text in self._records():
            if message.chat != chat:
                continue
            if edited is None:
                texts[event_id] = message.text
            elif edited in texts:
                texts[edited] = new_text
        return list(texts.values())

    def edits(self, chat: str) -> int:
        return sum(1 for _, m, edited, _ in self._records() if edited and m.chat == chat)

    # ---- faults ----------------------------------------------------------------------------

    def rate_limit_next_send(self, retry_after: float) -> None:
        assert self.proxy is not None
        self.proxy.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        assert self.proxy is not None
        return list(self.proxy.rate_limit_log)

    async def drop_connection(self) -> None:
        assert self.proxy is not None
        self.proxy.drop()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        assert self.proxy is not None
        self.proxy.fail_next_send(status, skip=skip)

    def lose_next_send_answer(self) -> None:
        assert self.proxy is not None
        self.proxy.lose_next_send()


HARNESS = MatrixHarness
