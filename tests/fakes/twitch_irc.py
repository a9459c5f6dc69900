"""A fake Twitch chat server (TMI) on 127.0.0.1, and a viewer's client to play the user.

Written from Twitch's IRC documentation (dev.twitch.tv/docs/irc: authenticate-bot,
capabilities, tags, commands, send-receive-messages, msg-id) and its stated rate
limits, not from what the connector sends. What it does as Twitch does:

- login: ``CAP REQ`` answered ``CAP * ACK`` (``NAK`` for anything but Twitch's three),
  ``PASS oauth:<token>`` + ``NICK <login>``; a PASS without ``oauth:`` is answered
  ``NOTICE * :Improperly formatted auth``, a wrong token or a token of another login
  ``NOTICE * :Login authentication failed``, then the connection is closed. A good one
  gets 001-004, the 375/372/376 MOTD and, with tags+commands, GLOBALUSERSTATE;
- JOIN: the JOIN echo, NAMES (353/366), USERSTATE (badges, ``mod``) and ROOMSTATE; an
  unknown channel ``msg_channel_suspended``;
- PRIVMSG: relayed to the channel's other members with Twitch's tag set (``id``,
  ``user-id``, ``display-name``, ``room-id``, ``tmi-sent-ts``, ``badges``, ``emotes``,
  ``emote-only``, and the ``reply-parent-*`` tags for a reply); the sender gets
  USERSTATE with the message's ``id``. Text is trimmed and cut at 500 characters. The
  rate limits drop a message with a NOTICE: ``msg_ratelimit`` past 100 messages per
  window, or past 20 (and faster than one a second per channel) where the sender is not
  a moderator/VIP/broadcaster; ``msg_duplicate`` for a repeat within 30 s there;
- PING answered ``PONG``; :meth:`FakeTwitch.ping` sends Twitch's ``PING :tmi.twitch.tv``;
  :meth:`FakeTwitch.reconnect` sends ``RECONNECT`` and closes the connection later.

Scripted faults (the harness controls): the next PRIVMSG of an account dropped with a
given NOTICE (``msg_ratelimit``, ``msg_rejected_mandatory``...), or relayed and then
the connection cut before its USERSTATE (a lost answer); :meth:`FakeTwitch.drop` closes
an account's connections server-side (FIN; what it had already written is still read
and carried out, nothing more is answered), after which it is out of every channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.tls import self_signed

__all__ = ["FakeTwitch", "Sent", "TwitchUser", "WireLine", "parse_wire"]

SERVER = "tmi.twitch.tv"
CAPS = {"twitch.tv/tags", "twitch.tv/commands", "twitch.tv/membership"}
MAX_TEXT = 500
DUPLICATE_WINDOW = 30.0
MIN_GAP = 1.0
EMOTES = {"Kappa": "25", "Keepo": "1902", "HeyGuys": "30259", "LUL": "425618"}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


# ---- the wire, read independently of the connector's parser ----------------------------------

@dataclass(frozen=True)
class WireLine:
    command: str
    params: tuple[str, ...]
    tags: dict[str, str]
    prefix: str

    @property
    def nick(self) -> str:
        return self.prefix.partition("!")[0]

    def param(self, i: int) -> str:
        return self.params[i] if -len(self.params) <= i < len(self.params) else ""


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            ch = _UNESCAPES.get(nxt, nxt)
        out.append(ch)
    return "".join(out)


def parse_wire(raw: str) -> WireLine | None:
    rest, tags, prefix = raw.rstrip("\r\n"), {}, ""
    if rest.startswith("@"):
        head, _, rest = rest.partition(" ")
        for item in head[1:].split(";"):
            key, _, value = item.partition("=")
            if key:
                tags[key] = _unescape(value)
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    head, sep, trailing = rest.partition(" :")
    words = head.split()
    if not words:
        return None
    params = tuple(words[1:]) + ((trailing,) if sep else ())
    return WireLine(words[0].upper(), params, tags, prefix)


def _tags(tags: dict[str, str]) -> str:
    return "@" + ";".join(f"{k}={''.join(_ESCAPES.get(c, c) for c in v)}" for k, v in tags.items())


# ---- the server ------------------------------------------------------------------------------

@dataclass
class Account:
    login: str
    token: str
    user_id: str
    display: str


@dataclass
class Room:
    name: str
    room_id: str
    mods: set[str] = field(default_factory=set)
    members: set[_Client] = field(default_factory=set)
    messages: dict[str, tuple[Account, str, str]] = field(default_factory=dict)
    """msg id -> (author, text, the line as relayed)."""
    last: dict[str, tuple[float, str]] = field(default_factory=dict)
    """login -> (when, text) of its last message delivered here."""


@dataclass(frozen=True)
class Sent:
    """A PRIVMSG the server accepted and relayed."""

    login: str
    chat: str
    text: str
    msg_id: str
    reply_to: str | None
    ts: float


class _Client(asyncio.Protocol):
    def __init__(self, fake: FakeTwitch) -> None:
        self.fake = fake
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.caps: set[str] = set()
        self.password = ""
        self.account: Account | None = None
        self.half_closed = False
        self.muted = False
        self.pongs: list[str] = []
        self.pings: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.fake.clients.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            raw, _, self.buffer = self.buffer.partition(b"\n")
            line = parse_wire(raw.decode("utf-8", "replace"))
            if line is not None and self.transport is not None:
                self.fake.handle(self, line)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake.gone(self)

    def write(self, line: str) -> None:
        if self.transport is not None and not self.transport.is_closing() \
                and not self.half_closed and not self.muted:
            self.transport.write(line.encode() + b"\r\n")

    @property
    def nick(self) -> str:
        return self.account.login if self.account else "*"

    @property
    def tagged(self) -> bool:
        return "twitch.tv/tags" in self.caps


class FakeTwitch:
    def __init__(self, *, tls: bool = False, rate_window: float = 30.0,
                 reconnect_grace: float = 5.0) -> None:
        self.tls = tls
        self.rate_window = rate_window
        self.reconnect_grace = reconnect_grace
        self.port = 0
        self.ca_file = ""
        self.accounts: dict[str, Account] = {}
        self.rooms: dict[str, Room] = {}
        self.clients: set[_Client] = set()
        self.logins = 0
        self.sent_log: list[Sent] = []
        self.faults: dict[str, deque[tuple[str, int]]] = {}
        self.fault_log: list[tuple[str, float]] = []
        """(msg-id of a scripted drop, monotonic time) and ("next", time) for the PRIVMSG
        after it: what the rate-limit contract test measures."""
        self._sends: dict[str, deque[tuple[float, bool]]] = {}
        self._server: asyncio.Server | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ids = 100000

    async def start(self) -> FakeTwitch:
        context = None
        if self.tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="faketmi-")
            made = self_signed(Path(self._tmp.name), "tmi")
            context = made.server_context()
            self.ca_file = str(made.cert)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Client(self), "127.0.0.1", 0,
                                                ssl=context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
        if self._tmp is not None:
            self._tmp.cleanup()

    # ---- setup and controls -------------------------------------------------------------------

    def add_account(self, login: str, display: str = "") -> Account:
        self._ids += 1
        account = Account(login, uuid.uuid4().hex[:30], str(self._ids), display or login)
        self.accounts[account.token] = account
        return account

    def add_room(self, name: str, *, mods: tuple[str, ...] = ()) -> Room:
        self._ids += 1
        room = Room(name.lower(), str(self._ids), set(mods))
        self.rooms[room.name] = room
        return room

    def joined(self, login: str, chat: str) -> bool:
        room = self.rooms.get(chat)
        return room is not None and any(c.nick == login for c in room.members)

    def connections(self, login: str) -> list[_Client]:
        return [c for c in self.clients if c.nick == login and not c.half_closed]

    def fail_next(self, login: str, kind: str, *, skip: int = 0) -> None:
        """The next PRIVMSG of ``login`` after ``skip`` accepted ones: dropped with the NOTICE
        ``kind`` (a msg-id), or ``"lose"``: relayed, then the connection cut unanswered."""
        self.faults.setdefault(login, deque()).append((kind, skip))

    def drop(self, login: str) -> int:
        """Close ``login``'s connections from the server's side; returns how many."""
        clients = self.connections(login)
        for client in clients:
            self._leave_all(client)
            client.half_closed = True
            if client.transport is not None and client.transport.can_write_eof():
                client.transport.write_eof()
            elif client.transport is not None:
                client.transport.close()
        return len(clients)

    def reconnect(self, login: str) -> None:
        """Twitch's maintenance notice, then the connection closed after the grace time."""
        loop = asyncio.get_running_loop()
        for client in self.connections(login):
            client.write(f":{SERVER} RECONNECT")
            if client.transport is not None:
                loop.call_later(self.reconnect_grace, client.transport.close)

    def mute(self, login: str) -> None:
        """A stalled link: ``login``'s connections stay open, but nothing is read or answered."""
        for client in self.connections(login):
            client.muted = True

    def pings(self, login: str) -> list[str]:
        return [p for c in self.clients if c.nick == login for p in c.pings]

    def ping(self, login: str) -> None:
        for client in self.connections(login):
            client.write(f"PING :{SERVER}")

    def pongs(self, login: str) -> list[str]:
        return [p for c in self.clients if c.nick == login for p in c.pongs]

    def send_raw(self, login: str, line: str) -> None:
        for client in self.connections(login):
            client.write(line)

    def relay_again(self, msg_id: str) -> None:
        """The line of message ``msg_id`` once more, to the channel's members but its author."""
        for room in self.rooms.values():
            if msg_id in room.messages:
                author, _, line = room.messages[msg_id]
                for member in list(room.members):
                    if member.account is not author:
                        member.write(line)

    def sent(self, login: str, chat: str | None = None) -> list[Sent]:
        return [s for s in self.sent_log if s.login == login and chat in (None, s.chat)]

    # ---- the protocol -----------------------------------------------------------------------

    def handle(self, client: _Client, line: WireLine) -> None:
        cmd = line.command
        if client.muted:
            return
        if cmd == "CAP":
            self._cap(client, line)
        elif cmd == "PASS":
            client.password = line.param(0)
        elif cmd == "NICK" and client.account is None:
            self._login(client, line.param(0).lower())
        elif cmd == "PING":
            client.pings.append(line.param(0))
            client.write(f":{SERVER} PONG {SERVER} :{line.param(0)}")
        elif cmd == "PONG":
            client.pongs.append(line.param(-1))
        elif client.account is None or cmd == "USER":
            return
        elif cmd == "JOIN":
            for name in line.param(0).lower().split(","):
                self._join(client, name)
        elif cmd == "PART":
            room = self.rooms.get(line.param(0).lower())
            if room is not None and client in room.members:
                client.write(f":{self._prefix(client.nick)} PART {room.name}")
                room.members.discard(client)
        elif cmd == "PRIVMSG":
            self._privmsg(client, line)
        elif cmd == "QUIT":
            if client.transport is not None:
                client.transport.close()
        else:
            client.write(f":{SERVER} 421 {client.nick} {cmd} :Unknown command")

    def gone(self, client: _Client) -> None:
        self.clients.discard(client)
        self._leave_all(client)

    def _leave_all(self, client: _Client) -> None:
        for room in self.rooms.values():
            room.members.discard(client)

    @staticmethod
    def _prefix(login: str) -> str:
        return f"{login}!{login}@{login}.{SERVER}"

    def _cap(self, client: _Client, line: WireLine) -> None:
        sub = line.param(0).upper()
        if sub == "LS":
            client.write(f":{SERVER} CAP * LS :{' '.join(sorted(CAPS))}")
        elif sub == "REQ":
            wanted = set(line.param(-1).split())
            if wanted <= CAPS:
                client.caps |= wanted
                client.write(f":{SERVER} CAP * ACK :{line.param(-1)}")
            else:
                client.write(f":{SERVER} CAP * NAK :{line.param(-1)}")

    def _login(self, client: _Client, nick: str) -> None:
        reason = ""
        if not client.password.startswith("oauth:"):
            reason = "Improperly formatted auth"
        else:
            account = next((a for t, a in self.accounts.items()
                            if t == client.password.removeprefix("oauth:")), None)
            if account is None or account.login != nick:
                reason = "Login authentication failed"
        if reason:
            client.write(f":{SERVER} NOTICE * :{reason}")
            if client.transport is not None:
                client.transport.close()
            return
        client.account = account
        self.logins += 1
        for code, text in (("001", "Welcome, GLHF!"), ("002", f"Your host is {SERVER}"),
                           ("003", "This server is rather new"), ("004", "-"), ("375", "-"),
                           ("372", "You are in a maze of twisty passages, all alike."),
                           ("376", ">")):
            client.write(f":{SERVER} {code} {nick} :{text}")
        if client.tagged and "twitch.tv/commands" in client.caps:
            client.write(_tags({"badge-info": "", "badges": "", "color": "",
                                "display-name": account.display, "emote-sets": "0",
                                "user-id": account.user_id, "user-type": ""})
                         + f" :{SERVER} GLOBALUSERSTATE")

    def _badges(self, room: Room, login: str) -> tuple[str, bool]:
        if login == room.name.lstrip("#"):
            return "broadcaster/1", True
        if login in room.mods:
            return "moderator/1", True
        return "", False

    def _userstate(self, client: _Client, room: Room, msg_id: str | None = None) -> None:
        if not (client.tagged and "twitch.tv/commands" in client.caps):
            return
        assert client.account is not None
        badges = self._badges(room, client.nick)[0]
        tags = {"badge-info": "", "badges": badges, "color": "",
                "display-name": client.account.display, "emote-sets": "0"}
        if msg_id:
            tags["id"] = msg_id
        tags |= {"mod": "1" if badges.startswith("moderator") else "0", "subscriber": "0",
                 "user-type": "mod" if badges.startswith("moderator") else ""}
        client.write(_tags(tags) + f" :{SERVER} USERSTATE {room.name}")

    def _join(self, client: _Client, name: str) -> None:
        room = self.rooms.get(name)
        if room is None:
            client.write(_tags({"msg-id": "msg_channel_suspended"})
                         + f" :{SERVER} NOTICE {name} :This channel does not exist or has "
                         "been suspended.")
            return
        room.members.add(client)
        join = f":{self._prefix(client.nick)} JOIN {room.name}"
        for member in room.members:
            if member is client or "twitch.tv/membership" in member.caps:
                member.write(join)
        client.write(f":{client.nick}.{SERVER} 353 {client.nick} = {room.name} :{client.nick}")
        client.write(f":{client.nick}.{SERVER} 366 {client.nick} {room.name} "
                     ":End of /NAMES list")
        self._userstate(client, room)
        if client.tagged and "twitch.tv/commands" in client.caps:
            client.write(_tags({"emote-only": "0", "followers-only": "-1", "r9k": "0",
                                "room-id": room.room_id, "slow": "0", "subs-only": "0"})
                         + f" :{SERVER} ROOMSTATE {room.name}")

    def _notice(self, client: _Client, room: str, msg_id: str, text: str) -> None:
        client.write(_tags({"msg-id": msg_id}) + f" :{SERVER} NOTICE {room} :{text}")

    def _take_fault(self, login: str) -> str | None:
        queue = self.faults.get(login)
        if not queue:
            return None
        kind, skip = queue[0]
        if skip:
            queue[0] = (kind, skip - 1)
            return None
        queue.popleft()
        return kind

    def _rate_refusal(self, account: Account, room: Room, text: str, elevated: bool
                      ) -> tuple[str, str] | None:
        now = time.monotonic()
        sends = self._sends.setdefault(account.login, deque())
        while sends and sends[0][0] <= now - self.rate_window:
            sends.popleft()
        plain = sum(1 for _, counted in sends if counted)
        last = room.last.get(account.login)
        sends.append((now, not elevated))  # dropped messages count as well
        too_fast = ("msg_ratelimit", "Your message was not sent because you are sending "
                    "messages too quickly.")
        if len(sends) > 100 or (not elevated and plain >= 20):
            return too_fast
        if not elevated and last is not None:
            if now - last[0] < MIN_GAP:
                return too_fast
            if last[1] == text and now - last[0] < DUPLICATE_WINDOW:
                return ("msg_duplicate", "Your message was not sent because it is identical "
                        "to the previous one you sent, less than 30 seconds ago.")
        return None

    def _privmsg(self, client: _Client, line: WireLine) -> None:
        account = client.account
        assert account is not None
        room = self.rooms.get(line.param(0).lower())
        if room is None:
            self._notice(client, line.param(0), "msg_channel_suspended",
                         "This channel does not exist or has been suspended.")
            return
        if self.fault_log and self.fault_log[-1][0] != "next" and account.login in self.faults:
            self.fault_log.append(("next", time.monotonic()))
        fault = self._take_fault(account.login)
        if fault is not None and fault != "lose":
            self.fault_log.append((fault, time.monotonic()))
            self._notice(client, room.name, fault, {
                "msg_ratelimit": "Your message was not sent because you are sending "
                                 "messages too quickly.",
                "msg_rejected_mandatory": "Your message wasn't posted due to conflicts with "
                                          "the channel's moderation settings.",
            }.get(fault, "Your message was not sent."))
            return
        text = line.param(1).strip()[:MAX_TEXT]
        if not text:
            return
        badges, elevated = self._badges(room, account.login)
        refusal = self._rate_refusal(account, room, text, elevated)
        if refusal is not None:
            self._notice(client, room.name, *refusal)
            return
        msg_id = str(uuid.uuid4())
        now = time.time()
        tags = {"badge-info": "", "badges": badges, "color": "",
                "display-name": account.display, **self._emotes(text), "first-msg": "0",
                "flags": "", "id": msg_id, "mod": "1" if badges.startswith("moderator") else "0"}
        parent_id = line.tags.get("reply-parent-msg-id", "")
        parent = room.messages.get(parent_id)
        if parent is not None:
            author, body, _ = parent
            tags |= {"reply-parent-display-name": author.display, "reply-parent-msg-body": body,
                     "reply-parent-msg-id": parent_id, "reply-parent-user-id": author.user_id,
                     "reply-parent-user-login": author.login,
                     "reply-thread-parent-msg-id": parent_id,
                     "reply-thread-parent-user-login": author.login}
        tags |= {"returning-chatter": "0", "room-id": room.room_id, "subscriber": "0",
                 "tmi-sent-ts": str(int(now * 1000)), "turbo": "0",
                 "user-id": account.user_id, "user-type": ""}
        relayed = _tags(tags) + f" :{self._prefix(account.login)} PRIVMSG {room.name} :{text}"
        room.messages[msg_id] = (account, text, relayed)
        room.last[account.login] = (time.monotonic(), text)
        for member in list(room.members):
            if member is not client:
                member.write(relayed if member.tagged else relayed.partition(" ")[2])
        self.sent_log.append(Sent(account.login, room.name, text, msg_id,
                                  parent_id if parent is not None else None, time.monotonic()))
        if fault == "lose":
            if client.transport is not None:
                client.transport.abort()
            return
        self._userstate(client, room, msg_id)

    @staticmethod
    def _emotes(text: str) -> dict[str, str]:
        """``emotes`` (``id:start-end,...`` per emote, ``/``-separated) and ``emote-only``."""
        spans: dict[str, list[str]] = {}
        words = list(re.finditer(r"\S+", text))
        for word in words:
            if word.group(0) in EMOTES:
                spans.setdefault(EMOTES[word.group(0)], []).append(
                    f"{word.start()}-{word.end() - 1}")
        tags = {"emotes": "/".join(f"{k}:{','.join(v)}" for k, v in spans.items())}
        if words and all(w.group(0) in EMOTES for w in words):
            tags["emote-only"] = "1"
        return tags


