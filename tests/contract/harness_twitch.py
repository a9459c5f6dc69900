"""The contract suite's view of Twitch chat: the fake TMI server (tests/fakes/twitch_irc.py)
and a viewer's client connection on it playing the user.

No Twitch server can run here, so the fake speaks Twitch's documented lines. Each
harness has its own fake, bot account and channels ``#pc<tag>_<i>``; the bot and the
viewer are moderators there (how a streamer sets a bot up: 100 messages per window and
no one-second pause), the rate window is one second so that a rate-limit pause is
short, and the bot joins its 31 channels at a verified bot's pace (2000 per 10 s). The
viewer addresses the bot as ``@login text``; platform ids are Twitch's ``id`` tags, and
the bot's replies carry ``reply-parent-msg-id``.

Twitch keeps no history and delivers a channel's messages only to who is in it, so a
message said while the bot is away is gone for it (``queues_while_down`` off, no cursor):
the viewer speaks once the bot is in the channel, as a viewer answered by a bot that
was away would. Events made real: a dropped connection is the fake closing the bot's
socket from its side (it still carries out the lines the bot had written, answers none
of them; the bot is out of every channel until it joins again); a redelivery is the same
line, tags and ``id`` unchanged, relayed once more, as a bot gets it when two of its
connections are in the channel; a rate limit is Twitch's ``msg_ratelimit`` NOTICE
dropping the message (no time in it: the bot pauses one window), a transient failure
the same, a refusal ``msg_rejected_mandatory`` (a blocked term), a lost answer the
message relayed and the connection cut before its USERSTATE. A media message is a
bare link to a picture; a malformed one a PRIVMSG without its text.

Twitch chat has no line breaks: the bot sends a part as one line, its lines joined by
spaces (``chat_line``). ``sent()`` reports a message with the text the gateway
journaled for its id when the wire text is exactly that text as one chat line, and as
it arrived otherwise, so a changed, cut or missing message still fails the test.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from connectors.twitch._inbound import chat_line
from connectors.twitch.manifest import MAX_TEXT
from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.twitch_irc import Account, FakeTwitch, TwitchUser
from tests.support import eventually

__all__ = ["HARNESS", "TwitchHarness"]

CHATS = 30
WINDOW = 1.0


class TwitchHarness(PlatformHarness):
    type_name = "twitch"
    max_text = MAX_TEXT
    quotes_replies = True

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.login = f"pyc{tag}"
        self._prefix = f"#pc{tag}_"
        self.fake = FakeTwitch(rate_window=WINDOW)
        self.bot: Account | None = None
        self.user: TwitchUser | None = None
        self._gateway: Any = None

    def _chats(self) -> list[str]:
        return [self.chat(i) for i in range(CHATS)] + [self.group_chat()]

    async def start(self) -> None:
        await self.fake.start()
        self.bot = self.fake.add_account(self.login, display="PyClawBot")
        viewer = self.fake.add_account(f"viewer{self.login[3:]}")
        for chat in self._chats():
            self.fake.add_room(chat, mods=(self.login, viewer.login))
        self.user = await TwitchUser(self.fake, viewer).connect()
        await self.user.join(*self._chats())

    async def stop(self) -> None:
        if self.user is not None:
            await self.user.close()
        await self.fake.stop()

    def attach(self, gateway: Any) -> None:
        self._gateway = gateway

    def channel_config(self) -> dict[str, Any]:
        assert self.bot is not None
        return {"login": self.login, "oauth_token": self.bot.token, "channels": self._chats(),
                "host": "127.0.0.1", "port": self.fake.port, "tls": False,
                "rate_window": WINDOW, "joins_per_10s": 2000}

    def chat(self, i: int) -> str:
        return f"{self._prefix}{i}"

    def group_chat(self) -> str:
        return f"{self._prefix}group"

    async def _say(self, chat: str, text: str) -> str:
        """The viewer's message, once the bot is in the channel to read it."""
        assert self.user is not None
        await eventually(lambda: self.fake.joined(self.login, chat), timeout=20.0)
        return await self.user.privmsg(chat, text)

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        return await self._say(chat, f"@{self.login} {text}")

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        return await self._say(chat, f"@{self.login} {text}" if mention else text)

    async def redeliver(self, platform_id: str) -> None:
        self.fake.relay_again(platform_id)

    async def inject_malformed(self) -> None:
        assert self.user is not None
        chat = self.chat(0)
        await eventually(lambda: self.fake.joined(self.login, chat), timeout=20.0)
        viewer = self.user.account
        self.fake.send_raw(self.login, (
            f"@badge-info=;badges=;color=;display-name={viewer.display};emotes=;"
            f"id={uuid.uuid4()};mod=0;room-id=1;subscriber=0;tmi-sent-ts=1642786203573;"
            f"turbo=0;user-id={viewer.user_id};user-type= "
            f":{viewer.login}!{viewer.login}@{viewer.login}.tmi.twitch.tv PRIVMSG {chat}"))

    async def inject_media_only(self, chat: str) -> str:
        return await self._say(chat, f"@{self.login} https://i.imgur.com/"
                                     f"{uuid.uuid4().hex[:8]}.png")

    # ---- what the bot sent ------------------------------------------------------------------

    def _journal_parts(self) -> dict[str, str]:
        """platform id -> text of every part the gateway recorded as sent."""
        if self._gateway is None:
            return {}
        with sqlite3.connect(f"file:{self._gateway.store.db.path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT platform_id, text FROM reply_parts"
                              " WHERE platform_id IS NOT NULL").fetchall()
        return {str(pid): str(text) for pid, text in rows}

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        parts = self._journal_parts()
        out: list[SentMessage] = []
        for s in self.fake.sent(self.login, chat):
            journaled = parts.get(s.msg_id)
            text = journaled if journaled is not None and chat_line(journaled) == s.text \
                else s.text
            out.append(SentMessage(chat=s.chat, text=text, reply_to=s.reply_to, ts=s.ts))
        return out

    # ---- failures ----------------------------------------------------------------------------

    def rate_limit_next_send(self, retry_after: float) -> None:
        assert retry_after <= WINDOW, "Twitch names no time: the bot pauses one window"
        self.fake.fail_next(self.login, "msg_ratelimit")

    def rate_limit_log(self) -> list[tuple[float, float]]:
        log = self.fake.fault_log
        return [(when, log[i + 1][1]) for i, (what, when) in enumerate(log[:-1])
                if what == "msg_ratelimit" and log[i + 1][0] == "next"]

    async def drop_connection(self) -> None:
        assert self.fake.drop(self.login), "the bot was not connected"

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        kind = "msg_ratelimit" if status >= 500 else "msg_rejected_mandatory"
        self.fake.fail_next(self.login, kind, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.fail_next(self.login, "lose")


HARNESS = TwitchHarness
