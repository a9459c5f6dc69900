"""One contract, every connector: each test runs a real Gateway on SQLite with the fake LLM
against each platform's fake, through the real SDK."""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import traceback
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tests.contract as contract_pkg
import tests.fakes as fakes_pkg
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from tests.conftest import provider_section
from tests.contract.harness import PlatformHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually

HARNESSES = sorted(
    m.name.removeprefix("harness_") for m in pkgutil.iter_modules(
        [str(Path(contract_pkg.__file__).parent)]) if m.name.startswith("harness_"))

WAIT = 20.0


@pytest.fixture(params=HARNESSES)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[PlatformHarness]:
    module = importlib.import_module(f"tests.contract.harness_{request.param}")
    h: PlatformHarness = module.HARNESS()
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def running_gateway(harness: PlatformHarness, fake_llm: FakeOpenAI, make_gateway,
                          section: dict[str, object] | None = None, **overrides: object
                          ) -> Gateway:
    """A gateway with the harness's channel online; ``section`` replaces its config."""
    name = harness.type_name
    gw: Gateway = await make_gateway({
        "providers": [provider_section(fake_llm)],
        # Access policy has its own tests: here every sender and group may talk, without a
        # rate limit.
        "channels": {name: {"type": name, "dm_policy": "open", "group_policy": "open",
                            "rate_limit_per_minute": 0,
                            **(section or harness.channel_config()), **overrides}}})
    harness.attach(gw)
    await eventually(lambda: gw.channels[name].state == ChannelState.ONLINE, timeout=WAIT)
    return gw


@pytest.fixture
async def gateway(harness: PlatformHarness, fake_llm: FakeOpenAI, make_gateway) -> Gateway:
    return await running_gateway(harness, fake_llm, make_gateway)


async def settle(gateway: Gateway) -> None:
    """Let in-flight work finish so a wrongly doubled reply would have shown up."""
    await gateway.lanes.join()
    await asyncio.sleep(0.3)
    await gateway.lanes.join()


async def test_receive_and_reply_in_the_right_chat_and_both_rows_stored(
        harness: PlatformHarness, gateway: Gateway) -> None:
    chat = harness.chat(1)
    pid = await harness.inject_message(chat, "hello there")
    sent = await eventually(lambda: harness.sent(chat), timeout=WAIT)
    assert [m.text for m in sent] == ["Echo: hello there"]
    if harness.quotes_replies:
        assert sent[0].reply_to == pid
    await settle(gateway)
    rows = await gateway.store.db.fetchall(
        "SELECT direction, text, status, platform_id FROM messages ORDER BY id")
    assert [(r["direction"], r["text"], r["status"]) for r in rows] == [
        ("in", "hello there", "replied"), ("out", "Echo: hello there", "sent")]
    assert rows[0]["platform_id"] == pid

    target = harness.thread_target()
    if target is not None:
        thread_chat, thread = target
        await harness.inject_message(thread_chat, "in a thread", thread=thread)
        in_thread = await eventually(lambda: harness.sent(thread_chat), timeout=WAIT)
        assert in_thread[-1].thread == thread
        assert in_thread[-1].text.endswith("in a thread")


async def test_long_reply_is_split_within_the_limit_and_reassembles(
        harness: PlatformHarness, gateway: Gateway, fake_llm: FakeOpenAI) -> None:
    need(harness.splits_replies, "answers a request with one HTTP response", harness)
    paragraph = ("Gateways should split long replies at natural boundaries. " * 12).strip()
    text = "\n\n".join(f"{i}. {paragraph} 🎉" for i in range(14))
    text = (text + " " + "x" * 1500)[:10_000]
    assert len(text) == 10_000
    fake_llm.responder = lambda messages: text
    chat = harness.chat(2)
    await harness.inject_message(chat, "tell me a lot")
    await eventually(lambda: "".join(m.text for m in harness.sent(chat)) == text, timeout=WAIT)
    parts = harness.sent(chat)
    assert len(parts) >= 2
    assert all(harness.text_length(p.text) <= harness.max_text for p in parts)


