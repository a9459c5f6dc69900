"""The contract suite's view of Signal: the signal-cli HTTP daemon fake (tests/fakes/signal_cli.py).

No Signal server can run here (Signal's servers are Signal's, and signal-cli needs a
registered number to do anything), so the daemon is faked from signal-cli's man pages
and source. It runs in ``--receive-mode manual``, the mode the setup help asks for:
messages sent while no event stream is open wait on Signal's side and arrive when one
opens. ``queues_while_down`` is still False, because signal-cli learns that a client went
away only when a write to it fails: the first event after a stop (a keep-alive, at most
15 s later, or a message) goes into the closed connection and is gone, and the contract
test sends its message right after the stop. tests/connectors/test_signal.py shows both
halves (kept once the daemon noticed, lost in that window). signal-cli keeps no cursor
a client could resume from (its events have no ids), so ``cursor_key`` is None: a
message handed over twice is recognised by its platform id ``<author ACI>:<timestamp>``.

Test chats are direct chats with people +1555010000<i>; the chat id is the person's ACI
(what signal-cli reports as ``sourceUuid``). The group is "team" with two people; a
mention is a U+FFFC placeholder with the bot's mention record. A redelivery is the same
envelope handed over again (what Signal's servers do with one signal-cli did not
acknowledge). A malformed event is one signal-cli could not decrypt (``exception`` with
an envelope and no message). Rate limits are signal-cli's -5 error with
``retryAfterSeconds`` (whole seconds, as it rounds them), transient failures its -1 with
NETWORK_FAILURE, refusals -1 with UNREGISTERED_FAILURE; a lost answer is a send carried
out whose HTTP answer is cut; a dropped connection is every event stream aborted
server-side. Replies quote the message they answer (``quoteTimestamp``/``quoteAuthor``),
so ``reply_to`` is ``<author>:<timestamp>`` of the quoted one.
"""

from __future__ import annotations

from typing import Any

from connectors.signal.manifest import MAX_TEXT
from pyclaw_app.channels import utf8_len
from tests.contract.harness import PlatformHarness, SentMessage
from tests.fakes.signal_cli import Person, SignalCliFake

__all__ = ["HARNESS", "SignalHarness"]


class SignalHarness(PlatformHarness):
    type_name = "signal"
    max_text = MAX_TEXT
    supports_edit = True
    quotes_replies = True

    def __init__(self) -> None:
        self.fake = SignalCliFake(keepalive=1.0)
        self._people: dict[str, Person] = {}
        self._events: dict[str, dict[str, Any]] = {}
        self._group: str | None = None

    def text_length(self, text: str) -> int:
        return utf8_len(text)

    async def start(self) -> None:
        await self.fake.start()

    async def stop(self) -> None:
        await self.fake.stop()

    def channel_config(self) -> dict[str, Any]:
        return {"url": self.fake.url, "account": self.fake.bot.number, "event_timeout": 5}

    def _person(self, i: int) -> Person:
        person = self.fake.person(f"+1555010{i:04d}", f"Person {i}")
        self._people[person.uuid] = person
        return person

    def chat(self, i: int) -> str:
        return self._person(i).uuid

    async def _deliver(self, event: dict[str, Any]) -> str:
        envelope = event["envelope"]
        pid = f"{envelope['sourceUuid']}:{envelope['timestamp']}"
        self._events[pid] = event
        await self.fake.deliver(event)
        return pid

    async def inject_message(self, chat: str, text: str, *, thread: str | None = None,
                             sender: int = 1) -> str:
        return await self._deliver(self.fake.user_message(self._people[chat], text))

    async def redeliver(self, platform_id: str) -> None:
        await self.fake.deliver(self._events[platform_id])

    async def inject_malformed(self) -> None:
        sender = self._person(99)
        event = self.fake.envelope(sender, {})
        event["exception"] = {"message": "Invalid PreKey message",
                              "type": "ProtocolInvalidMessageException"}
        await self.fake.deliver(event)

    async def inject_media_only(self, chat: str) -> str:
        return await self._deliver(self.fake.user_message(self._people[chat], None, attachments=[
            {"contentType": "image/jpeg", "filename": "cat.jpg", "id": "Y2F0LmpwZw.jpg",
             "size": 48213, "width": 640, "height": 480, "caption": None,
             "uploadTimestamp": self.fake.now()}]))

    def sent(self, chat: str | None = None) -> list[SentMessage]:
        return [SentMessage(chat=r.chat, text=r.text, ts=r.monotonic,
                            reply_to=f"{r.quote[0]}:{r.quote[1]}" if r.quote else None)
                for r in self.fake.messages(chat)]

    def rate_limit_next_send(self, retry_after: float) -> None:
        self.fake.rate_limit_next_send(retry_after)

    def rate_limit_log(self) -> list[tuple[float, float]]:
        return self.fake.rate_limit_log

    async def drop_connection(self) -> None:
        await self.fake.drop_connection()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        self.fake.fail_next("send", status, skip=skip)

    def lose_next_send_answer(self) -> None:
        self.fake.lose_next_answer("send")

    def visible(self, chat: str) -> list[str]:
        return self.fake.visible(chat)

    def edits(self, chat: str) -> int:
        return self.fake.edits(chat)

    def group_chat(self) -> str:
        if self._group is None:
            self._group = "group:" + self.fake.group("team", [self._person(40),
                                                              self._person(41)])
        return self._group

    async def inject_group_message(self, chat: str, text: str, *, mention: bool) -> str:
        sender = self._person(41)
        gid = chat.removeprefix("group:")
        if mention:
            event = self.fake.user_message(sender, f"\ufffc {text}", group=gid,
                                           mentions=[self.fake.bot])
        else:
            event = self.fake.user_message(sender, text, group=gid)
        return await self._deliver(event)


HARNESS = SignalHarness
