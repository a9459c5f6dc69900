"""The contract suite's view of IRC: a real InspIRCd + Atheme network (tests/servers/inspircd.py).

The connector reaches the server through :class:`IrcProxy` (plain text, so the proxy can
read lines; TLS is covered by the platform tests) and logs in with SASL. Each harness
gets its own bot nick and channels, so tests sharing the one server never meet. Test
chats are channels ``#pc<token>-<i>`` (the group chat ``#pc<token>-group``) that a user,
``u<token>``, is in; the bot joins them from its config. The user addresses the bot as
``nick: text`` (the default group rule answers mentions). Platform ids are IRCv3 msgids.

Platform events made real: a dropped connection is an oper KILL of the bot; a
redelivery is the server's history replay (chanhistory) when the bot is SAPARTed from
the channel and SAJOINed back; messages sent while the bot is stopped are replayed when
it joins again (``queues_while_down``), and the per-channel cursor is ``ctx.state
["seen"]``. A media message is a bare link to an uploaded picture (how IRC clients send
one); a malformed one is a DCC SEND offer without its fields. Failures go through the
proxy: a transient one (500) is the link closed with ERROR before the server took the
line, a refusal (400) the server's ``404 Cannot send to channel`` for it, a lost answer
the line forwarded and the link cut before its echo. UTF-8 on the wire cannot carry a lone
surrogate, so the user sends U+FFFD in its place, as a web client does. IRC has no
rate-limit answer (a server lags or kills a flooding client), so the 429 test is off;
pacing is proven in tests/connectors/test_irc.py against a strict flood limit.

IRC carries no newlines: the connector sends each line of a part as its own PRIVMSG
(blank lines left out). ``sent()`` therefore rebuilds parts from the lines the user
received, framed by the journal: a part whose first line's msgid is the platform id
the gateway recorded, and whose lines are exactly the wire lines that follow, is
reported with its journaled text; any other line is reported as it arrived, so a
missing, extra or altered line still fails the test.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from connectors.irc._parse import Line, message_lines
from connectors.irc.manifest import IrcConfig, line_budget
from pyclaw_app.channels import utf8_len
from tests.contract.harness import PlatformHarness, SentMessage
from tests.servers.inspircd import ACCOUNTS, IrcProxy, IrcUser, shared_server

__all__ = ["HARNESS", "IrcHarness"]

CHATS = 30


class IrcHarness(PlatformHarness):
    type_name = "irc"
    supports_rate_limit = False
    quotes_replies = True
    cursor_key = "seen"
    queues_while_down = True

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:6]
        self.nick = f"pyc{token}"
        self._prefix = f"#pc{token}-"
        self.user = IrcUser(f"u{token}", 0)
        self.proxy: IrcProxy | None = None
        self._gateway: Any = None
        self._config = self._make_config(6667)  # the proxy's port once it listens
        self.max_text = line_budget(IrcConfig(**{k: v for k, v in self._config.items()
                                                 if k != "sasl_password"}))

    def _make_config(self, port: int) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": port, "tls": False, "nick": self.nick,
                "sasl_account": "pyclawbot", "sasl_password": ACCOUNTS["pyclawbot"],
                "channels": [self.chat(i) for i in range(CHATS)] + [self.group_chat()],
                "send_burst": 20, "send_rate": 50.0, "ping_interval": 30.0}

    def text_length(self, text: str) -> int:
        return utf8_len(text)

    async def start(self) -> None:
        server = await shared_server()
        self.proxy = IrcProxy(server.port)
        await self.proxy.start()
        self._config = self._make_config(self.proxy.port)
        self.user.port = server.port
        await self.user.connect()
        await self.user.oper()
        await self.user.join(*self._config["channels"])

    async def stop(self) -> None:
        await self.user.quit()
        if self.proxy is not None:
            await self.proxy.stop()

    def attach(self, gateway: Any) -> None:
        self._gateway = gateway

    def channel_config(self) -> dict[str, Any]:
        return dict(self._config)

    def chat(self, i: int) -> str:
        return f"{self._prefix}{i}"

    def group_chat(self) -> str:
        return f"{self._prefix}group"

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        return await self.user.privmsg(chat, f"{self.nick}: {text}")

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        return await self.user.privmsg(chat, f"{self.nick}: {text}" if mention else text)

    async def redeliver(self, platform_id: str) -> None:
        """SAPART the bot and SAJOIN it back: the server replays the channel's history."""
        line = next(ln for ln in self.user.lines if ln.tags.get("msgid") == platform_id)
        chat = line.param(0)
        for command in ("PART", "JOIN"):
            since = len(self.user.lines)
            await self.user.send(f"SA{command} {self.nick} {chat}")
            await self.user.wait_for(
                lambda ln, c=command: ln.command == c and ln.source is not None
                and ln.source.nick.lower() == self.nick.lower()
                and ln.param(0).lower() == chat.lower(), since=since)

    async def inject_malformed(self) -> None:
        await self.user.privmsg(self.nick, "\x01DCC SEND\x01")

    async def inject_media_only(self, chat: str) -> str:
        return await self.user.privmsg(
            chat, f"{self.nick}: https://files.pyclaw.test/u/{uuid.uuid4().hex[:8]}/photo.jpg")

    # ---- what the bot sent ------------------------------------------------------------------

    def _bot_lines(self, chat: str | None) -> list[Line]:
        nick = self.nick.lower()
        return self.user.messages(source=lambda n: n.lower().startswith(nick),
                                  target=chat)

    def _journal_parts(self) -> dict[str, str]:
        """platform id -> text of every part the gateway recorded as sent."""
        if self._gateway is None:
            return {}
        with sqlite3.connect(f"file:{self._gateway.store.db.path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT platform_id, text FROM reply_parts"
                              " WHERE platform_id IS NOT NULL").fetchall()
        return {str(pid): str(text) for pid, text in rows}

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        lines = self._bot_lines(chat)
        parts = self._journal_parts()
        out: list[SentMessage] = []
        i = 0
        while i < len(lines):
            first = lines[i]
            text = parts.get(first.tags.get("msgid", ""))
            expected = message_lines(text) if text is not None else []
            got = [ln.param(1) for ln in lines[i:i + len(expected)]]
            if text is None or got != expected:
                text, expected = first.param(1), [first.param(1)]
            out.append(SentMessage(chat=first.param(0).lower(), text=text,
                                   reply_to=first.tags.get("+draft/reply"), ts=0.0))
            i += len(expected)
        return out

    # ---- failures ----------------------------------------------------------------------------

    def rate_limit_next_send(self, retry_after: float) -> None:
        raise NotImplementedError("IRC servers have no rate-limit answer with a retry time")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return []

    async def drop_connection(self) -> None:
        await self.user.kill(self.nick, "contract test: dropped connection")

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        assert self.proxy is not None
        self.proxy.next_privmsg("error" if status >= 500 else "refuse", skip=skip)

    def lose_next_send_answer(self) -> None:
        assert self.proxy is not None
        self.proxy.next_privmsg("lose")


HARNESS = IrcHarness