async def test_rate_limit_retry_after_is_honoured(harness: PlatformHarness,
                                                  gateway: Gateway) -> None:
    if not harness.supports_rate_limit:
        pytest.skip(f"{harness.type_name} has no rate-limit answers")
    harness.rate_limit_next_send(1.0)
    chat = harness.chat(3)
    await harness.inject_message(chat, "slow down")
    await eventually(lambda: harness.sent(chat), timeout=WAIT)
    await settle(gateway)
    assert [m.text for m in harness.sent(chat)] == ["Echo: slow down"]
    log = harness.rate_limit_log()
    assert log, "the fake never answered 429"
    answered, retried = log[0]
    assert retried - answered >= 1.0 - 0.05  # the retry came no sooner than Retry-After


async def test_dropped_connection_mid_burst_loses_nothing_and_doubles_nothing(
        harness: PlatformHarness, gateway: Gateway) -> None:
    if not harness.supports_drop:
        pytest.skip(f"{harness.type_name} has no connection to drop")
    chats = [harness.chat(10 + i) for i in range(4)]
    expected: Counter[tuple[str, str]] = Counter()
    for n in range(12):
        chat = chats[n % len(chats)]
        await harness.inject_message(chat, f"burst {n}")
        expected[(chat, f"Echo: burst {n}")] += 1
        if n == 5:
            await harness.drop_connection()

    def delivered() -> Counter[tuple[str, str]]:
        return Counter((m.chat, m.text) for c in chats for m in harness.sent(c))

    await eventually(lambda: set(delivered()) == set(expected), timeout=WAIT * 2)
    await settle(gateway)
    assert delivered() == expected  # every message answered exactly once
    name = harness.type_name
    assert gateway.channels[name].state == ChannelState.ONLINE
    # healed by the channel's own reconnect, not by the supervisor restarting a crashed task
    logs = await gateway.store.logs.page(channel=name, search="crashed")
    assert gateway.channels[name].crashed is None and not logs


async def test_redelivered_message_is_answered_once(harness: PlatformHarness,
                                                    gateway: Gateway) -> None:
    chat = harness.chat(4)
    pid = await harness.inject_message(chat, "only once please")
    await eventually(lambda: harness.sent(chat), timeout=WAIT)
    await harness.redeliver(pid)
    await settle(gateway)
    await harness.inject_message(chat, "marker")  # processed after the redelivery
    await eventually(lambda: len(harness.sent(chat)) >= 2, timeout=WAIT)
    await settle(gateway)
    assert [m.text for m in harness.sent(chat)] == ["Echo: only once please", "Echo: marker"]
    count = await gateway.store.db.fetchone(
        "SELECT COUNT(*) AS n FROM messages WHERE direction='in' AND platform_id=?", (pid,))
    assert count is not None and count["n"] == 1


async def test_malformed_payload_is_logged_and_the_connector_stays_up(
        harness: PlatformHarness, gateway: Gateway) -> None:
    try:
        await harness.inject_malformed()
    except NotImplementedError:
        pytest.skip(f"{harness.type_name} has no wire payloads")
    name = harness.type_name

    async def logged() -> list[dict[str, object]]:
        rows = await gateway.store.logs.page(channel=name)
        return [r for r in rows if r["level"] in ("warning", "error")]

    await eventually(logged, timeout=WAIT)
    chat = harness.chat(5)
    await harness.inject_message(chat, "still there?")
    sent = await eventually(lambda: harness.sent(chat), timeout=WAIT)
    assert sent[0].text == "Echo: still there?"


async def test_emoji_rtl_and_long_words_pass_through_intact(harness: PlatformHarness,
                                                             gateway: Gateway) -> None:
    text = ("emoji 😀👍🏽🇺🇦 👨‍👩‍👧 | RTL: שלום עולם · مرحبا بالعالم | long: "
            + "Donaudampfschifffahrtsgesellschaft" * 8)
    chat = harness.chat(6)
    await harness.inject_message(chat, text)

    def joined() -> str:  # a reply split into several lines (IRC's 512 bytes) comes in parts
        return "".join(m.text for m in harness.sent(chat))

    await eventually(lambda: len(joined()) >= len(f"Echo: {text}"), timeout=WAIT)
    assert joined() == f"Echo: {text}"