# ---- a viewer -------------------------------------------------------------------------------

class TwitchUser:
    """A viewer's chat client on the fake: logs in, joins, chats, and keeps what it read."""

    def __init__(self, fake: FakeTwitch, account: Account) -> None:
        self.fake = fake
        self.account = account
        self.lines: list[WireLine] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def connect(self) -> TwitchUser:
        context = ssl.create_default_context(cafile=self.fake.ca_file) if self.fake.tls else None
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.fake.port, ssl=context)
        self._task = asyncio.create_task(self._read())
        await self.send(f"CAP REQ :{' '.join(sorted(CAPS))}")
        await self.send(f"PASS oauth:{self.account.token}")
        await self.send(f"NICK {self.account.login}")
        await self.wait_for(lambda ln: ln.command == "GLOBALUSERSTATE")
        return self

    async def send(self, line: str) -> None:
        assert self._writer is not None
        # what a browser does with a lone surrogate: U+FFFD on the wire
        self._writer.write(_LONE_SURROGATE.sub("\ufffd", line).encode() + b"\r\n")
        await self._writer.drain()

    async def join(self, *chats: str) -> None:
        for chat in chats:
            since = len(self.lines)
            await self.send(f"JOIN {chat}")
            await self.wait_for(lambda ln, c=chat: ln.command == "ROOMSTATE"
                                and ln.param(0) == c, since=since)

    async def privmsg(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        """Say ``text`` in ``chat``; returns the message id Twitch gave it."""
        since = len(self.lines)
        tags = _tags({"reply-parent-msg-id": reply_to}) + " " if reply_to else ""
        await self.send(f"{tags}PRIVMSG {chat} :{text}")
        answer = await self.wait_for(lambda ln: ln.param(0) == chat and (
            (ln.command == "USERSTATE" and "id" in ln.tags) or ln.command == "NOTICE"),
            since=since)
        if answer.command == "NOTICE":
            raise AssertionError(f"the fake refused the user's message: {answer.param(-1)}")
        return answer.tags["id"]

    async def wait_for(self, check: Callable[[WireLine], bool], timeout: float = 15.0, *,
                       since: int = 0) -> WireLine:
        deadline = time.monotonic() + timeout
        while True:
            found = next((ln for ln in self.lines[since:] if check(ln)), None)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the user never received the expected line")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(OSError, ssl.SSLError):
            while raw := await self._reader.readline():
                line = parse_wire(raw.decode("utf-8", "replace"))
                if line is None:
                    continue
                if line.command == "PING":
                    await self.send(f"PONG :{line.param(-1)}")
                self.lines.append(line)
                self._arrived.set()
