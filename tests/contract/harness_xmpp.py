"""The contract suite's view of XMPP: a real prosody, real slixmpp clients playing the users.

Each harness gets its own accounts on the process-wide prosody (``tests/servers/
prosody.py``): the bot ``pyclaw<n>@localhost``, one user per test chat (a 1:1 chat's id
is the user's bare JID) and a room ``room<n>@conference.localhost`` where the member
``alice`` talks; a mention starts with the bot's nick ("pyclaw: ..."). So nothing of one
test (offline messages, room history) reaches the next. Every injection waits for the
server to have handled the stanza (a ping on the same stream), so the order between the
users' streams and the admin's fault commands is the server's order.

``sent()`` is what prosody routed from the bot (the server's own record, complete before
the bot's send returns; corrections apart), ``visible()`` applies XEP-0308 corrections.
The scripted failures are prosody's own doing through the tests' fault module:
``drop_connection`` closes the bot's TCP connection on the server (mod_smacks keeps the
session; the bot resumes it, the server hands over what came meanwhile and slixmpp resends
what was not acknowledged); a rate limit is a ``wait``/``policy-violation`` error message
(what mod_muc_limits answers) — XMPP errors carry no delay, so ``retry_after`` is not on
the wire and the connector waits its own fixed pause; a failed send is a ``wait`` (500)
or ``cancel`` (400) error; a lost answer is a message routed and the session then ended
by a stream error, which cannot be resumed. 1:1 messages sent while the bot is stopped
wait in prosody's offline storage, hence ``queues_while_down``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from connectors.xmpp.manifest import MAX_TEXT, wire_len
from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.xmpp_user import XmppUser
from tests.servers.prosody import ADMIN, DOMAIN, FAULTS_NS, MUC, Prosody, shared_prosody

__all__ = ["HARNESS", "XmppHarness"]

NICK = "pyclaw"
MEMBER_NICK = "alice"
_IDS = itertools.count(1)


@dataclass(frozen=True)
class Routed:
    """One message the bot sent, as prosody routed it (``Prosody.sent_log``)."""

    chat: str
    id: str
    text: str
    replaces: str
    ts: float


class XmppHarness(PlatformHarness):
    type_name = "xmpp"
    max_text = MAX_TEXT
    supports_edit = True
    queues_while_down = True

    def __init__(self) -> None:
        n = next(_IDS)
        self.tag = f"{n}{uuid.uuid4().hex[:6]}"
        self.bot_password = f"bot-secret-{self.tag}"
        self.room = f"room{self.tag}@{MUC}"
        self.server: Prosody | None = None
        self.users: dict[str, XmppUser] = {}
        self.member: XmppUser | None = None
        self.admin: XmppUser | None = None
        self.sent_stanzas: dict[str, tuple[str, str, str]] = {}
        self._pending: list[asyncio.Future[None]] = []
        self._routed: list[Routed] = []
        self._read_to = 0

    @property
    def prosody(self) -> Prosody:
        assert self.server is not None, "harness not started"
        return self.server

    @property
    def bot(self) -> str:
        return f"pyclaw{self.tag}@{DOMAIN}"

    def text_length(self, text: str) -> int:
        return wire_len(text)

    async def start(self) -> None:
        self.server = await shared_prosody()
        self.prosody.register(f"pyclaw{self.tag}", self.bot_password)
        self.admin = await XmppUser(f"{ADMIN[0]}@{DOMAIN}", ADMIN[1], self.prosody).start()
        self._read_to = self.prosody.sent_log.stat().st_size

    async def stop(self) -> None:
        for user in [*self.users.values(), self.member, self.admin]:
            if user is not None:
                await user.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"jid": self.bot, "password": self.bot_password, "server": "127.0.0.1",
                "port": self.prosody.port, "ca_file": self.prosody.ca_file,
                "rooms": [self.room], "nick": NICK}

    def chat(self, i: int) -> str:
        return self.prosody.register(f"u{self.tag}x{i}", f"user-secret-{i}")

    async def _user(self, chat: str) -> XmppUser:
        await self._flush()
        if chat not in self.users:
            local = chat.partition("@")[0]
            self.users[chat] = await XmppUser(chat, self.prosody.users[local],
                                              self.prosody).start()
        return self.users[chat]

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        user = await self._user(chat)
        stanza_id = await user.send(self.bot, text)
        self.sent_stanzas[f"{chat}/{stanza_id}"] = (chat, stanza_id, text)
        return f"{chat}/{stanza_id}"

    async def redeliver(self, platform_id: str) -> None:
        chat, stanza_id, text = self.sent_stanzas[platform_id]
        await (await self._user(chat)).send(self.bot, text, stanza_id=stanza_id)

    async def inject_malformed(self) -> None:
        # A "groupchat" message straight from a user, not from a room the bot is in.
        user = await self._user(self.chat(99))
        await user.send(f"{self.bot}/pyclaw", "not from a room", kind="groupchat")

    async def inject_media_only(self, chat: str) -> str:
        url = f"https://upload.{DOMAIN}/{uuid.uuid4().hex}/photo.jpg"
        oob = Element("{jabber:x:oob}x")
        url_element = Element("{jabber:x:oob}url")
        url_element.text = url
        oob.append(url_element)
        stanza_id = await (await self._user(chat)).send(self.bot, url, extra=oob)
        return f"{chat}/{stanza_id}"

    def _all_routed(self) -> list[Routed]:
        """The bot's messages as the server routed them, read on from where we stopped."""
        with self.prosody.sent_log.open("rb") as f:
            f.seek(self._read_to)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._read_to += len(complete)
        for line in complete.splitlines():
            record = json.loads(line)
            if record["from"] == self.bot:
                self._routed.append(Routed(record["to"], record["id"], record["body"],
                                           record["replace"], record["t"]))
        return self._routed

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=r.chat, text=r.text, ts=r.ts) for r in self._all_routed()
                if not r.replaces and chat in (None, r.chat)]

    def visible(self, chat: str) -> list[str]:
        routed = [r for r in self._all_routed() if r.chat == chat]
        latest = {r.replaces: r.text for r in routed if r.replaces}
        return [latest.get(r.id, r.text) for r in routed if not r.replaces]

    def edits(self, chat: str) -> int:
        return sum(1 for r in self._all_routed() if r.chat == chat and r.replaces)

    # ---- faults (prosody's fault module; see tests/servers/prosody.py) -------------------

    async def _fault(self, **attrs: str) -> None:
        admin = self.admin
        assert admin is not None
        iq = admin.client.make_iq_set(ito=DOMAIN)
        iq.xml.append(Element(f"{{{FAULTS_NS}}}fault", {"jid": self.bot, **attrs}))
        await iq.send(timeout=10)

    def _schedule(self, **attrs: str) -> None:
        """For the synchronous controls: done before the next injection is sent."""
        self._pending.append(asyncio.ensure_future(self._fault(**attrs)))

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            await future

    def rate_limit_next_send(self, retry_after: float) -> None:
        self._schedule(kind="error", type="wait", condition="policy-violation",
                       text="rate limited")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        lines = self.prosody.fault_lines(self.bot)
        return [(when, lines[i + 1][1]) for i, (what, when) in enumerate(lines[:-1])
                if what == "answered" and lines[i + 1][0] == "next"]

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        transient = status >= 500
        self._schedule(kind="error", skip=str(skip), type="wait" if transient else "cancel",
                       condition="resource-constraint" if transient else "not-acceptable")

    def lose_next_send_answer(self) -> None:
        self._schedule(kind="lose")

    async def drop_connection(self) -> None:
        await self._flush()
        await self._fault(kind="drop")

    # ---- the room -------------------------------------------------------------------------

    def group_chat(self) -> str:
        return self.room

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        await self._flush()
        if self.member is None:
            local = f"m{self.tag}"
            jid = self.prosody.register(local, "member-secret")
            member = await XmppUser(jid, "member-secret", self.prosody).start()
            await member.join(self.room, MEMBER_NICK)
            self.member = member
        body = f"{NICK}: {text}" if mention else text
        stanza_id = await self.member.send(chat, body, kind="groupchat")
        return f"{chat}/{stanza_id}"


HARNESS = XmppHarness