async def test_media_only_message_gets_a_reply_or_a_logged_skip(harness: PlatformHarness,
                                                                gateway: Gateway) -> None:
    chat = harness.chat(7)
    pid = await harness.inject_media_only(chat)

    async def outcome() -> str | None:
        row = await gateway.store.db.fetchone(
            "SELECT status FROM messages WHERE direction='in' AND platform_id=?", (pid,))
        return row["status"] if row and row["status"] in ("replied", "skipped") else None

    status = await eventually(outcome, timeout=WAIT)
    if status == "replied":
        # the platform took the reply; the user's client may still be receiving it
        sent = await eventually(lambda: harness.sent(chat), timeout=WAIT)
        # The model is told what came (a picture it cannot see, a transcript...), or the
        # sender is told what could not be read (a channel that cannot download files).
        assert len(sent) == 1 and sent[0].text.lower().startswith(
            ("echo: [the user sent", "i could not read what you sent")), sent[0].text
    else:  # the log line is written in the log's next batch, after the status
        assert await eventually(lambda: gateway.store.logs.page(
            channel=harness.type_name, search="skipped"), timeout=WAIT)


async def test_a_poison_message_is_answered_or_quarantined_and_the_channel_goes_on(
        harness: PlatformHarness, gateway: Gateway) -> None:
    """A lone surrogate cannot be encoded as UTF-8, so SQLite cannot store it: the gateway
    answers the text with U+FFFD in its place or keeps it as a dead letter, and the message
    after it is answered either way (it used to be retried forever)."""
    chat = harness.chat(8)
    try:
        await harness.inject_message(chat, "bad \ud800 text")
    except UnicodeEncodeError as exc:
        origin = Path(traceback.extract_tb(exc.__traceback__)[-1].filename)
        if not origin.is_relative_to(Path(fakes_pkg.__file__).parent):
            raise
        pytest.skip(f"{harness.type_name}: its fake writes the wire as UTF-8, which cannot "
                    "carry a lone surrogate (tests/test_poison.py feeds its parser them)")

    async def outcome() -> str | None:
        if [m.text for m in harness.sent(chat)] == ["Echo: bad \ufffd text"]:
            return "answered"
        dead = await gateway.store.db.fetchone("SELECT COUNT(*) AS n FROM dead_letters")
        return "quarantined" if dead is not None and dead["n"] else None

    await eventually(outcome, timeout=WAIT)
    await harness.inject_message(chat, "after the poison")
    await eventually(lambda: "Echo: after the poison" in [m.text for m in harness.sent(chat)],
                     timeout=WAIT)
    assert gateway.channels[harness.type_name].state == ChannelState.ONLINE


def need(flag: bool, what: str, harness: PlatformHarness) -> None:
    if not flag:
        pytest.skip(f"{harness.type_name}: {what}")


def long_reply(harness: PlatformHarness) -> str:
    """Paragraphs enough for at least three parts at the platform's limit."""
    paragraphs: list[str] = []
    while len("\n\n".join(paragraphs)) < 2.2 * harness.max_text:
        paragraphs.append(f"Paragraph {len(paragraphs)}: " + "a rather long sentence " * 30)
    return "\n\n".join(paragraphs)


async def inbound_row(gateway: Gateway, pid: str) -> dict[str, object] | None:
    row = await gateway.store.db.fetchone(
        "SELECT id, status, error, attachments FROM messages WHERE direction='in'"
        " AND platform_id=?", (pid,))
    return dict(row) if row is not None else None


async def failed_row(gateway: Gateway, pid: str) -> dict[str, object]:
    """The inbound row once it is closed as failed."""
    async def failed() -> dict[str, object] | None:
        row = await inbound_row(gateway, pid)
        return row if row is not None and row["status"] == "failed" else None

    row: dict[str, object] = await eventually(failed, timeout=WAIT)
    return row


