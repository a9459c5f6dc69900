"""The Zulip connector against the fake server (tests/fakes/zulip_api.py), without a gateway,
plus its pure parser.

What every channel must do is the contract suite's (tests/contract); here is what is
Zulip's own: a wrong or revoked key as one clear line, Test connection, an expired event
queue registered again with the messages of the gap fetched back once, the backfill
limit, the first start answering no history, the group rule from the server's flags
(mentions, wildcards, silent mentions, quote-replies, group DMs), replies to the same
stream and topic, edits, typing, the server's message length, the queue deleted on stop,
Zulip's own errors (an unknown stream, a private stream, a rate limit) and a hypothesis
test that the parser never raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.zulip._parse import (
    Bot,
    DirectTarget,
    Skip,
    StreamTarget,
    parse_message,
    target_of,
    uploads,
)
from connectors.zulip.manifest import ZulipConfig
from connectors.zulip.runtime import CURSOR_KEY, ZulipConnector
from pyclaw_app.channels import SubmitResult
from pyclaw_app.errors import FatalConnectorError, RetryableError, StoreError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory
from tests.contract.harness_zulip import ZulipHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.zulip_api import FakeZulip, Stream, User, ZulipUser
from tests.support import RecordingContext, eventually
from tests.test_attachments import PNG
from tests.test_attachments_channels import online, reply_to

Running = tuple[ZulipConnector, RecordingContext]
SITE = "https://chat.example.org"
BOT = Bot(user_id=10, full_name="Pyclaw Bot", site=SITE)


class Org:
    """The fake server with a bot, two people and a stream they are all in."""

    def __init__(self) -> None:
        self.fake = FakeZulip()
        self.fake.heartbeat_interval = 0.2
        self.bot = self.fake.add_user("Pyclaw Bot", is_bot=True)
        self.alice = self.fake.add_user("Alice")
        self.bob = self.fake.add_user("Bob")
        self.stream = self.fake.add_stream("general", (self.bot, self.alice, self.bob))
        self.clients: dict[int, ZulipUser] = {}

    def client(self, user: User) -> ZulipUser:
        if user.user_id not in self.clients:
            self.clients[user.user_id] = self.fake.client(user)
        return self.clients[user.user_id]

    async def dm(self, user: User, text: str, *, to: tuple[User, ...] = ()) -> int:
        return await self.client(user).direct(
            [self.bot.user_id, *(u.user_id for u in to)], text)

    async def post(self, user: User, text: str, *, topic: str = "lunch",
                   stream: Stream | None = None) -> int:
        return await self.client(user).stream(
            (stream or self.stream).stream_id, topic, text)

    def settings(self, **overrides: Any) -> ZulipConfig:
        return ZulipConfig(**{"site": self.fake.url, "email": self.bot.email,
                              "api_key": SecretStr(self.bot.api_key), **overrides})


@pytest.fixture
async def org() -> AsyncIterator[Org]:
    org = Org()
    await org.fake.start()
    yield org
    for client in org.clients.values():
        await client.close()
    await org.fake.stop()


@pytest.fixture
async def start(org: Org) -> AsyncIterator[Callable[..., Any]]:
    made: list[ZulipConnector] = []

    async def factory(ctx: RecordingContext | None = None, **overrides: Any) -> Running:
        connector = ZulipConnector("zulip", org.settings(**overrides))
        ctx = ctx or RecordingContext()
        made.append(connector)
        await connector.start(ctx)
        return connector, ctx

    yield factory
    for connector in made:
        await connector.stop()


def logged(ctx: RecordingContext, words: str) -> bool:
    return any(words in line[1] for line in ctx.logs)


def texts(ctx: RecordingContext) -> list[str]:
    return [inbound.text for inbound in ctx.inbound]


# ---- credentials and settings ----------------------------------------------------------------


async def test_a_wrong_key_stops_the_start_with_one_clear_line(
        org: Org, start: Callable[..., Any]) -> None:
    ctx = RecordingContext()
    with pytest.raises(FatalConnectorError, match="refused the bot's credentials"):
        await start(ctx, api_key=SecretStr("not-the-key"))
    errors = [line for line in ctx.logs if line[0] == "error"]
    assert len(errors) == 1 and "INVALID_API_KEY" in errors[0][1]
    assert "not-the-key" not in errors[0][1]
    assert ctx.states[-1][0] == ChannelState.OFFLINE


async def test_a_deactivated_bot_stops_the_channel_for_good(
        org: Org, start: Callable[..., Any]) -> None:
    _, ctx = await start()
    org.bot.is_active = False
    org.fake.expire_queues(org.bot)  # the next poll has to register again, and is refused
    await eventually(lambda: ctx.states[-1][0] == ChannelState.OFFLINE, timeout=10)
    assert logged(ctx, "USER_DEACTIVATED")


async def test_probe_says_who_the_bot_is_or_why_not(org: Org) -> None:
    good = await ZulipConnector("zulip", org.settings()).probe()
    assert good.ok and good.message == f"connected as Pyclaw Bot ({org.bot.email})"
    bad = await ZulipConnector("zulip", org.settings(api_key=SecretStr("x"))).probe()
    assert not bad.ok and "check the email and api_key" in bad.message
    nowhere = await ZulipConnector("zulip", org.settings(site="chat.example.org")).probe()
    assert not nowhere.ok and "site must be" in nowhere.message


async def test_a_server_that_refuses_tls_is_one_clear_line_and_keeps_trying(
        org: Org, start: Callable[..., Any]) -> None:
    _, ctx = await start(site=org.fake.url.replace("http://", "https://"))
    warning = next(line for line in ctx.logs if line[0] == "warning")
    assert "cannot reach Zulip yet" in warning[1] and "SSL" in warning[1]
    assert ctx.states[-1][0] == ChannelState.DEGRADED and not ctx.crashes


def test_the_config_takes_the_site_as_people_paste_it_and_needs_a_key() -> None:
    assert ZulipConfig(site="https://x.zulipchat.com/api/v1/").site == "https://x.zulipchat.com"
    assert ZulipConfig(site=" https://x.zulipchat.com/ ").site == "https://x.zulipchat.com"
    assert ZulipConfig(site="https://x.org", email="b@x.org").missing_secrets() == ["api_key"]


# ---- receiving ---------------------------------------------------------------------------------


async def test_the_first_start_answers_no_history_and_heartbeats_keep_it_alive(
        org: Org, start: Callable[..., Any]) -> None:
    old = await org.dm(org.alice, "from before the bot")
    _, ctx = await start()
    assert await ctx.state.get(CURSOR_KEY) == old
    await org.dm(org.alice, "hello")
    await eventually(lambda: texts(ctx) == ["hello"], timeout=5)
    beats = ctx.heartbeats
    await eventually(lambda: ctx.heartbeats >= beats + 2, timeout=5)  # idle polls: heartbeats
    assert texts(ctx) == ["hello"]


async def test_an_expired_queue_is_registered_again_and_the_gap_is_fetched_once(
        org: Org, start: Callable[..., Any]) -> None:
    _, ctx = await start()
    await org.dm(org.alice, "before")
    await eventually(lambda: texts(ctx) == ["before"], timeout=5)
    registers = org.fake.calls("register")
    org.fake.hold_registers()
    org.fake.expire_queues(org.bot)
    await eventually(lambda: org.fake.calls("register") > registers, timeout=5)
    assert not org.fake.live_queues(org.bot)  # no queue: these reach only the history
    await org.dm(org.alice, "in the gap 1")
    await org.post(org.bob, "@**Pyclaw Bot** in the gap 2")
    org.fake.release_registers()
    await org.dm(org.alice, "after")
    await eventually(lambda: len(ctx.inbound) >= 4, timeout=5)
    await eventually(lambda: org.fake.calls("get_events") > 3, timeout=5)
    assert texts(ctx) == ["before", "in the gap 1", "@**Pyclaw Bot** in the gap 2", "after"]
    assert ctx.inbound[2].mentioned and ctx.inbound[2].address.thread == "lunch"
    assert logged(ctx, "event queue expired")
    assert logged(ctx, "messages that arrived while the event queue was away")
    assert ctx.states[-1][0] == ChannelState.ONLINE


async def test_a_restart_after_a_long_absence_answers_only_the_newest(
        org: Org, start: Callable[..., Any]) -> None:
    connector, ctx = await start(backfill_limit=2)
    await org.dm(org.alice, "seen")
    await eventually(lambda: texts(ctx) == ["seen"], timeout=5)
    await connector.stop()
    assert not org.fake.live_queues(org.bot)  # the queue was deleted on the way out
    for i in range(4):
        await org.dm(org.alice, f"while away {i}")
    _, again = await start(RecordingContext(state=ctx.state), backfill_limit=2)
    assert texts(again) == ["while away 2", "while away 3"]
    assert logged(again, "more than 2 messages arrived")


@dataclass
class FlakyJournal(RecordingContext):
    """A journal whose first write fails (the disk was full for a moment)."""

    failures: int = 1

    async def submit(self, inbound: Inbound) -> SubmitResult:
        if self.failures:
            self.failures -= 1
            raise StoreError("database or disk is full")
        return await super().submit(inbound)


async def test_a_backfill_the_journal_refused_is_fetched_again(
        org: Org, start: Callable[..., Any]) -> None:
    connector, ctx = await start()
    await org.dm(org.alice, "seen")
    await eventually(lambda: texts(ctx) == ["seen"], timeout=5)
    await connector.stop()
    for i in range(2):
        await org.dm(org.alice, f"while away {i}")
    _, again = await start(FlakyJournal(state=ctx.state))
    await eventually(lambda: len(again.inbound) == 2, timeout=10)
    assert texts(again) == ["while away 0", "while away 1"]
    assert logged(again, "could not journal")


async def test_the_group_rule_comes_from_the_servers_flags(
        org: Org, start: Callable[..., Any]) -> None:
    _, ctx = await start()
    await org.post(org.alice, "people talking")
    await org.post(org.alice, "@**Pyclaw Bot** hi")
    await org.post(org.alice, "@**all** lunch is here", topic="news")
    await org.post(org.alice, "@_**Pyclaw Bot** (silent) thanks")
    await org.post(org.alice, "@_**Pyclaw Bot|8** [said](https://x/#narrow/near/1):\n"
                   "```quote\nhello\n```\nand then?")
    await org.dm(org.alice, "just us")
    await org.dm(org.alice, "the three of us", to=(org.bob,))
    await eventually(lambda: len(ctx.inbound) == 7, timeout=5)
    flags = [(i.is_group, i.mentioned, i.reply_to_bot) for i in ctx.inbound]
    assert flags == [(True, False, False), (True, True, False), (True, True, False),
                     (True, False, False), (True, False, True), (False, False, False),
                     (True, False, False)]
    stream = f"stream:{org.stream.stream_id}"
    assert [(i.address.chat, i.address.thread) for i in ctx.inbound[:3]] == [
        (stream, "lunch"), (stream, "lunch"), (stream, "news")]
    assert ctx.inbound[5].address.chat == f"dm:{org.alice.user_id}"
    assert ctx.inbound[6].address.chat == f"dm:{org.alice.user_id},{org.bob.user_id}"
    assert ctx.inbound[0].sender_name == "Alice"


async def test_the_bots_own_messages_are_not_answered(org: Org,
                                                      start: Callable[..., Any]) -> None:
    connector, ctx = await start()
    address = Address("zulip", f"dm:{org.alice.user_id}", str(org.bot.user_id))
    await connector.send_part(address, "I said this", None)
    await org.dm(org.alice, "marker")
    await eventually(lambda: texts(ctx) == ["marker"], timeout=5)


# ---- sending -----------------------------------------------------------------------------------


async def test_replies_go_to_the_same_stream_and_topic_and_to_every_dm_member(
        org: Org, start: Callable[..., Any]) -> None:
    connector, ctx = await start()
    await org.post(org.alice, "@**Pyclaw Bot** where?", topic="plans")
    await org.dm(org.alice, "and us?", to=(org.bob,))
    await eventually(lambda: len(ctx.inbound) == 2, timeout=5)
    for inbound in ctx.inbound:
        await connector.send_part(inbound.address, f"re: {inbound.text}",
                                  inbound.platform_id)
    topic_reply, group_reply = org.fake.messages[-2:]
    assert (topic_reply.type, topic_reply.stream_id, topic_reply.topic) == (
        "stream", org.stream.stream_id, "plans")
    assert group_reply.type == "private" and group_reply.receivers == {
        org.bot.user_id, org.alice.user_id, org.bob.user_id}


async def test_edits_and_typing_reach_the_server(org: Org, start: Callable[..., Any]) -> None:
    connector, _ = await start()
    dm = Address("zulip", f"dm:{org.alice.user_id}")
    topic = Address("zulip", f"stream:{org.stream.stream_id}", thread="plans")
    sent = await connector.send_part(dm, "draft", None)
    await connector.edit(dm, sent, "final text")
    assert org.fake.message(int(sent)).content == "final text"
    await connector.typing(dm)
    await connector.typing(topic)
    assert [(t.type, t.to, t.stream_id, t.topic, t.op) for t in org.fake.typing] == [
        ("direct", (org.alice.user_id,), None, None, "start"),
        ("stream", (), org.stream.stream_id, "plans", "start")]


async def test_the_servers_message_length_is_the_limit(org: Org,
                                                       start: Callable[..., Any]) -> None:
    org.fake.max_message_length = 500
    connector, _ = await start()
    assert connector.limits.max_text == 500


async def test_zulip_refusals_are_clear(org: Org, start: Callable[..., Any]) -> None:
    connector, _ = await start()
    hidden = org.fake.add_stream("secret", (org.alice,), invite_only=True)
    with pytest.raises(FatalConnectorError, match="subscribe the bot"):
        await connector.send_part(Address("zulip", f"stream:{hidden.stream_id}",
                                          thread="t"), "hi", None)
    with pytest.raises(FatalConnectorError, match="deleted or renamed"):
        await connector.send_part(Address("zulip", "stream:404", thread="t"), "hi", None)
    with pytest.raises(FatalConnectorError, match="not a Zulip conversation"):
        await connector.send_part(Address("zulip", "stream:1"), "no topic", None)
    org.fake.rate_limit_next_send(2.5)
    with pytest.raises(RetryableError, match="rate limit") as limited:
        await connector.send_part(Address("zulip", f"dm:{org.alice.user_id}"), "hi", None)
    assert limited.value.retry_after == 2.5


# ---- the parser --------------------------------------------------------------------------------


def message(**fields: Any) -> dict[str, Any]:
    return {"id": 7, "sender_id": 3, "sender_full_name": "Alice", "type": "stream",
            "stream_id": 2, "subject": "t", "display_recipient": "general",
            "content": "hi", "timestamp": 1700000000, **fields}


def test_uploads_are_metadata_with_absolute_urls_on_the_own_server_only() -> None:
    content = ("[cat.png](/user_uploads/2/ab/x/cat.png) and [a.pdf](" + SITE +
               "/user_uploads/2/cd/y/a.pdf) but not [evil](https://evil.example/user_uploads/1/z.png)")
    found = uploads(content, SITE)
    assert [(a.kind, a.name, a.mime, a.url) for a in found] == [
        ("image", "cat.png", "image/png", f"{SITE}/user_uploads/2/ab/x/cat.png"),
        ("file", "a.pdf", "application/pdf", f"{SITE}/user_uploads/2/cd/y/a.pdf")]
    only = parse_message(message(content="[cat.png](/user_uploads/2/ab/x/cat.png)"), [],
                         channel="zulip", bot=BOT)
    assert isinstance(only, Inbound) and only.text == "" and only.attachments


def test_skips_say_why() -> None:
    assert parse_message(message(sender_id=BOT.user_id), [], channel="z", bot=BOT) == Skip(
        "debug", "the bot's own message 7")
    assert isinstance(parse_message(message(type="private", display_recipient="x"), [],
                                    channel="z", bot=BOT), Skip)
    assert isinstance(parse_message(message(content=None), [], channel="z", bot=BOT), Skip)
    assert isinstance(parse_message(message(type="huddle"), [], channel="z", bot=BOT), Skip)


def test_targets_round_trip_the_chat_ids() -> None:
    assert target_of("stream:12", "plans") == StreamTarget(12, "plans")
    assert target_of("stream:12", "") == StreamTarget(12, "")
    assert target_of("dm:3,4", None) == DirectTarget((3, 4))
    assert target_of("stream:12", None) is None and target_of("dm:", None) is None
    assert target_of("#general", None) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20)


@given(json_values, json_values)
def test_the_parser_never_raises(raw: object, flags: object) -> None:
    parse_message(raw, flags, channel="zulip", bot=BOT)


@given(st.fixed_dictionaries({}, optional={
    "id": json_values, "sender_id": json_values, "type": st.sampled_from(["stream", "private"]),
    "stream_id": json_values, "subject": json_values, "content": st.text(),
    "display_recipient": json_values, "timestamp": json_values}),
    st.lists(st.sampled_from(["mentioned", "read", "wildcard_mentioned"])))
def test_the_parser_never_raises_on_message_shaped_input(raw: dict[str, Any],
                                                         flags: list[str]) -> None:
    parse_message(raw, flags, channel="zulip", bot=BOT)


@given(st.text(), st.one_of(st.none(), st.text()))
def test_targets_never_raise(chat: str, thread: str | None) -> None:
    target_of(chat, thread)


# ---- attachments through a gateway ----------------------------------------------------------

@pytest.fixture
async def harness() -> AsyncIterator[ZulipHarness]:
    made = ZulipHarness()
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_an_upload_is_fetched_by_its_temporary_link_and_seen_by_the_model(
        harness: ZulipHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(0)
    person = harness.fake.users[int(chat.removeprefix("dm:"))]
    link = harness.fake.upload(person, PNG, "cat.png", "image/png")
    await harness._post(chat, f"what is this? [cat.png]({link})")
    assert await reply_to(harness, chat, 0) == f"Echo: what is this? [cat.png]({link})"
    assert fake_llm.images == [("image/png", PNG)]
    lookup, download = harness.fake.downloads
    assert lookup[0] == f"/api/v1{link}" and lookup[1] is not None
    assert download[0].startswith("/user_uploads/temporary/") and download[1] is None


async def test_a_deleted_upload_is_reported_to_the_sender(
        harness: ZulipHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(harness, fake_llm, make_gateway)
    chat = harness.chat(1)
    person = harness.fake.users[int(chat.removeprefix("dm:"))]
    link = harness.fake.upload(person, PNG, "gone.png", "image/png")
    del harness.fake.uploads[link.removeprefix("/user_uploads/")]
    await harness._post(chat, f"[gone.png]({link})")
    assert await reply_to(harness, chat, 0) == (
        "I could not read what you sent: gone.png: Zulip no longer has the file (deleted, or "
        "not uploaded to this organization).")
    assert fake_llm.images == []