async def test_a_failed_second_part_is_retried_alone(harness: PlatformHarness,
                                                     gateway: Gateway, fake_llm: FakeOpenAI
                                                     ) -> None:
    need(harness.supports_failures, "sends cannot fail", harness)
    text = long_reply(harness)
    fake_llm.responder = lambda messages: text
    harness.fail_next_send(500, skip=1)  # the first part goes, the second is refused once
    chat = harness.chat(20)
    pid = await harness.inject_message(chat, "long please")
    await eventually(lambda: "".join(m.text for m in harness.sent(chat)) == text, timeout=WAIT)
    await settle(gateway)
    texts = [m.text for m in harness.sent(chat)]
    assert len(texts) == len(set(texts)) >= 3  # no part twice
    row = await inbound_row(gateway, pid)
    assert row is not None and row["status"] == "replied"
    parts = await gateway.store.db.fetchall(
        "SELECT p.status FROM reply_parts p JOIN messages m ON m.id = p.out_id"
        " WHERE m.reply_to=? ORDER BY p.idx", (row["id"],))
    assert [p["status"] for p in parts] == ["sent"] * len(texts)


async def test_a_refused_part_fails_the_reply_and_retry_sends_only_the_rest(
        harness: PlatformHarness, gateway: Gateway, fake_llm: FakeOpenAI) -> None:
    need(harness.supports_failures, "sends cannot fail", harness)
    text = long_reply(harness)
    fake_llm.responder = lambda messages: text
    harness.fail_next_send(400, skip=1)
    chat = harness.chat(21)
    pid = await harness.inject_message(chat, "long please")
    row = await failed_row(gateway, pid)
    assert "part 2 of" in str(row["error"])
    # the platform took part 1 before the refusal; a real server relays it to the user's
    # client a moment later (IRC)
    await eventually(lambda: harness.sent(chat), timeout=WAIT)
    first = [m.text for m in harness.sent(chat)]
    assert len(first) == 1 and text.startswith(first[0])
    assert await gateway.retry(int(row["id"]))  # type: ignore[arg-type]
    await eventually(lambda: "".join(m.text for m in harness.sent(chat)) == text, timeout=WAIT)
    await settle(gateway)
    texts = [m.text for m in harness.sent(chat)]
    assert texts[0] == first[0] and len(texts) == len(set(texts))
    assert len(fake_llm.requests) == 1  # the reply was finished, not asked for again
    row = await inbound_row(gateway, pid)
    assert row is not None and row["status"] == "replied"


async def test_a_lost_answer_is_marked_uncertain_and_never_resent(
        harness: PlatformHarness, gateway: Gateway) -> None:
    need(harness.supports_failures, "sends cannot fail", harness)
    harness.lose_next_send_answer()
    chat = harness.chat(22)
    pid = await harness.inject_message(chat, "did it arrive?")
    row = await failed_row(gateway, pid)
    assert str(row["error"]).startswith("uncertain")
    await settle(gateway)
    assert [m.text for m in harness.sent(chat)] == ["Echo: did it arrive?"]  # once, not again
    logs = await gateway.store.logs.page(channel=harness.type_name)
    assert any("not sent again" in str(r["message"]) or "uncertain" in str(r["message"])
               or "may have been" in str(r["message"]) for r in logs)


async def test_a_streamed_reply_is_one_message_edited_to_the_full_text(
        harness: PlatformHarness, fake_llm: FakeOpenAI, make_gateway) -> None:
    need(harness.supports_edit, "cannot edit messages", harness)
    text = " ".join(f"word{i}" for i in range(60))
    fake_llm.responder = lambda messages: text
    fake_llm.chunk_size = 8
    fake_llm.chunk_delay = 0.03
    gw = await running_gateway(harness, fake_llm, make_gateway, stream_replies=True)
    gw.stream_interval = 0.1
    chat = harness.chat(23)
    await harness.inject_message(chat, "stream it")
    await eventually(lambda: harness.visible(chat) == [text], timeout=WAIT)
    await settle(gw)
    assert harness.visible(chat) == [text]
    assert harness.edits(chat) >= 1


async def test_group_messages_are_answered_by_the_group_reply_rule(
        harness: PlatformHarness, gateway: Gateway) -> None:
    need(harness.supports_groups, "has no groups", harness)
    chat = harness.group_chat()
    quiet = await harness.inject_group_message(chat, "people talking", mention=False)
    await harness.inject_group_message(chat, "hey bot", mention=True)
    sent = await eventually(lambda: harness.sent(chat), timeout=WAIT)
    await settle(gateway)
    assert [m.text for m in harness.sent(chat)] == [sent[0].text]
    assert sent[0].text.startswith("Echo:") and sent[0].text.endswith("hey bot")
    assert await inbound_row(gateway, quiet) is None  # chatter is not even stored


async def test_group_reply_all_answers_every_group_message(
        harness: PlatformHarness, fake_llm: FakeOpenAI, make_gateway) -> None:
    need(harness.supports_groups, "has no groups", harness)
    await running_gateway(harness, fake_llm, make_gateway, group_reply="all")
    chat = harness.group_chat()
    await harness.inject_group_message(chat, "people talking", mention=False)
    sent = await eventually(lambda: harness.sent(chat), timeout=WAIT)
    assert sent[0].text.endswith("people talking")


async def test_attachments_are_journaled_as_metadata(harness: PlatformHarness,
                                                     gateway: Gateway) -> None:
    need(harness.type_name != "local", "has no attachments", harness)
    pid = await harness.inject_media_only(harness.chat(24))
    row = await eventually(lambda: inbound_row(gateway, pid), timeout=WAIT)
    assert row["attachments"]
    kinds = {a["kind"] for a in json.loads(str(row["attachments"]))}
    assert kinds and kinds <= {"image", "audio", "video", "file", "sticker", "location"}


async def test_a_restart_resumes_without_answering_anything_twice(
        harness: PlatformHarness, gateway: Gateway) -> None:
    name = harness.type_name
    chat = harness.chat(25)
    await harness.inject_message(chat, "before")
    await eventually(lambda: harness.sent(chat), timeout=WAIT)
    await settle(gateway)
    if harness.cursor_key is not None:
        state = gateway.store.channel_state.of(name)
        assert await eventually(lambda: state.get(harness.cursor_key), timeout=WAIT)
    await gateway.stop_channel(name)
    if harness.queues_while_down:
        await harness.inject_message(chat, "while down")
    await gateway.start_channel(name)
    harness.attach(gateway)
    await eventually(lambda: gateway.channels[name].state == ChannelState.ONLINE, timeout=WAIT)
    await harness.inject_message(chat, "after")
    expected = ["Echo: before", *(["Echo: while down"] if harness.queues_while_down else []),
                "Echo: after"]
    await eventually(lambda: len(harness.sent(chat)) >= len(expected), timeout=WAIT)
    await settle(gateway)
    assert [m.text for m in harness.sent(chat)] == expected


@pytest.fixture
async def webhook_gateway(harness: PlatformHarness, fake_llm: FakeOpenAI, make_gateway
                          ) -> AsyncIterator[tuple[Gateway, str]]:
    if not harness.webhook:
        pytest.skip(f"{harness.type_name} has no webhook mode")
    gw = await running_gateway(harness, fake_llm, make_gateway, harness.webhook_config())
    server = WebhookServer(gw, "127.0.0.1", 0)
    await server.start()
    try:
        yield gw, f"{server.url}/webhook/{harness.type_name}"
    finally:
        await server.stop()


async def test_webhook_good_bad_and_replayed_signatures(
        harness: PlatformHarness, webhook_gateway: tuple[Gateway, str]) -> None:
    gateway, url = webhook_gateway
    chat = harness.chat(26)
    status, _ = await harness.post_webhook(url, chat, "signed", signature="good")
    assert status == 200
    await eventually(lambda: harness.sent(chat), timeout=WAIT)
    status, forged = await harness.post_webhook(url, chat, "forged", signature="bad")
    assert status in (401, 403)
    status, _ = await harness.post_webhook(url, chat, "signed", signature="replayed")
    assert status in (401, 403) if harness.replay_rejected else status == 200
    await settle(gateway)
    assert [m.text for m in harness.sent(chat)] == ["Echo: signed"]
    assert await inbound_row(gateway, forged) is None
    logs = await gateway.store.logs.page(channel=harness.type_name)
    assert any("rejected" in str(r["message"]) for r in logs)
