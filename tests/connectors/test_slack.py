"""The Slack connector through the real slack-sdk against the fake Slack, without a gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from connectors.slack._parse import BotIdentity, Ignored, escape_text, parse_event
from connectors.slack.manifest import SlackConfig
from connectors.slack.runtime import SlackConnector
from pyclaw_app.channels import SubmitResult, WebhookRequest
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.fakes.slack_api import BOT_USER_ID, SlackFake
from tests.support import RecordingContext, eventually

Factory = Callable[..., SlackConnector]
Running = tuple[SlackConnector, RecordingContext]
Webhook = tuple[str, RecordingContext]


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def make(fake: SlackFake) -> AsyncIterator[Factory]:
    made: list[SlackConnector] = []

    def factory(**overrides: Any) -> SlackConnector:
        values: dict[str, Any] = {"bot_token": fake.bot_token, "app_token": fake.app_token,
                                  "signing_secret": fake.signing_secret,
                                  "base_url": fake.api_url, **overrides}
        secrets = {k: SecretStr(v) if isinstance(v, str) else v for k, v in values.items()
                   if k in ("bot_token", "app_token", "signing_secret")}
        connector = SlackConnector("slack", SlackConfig(**{**values, **secrets}))
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.stop()


@pytest.fixture
async def running(make: Factory) -> Running:
    connector, ctx = make(), RecordingContext(channel="slack")
    await connector.start(ctx)
    return connector, ctx


class AckCheckingContext(RecordingContext):
    """Fails a message whose envelope was acked before it was journaled."""

    def __init__(self, fake: SlackFake) -> None:
        super().__init__(channel="slack")
        self.fake = fake
        self.acked_early: list[str] = []
        self.gate: asyncio.Event | None = None

    async def submit(self, inbound: Inbound) -> SubmitResult:
        if self.gate is not None:
            await self.gate.wait()
        ts = inbound.platform_id.split(":", 1)[1]
        envs = [e for e in self.fake._pending.values() if e.payload["event"].get("ts") == ts]
        if not envs:
            self.acked_early.append(inbound.platform_id)
        return await super().submit(inbound)


# ---- receiving ----------------------------------------------------------------------


async def test_dm_becomes_inbound_and_is_acked_only_after_journaling(
        fake: SlackFake, make: Factory) -> None:
    connector, ctx = make(), AckCheckingContext(fake)
    await connector.start(ctx)
    assert ctx.states[-1][0] == ChannelState.ONLINE
    payload = fake.message_event("D0001", "hi &amp; 👋 مرحبا", user="U0042")
    env = await fake.deliver(payload)
    await eventually(lambda: env.envelope_id in fake.acks)
    [msg] = ctx.inbound
    ts = payload["event"]["ts"]
    assert msg.platform_id == f"D0001:{ts}"
    assert (msg.address.channel, msg.address.chat, msg.address.thread) == ("slack", "D0001", None)
    assert msg.address.account == BOT_USER_ID
    assert msg.text == "hi & 👋 مرحبا"
    assert (msg.sender_id, msg.sender_name) == ("U0042", "user-u0042")
    assert (msg.is_group, msg.mentioned, msg.reply_to_bot) == (False, False, False)
    assert ctx.acked_early == [] and ctx.heartbeats > 0


async def test_channel_mention_is_answered_in_a_thread(
        fake: SlackFake, running: Running) -> None:
    connector, ctx = running
    top = fake.app_mention_event("C0001", "what is up?")
    await fake.deliver(top)
    threaded = fake.app_mention_event("C0001", "and now?", thread_ts="1700000000.000001")
    await fake.deliver(threaded)
    first, second = await eventually(lambda: ctx.inbound if len(ctx.inbound) == 2 else None)
    assert first.text == "what is up?" and first.address.thread == top["event"]["ts"]
    assert (first.is_group, first.mentioned) == (True, True)
    assert second.address.thread == "1700000000.000001"

    await connector.send_part(first.address, "sure", first.platform_id)
    assert [(p.channel, p.thread_ts, p.text) for p in fake.posts] == [
        ("C0001", top["event"]["ts"], "sure")]


async def test_group_messages_are_flagged_for_the_gateway_not_gated(
        fake: SlackFake, running: Running) -> None:
    """The gateway applies group_reply; the connector submits everything, flagged."""
    connector, ctx = running
    chatter = await fake.deliver(fake.message_event("C0002", "just people talking"))
    await eventually(lambda: chatter.envelope_id in fake.acks)
    [talk] = ctx.inbound
    assert (talk.is_group, talk.mentioned, talk.reply_to_bot) == (True, False, False)

    await fake.deliver(fake.app_mention_event("C0002", "start"))
    start = (await eventually(lambda: ctx.inbound[1:]))[0]
    assert (start.is_group, start.mentioned) == (True, True)
    bot_post = await connector.send_part(start.address, "hello", start.platform_id)
    bot_ts = bot_post.split(":", 1)[1]
    # A follow-up in a thread under the bot's own post, without a mention.
    await fake.deliver(fake.message_event("C0002", "thanks", thread_ts=bot_ts))
    follow = (await eventually(lambda: ctx.inbound[2:]))[0]
    assert follow.reply_to_bot and not follow.mentioned and follow.address.thread == bot_ts
    assert not [entry for entry in ctx.logs if entry[0] == "error"]


async def test_ignored_and_duplicate_envelopes_are_acked_too(
        fake: SlackFake, running: Running) -> None:
    _, ctx = running
    own = fake.message_event("D0001", "echo")
    own["event"]["bot_id"] = "B0BOT"
    edited = fake.message_event("D0001", "x")
    edited["event"]["subtype"] = "message_changed"
    envs = [await fake.deliver(own), await fake.deliver(edited)]
    await eventually(lambda: all(e.envelope_id in fake.acks for e in envs))
    assert ctx.inbound == [] and not [e for e in ctx.logs if e[0] == "error"]

    payload = fake.message_event("D0001", "once")
    first = await fake.deliver(payload)
    await eventually(lambda: first.envelope_id in fake.acks)
    again = await fake.redeliver(f"D0001:{payload['event']['ts']}")
    assert again.retry_attempt == 1
    await eventually(lambda: again.envelope_id in fake.acks)  # a duplicate is acked
    assert [m.text for m in ctx.inbound] == ["once"] and fake.unacked == 0


class GatedContext(RecordingContext):
    """Holds the journal write of one Slack conversation until ``release`` is set."""

    def __init__(self, held: str) -> None:
        super().__init__(channel="slack")
        self.held = held
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def submit(self, inbound: Inbound) -> SubmitResult:
        if inbound.address.chat == self.held:
            self.waiting.set()
            await self.release.wait()
        return await super().submit(inbound)


async def test_one_conversations_pending_journal_write_holds_no_other_conversations_ack(
        fake: SlackFake, make: Factory) -> None:
    """Under a burst the ack must not queue behind every other conversation's commit
    (Slack's 3 s window); within a conversation the order of arrival stays."""
    connector, ctx = make(), GatedContext(held="D000A")
    await connector.start(ctx)
    held = [await fake.deliver(fake.message_event("D000A", f"a{i}")) for i in range(3)]
    await asyncio.wait_for(ctx.waiting.wait(), 10)
    others = [await fake.deliver(fake.message_event(chat, f"{chat} {i}"))
              for i in range(3) for chat in ("D000B", "C000C")]
    await eventually(lambda: all(e.envelope_id in fake.acks for e in others))
    assert not any(e.envelope_id in fake.acks for e in held)  # not acked before journaled
    ctx.release.set()
    await eventually(lambda: all(e.envelope_id in fake.acks for e in held))
    by_chat: dict[str, list[str]] = {}
    for msg in ctx.inbound:
        by_chat.setdefault(msg.address.chat, []).append(msg.text)
    assert by_chat == {"D000A": ["a0", "a1", "a2"], "D000B": [f"D000B {i}" for i in range(3)],
                       "C000C": [f"C000C {i}" for i in range(3)]}
    assert ctx.inbound[-3:] == [m for m in ctx.inbound if m.address.chat == "D000A"]


async def test_media_only_message_is_submitted_with_its_file(
        fake: SlackFake, running: Running) -> None:
    _, ctx = running
    await fake.deliver(fake.message_event("D0003", "", files=[fake.file("cat.png")]))
    [msg] = await eventually(lambda: ctx.inbound)
    assert msg.text == ""
    [att] = msg.attachments
    assert (att.kind, att.name, att.mime) == ("image", "cat.png", "image/png")


# ---- connection handling -------------------------------------------------------------


async def test_an_envelope_in_flight_when_the_socket_drops_comes_again_journaled_once(
        fake: SlackFake, make: Factory) -> None:
    connector, ctx = make(), AckCheckingContext(fake)
    await connector.start(ctx)
    for i in range(3):
        await fake.deliver(fake.message_event("D0001", f"before {i}"))
    await eventually(lambda: len(ctx.inbound) == 3)
    # One message is being journaled when the network fails: its ack cannot arrive.
    ctx.gate = asyncio.Event()
    stuck = await fake.deliver(fake.message_event("D0001", "in flight"))
    await asyncio.sleep(0.05)
    await fake.drop_connection()
    for i in range(3):
        await fake.deliver(fake.message_event("D0001", f"during {i}"))
    ctx.gate.set()
    await eventually(lambda: len(ctx.inbound) == 7 and fake.unacked == 0, timeout=15)
    texts = [m.text for m in ctx.inbound]
    assert texts == [*(f"before {i}" for i in range(3)), "in flight",
                     *(f"during {i}" for i in range(3))]
    assert stuck.envelope_id not in fake.acks  # it came again in a new envelope
    assert fake.connections == 2
    states = [s for s, _ in ctx.states]
    assert states[-2:] == [ChannelState.DEGRADED, ChannelState.ONLINE]
    assert any("reconnected" in e[1] for e in ctx.logs)


async def test_refresh_requested_reconnects_and_is_logged(
        fake: SlackFake, running: Running) -> None:
    _, ctx = running
    await fake.request_refresh()
    await eventually(lambda: fake.connections == 2)
    await fake.deliver(fake.message_event("D0001", "after refresh"))
    assert (await eventually(lambda: ctx.inbound))[0].text == "after refresh"
    assert any("refresh_requested" in e[1] for e in ctx.logs)


async def test_slack_down_at_start_is_retried_in_the_background(
        fake: SlackFake, make: Factory) -> None:
    fake.fail_next("auth.test", 500, count=2)
    connector, ctx = make(), RecordingContext(channel="slack")
    await connector.start(ctx)  # returns: a transient failure is not the user's to fix
    assert ctx.states[-1][0] == ChannelState.DEGRADED
    await eventually(lambda: ctx.states[-1][0] == ChannelState.ONLINE)
    await fake.deliver(fake.message_event("D0001", "finally"))
    assert (await eventually(lambda: ctx.inbound))[0].text == "finally"
    assert fake.calls("auth.test") == 3
    assert [lvl for lvl, _, _ in ctx.logs].count("warning") == 1  # one line per outage
    assert ctx.crashes == []


async def test_a_revoked_app_token_on_reconnect_stops_the_channel_for_good(
        fake: SlackFake, running: Running) -> None:
    _, ctx = running
    fake.app_token = "xapp-rotated"  # our app-level token no longer works
    await fake.drop_connection()
    await eventually(lambda: ctx.states[-1][0] == ChannelState.OFFLINE)
    assert "app-level token" in ctx.states[-1][1] and "invalid_auth" in ctx.states[-1][1]
    opens = fake.calls("apps.connections.open")
    await asyncio.sleep(1.5)
    assert fake.calls("apps.connections.open") == opens  # no retrying a revoked token
    assert ctx.crashes == []  # a fatal error is a state, not a crash


async def test_a_crashed_socket_task_is_reported_to_the_supervisor(
        fake: SlackFake, running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    connector, ctx = running

    async def broken() -> bool:
        raise RuntimeError("SDK bug")

    assert connector._socket is not None
    monkeypatch.setattr(connector._socket, "is_connected", broken)
    [(reason, fatal)] = await eventually(lambda: ctx.crashes)
    assert "slack:slack:socket" in reason and "SDK bug" in reason and not fatal


async def test_stop_is_idempotent_and_safe_after_failed_start(fake: SlackFake, make: Factory
                                                              ) -> None:
    connector, ctx = make(bot_token="xoxb-wrong"), RecordingContext()
    with pytest.raises(FatalConnectorError, match="invalid_auth"):
        await connector.start(ctx)
    assert ctx.states[-1][0] == ChannelState.OFFLINE
    assert any(level == "error" for level, _, _ in ctx.logs)
    await connector.stop()
    await connector.stop()

    bad_app = make(app_token="xapp-wrong")
    with pytest.raises(FatalConnectorError, match="app-level token"):
        await bad_app.start(RecordingContext())
    assert fake.connections == 0


# ---- sending ------------------------------------------------------------------------------


async def test_a_part_is_one_escaped_post_in_the_thread(
        fake: SlackFake, running: Running) -> None:
    connector, _ = running
    address = slack_address("C0001", "1700000000.000009")
    pid = await connector.send_part(address, "Tom & Jerry <3 <!channel>",
                                    "C0001:1700000000.000009")
    [post] = fake.posts
    assert (post.channel, post.thread_ts) == ("C0001", "1700000000.000009")
    assert post.text == "Tom &amp; Jerry &lt;3 &lt;!channel&gt;"  # no @channel ping
    assert pid == f"C0001:{post.ts}"
    flat = await connector.send_part(slack_address("D0001"), "in a DM", None)
    assert fake.posts[-1].thread_ts is None and flat == f"D0001:{fake.posts[-1].ts}"


async def test_a_429_or_5xx_is_retryable_and_not_retried_inside_the_sdk(
        fake: SlackFake, running: Running) -> None:
    connector, _ = running
    fake.rate_limit_next_send(2)
    with pytest.raises(RetryableError, match="ratelimited") as err:
        await connector.send_part(slack_address("D0001"), "hi", None)
    assert err.value.retry_after == 2.0
    fake.fail_next("chat.postMessage", 503)
    with pytest.raises(RetryableError, match="service_unavailable"):
        await connector.send_part(slack_address("D0001"), "hi", None)
    assert fake.calls("chat.postMessage") == 2 and fake.posts == []  # the gateway retries


async def test_a_lost_answer_is_uncertain_and_the_post_is_not_resent(
        fake: SlackFake, running: Running) -> None:
    connector, _ = running
    fake.lose_next_answer("chat.postMessage")
    with pytest.raises(DeliveryUncertain, match="may have been posted"):
        await connector.send_part(slack_address("D0001"), "did it land?", None)
    assert [p.text for p in fake.posts] == ["did it land?"]
    assert fake.calls("chat.postMessage") == 1  # no SDK connection-error retry


async def test_an_unreachable_slack_is_retryable(fake: SlackFake, make: Factory) -> None:
    connector, ctx = make(base_url="http://127.0.0.1:9/api/"), RecordingContext()
    await connector.start(ctx)  # degraded, reconnecting in the background
    assert ctx.states[-1][0] == ChannelState.DEGRADED
    with pytest.raises(RetryableError, match="unreachable"):
        await connector.send_part(slack_address("D0001"), "hi", None)


async def test_refused_post_is_fatal(
        fake: SlackFake, running: Running) -> None:
    connector, _ = running
    fake.bot_token = "xoxb-reinstalled"  # the app was reinstalled: our token is revoked
    with pytest.raises(FatalConnectorError, match="invalid_auth"):
        await connector.send_part(slack_address("D0001"), "hi", None)
    fake.bot_token = connector.secret("bot_token")  # reinstalled with our token after all
    fake.fail_next("chat.postMessage", 400)  # a refusal: HTTP 200 {"ok": false, ...}
    with pytest.raises(FatalConnectorError, match="invalid_arguments"):
        await connector.send_part(slack_address("D0001"), "hi", None)
    assert fake.posts == []


def slack_address(chat: str, thread: str | None = None) -> Address:
    return Address("slack", chat, BOT_USER_ID, thread)


# ---- probe ------------------------------------------------------------------------------


async def test_probe(fake: SlackFake, make: Factory) -> None:
    assert (await make().probe()).message == "connected as @pyclaw"
    bad = await make(bot_token="xoxb-nope").probe()
    assert not bad.ok and "invalid_auth" in bad.message
    bad_app = await make(app_token="xoxb-not-an-app-token").probe()
    assert not bad_app.ok and "not_allowed_token_type" in bad_app.message
    missing = await make(bot_token=None).probe()
    assert not missing.ok and "not set" in missing.message
    gone = await make(base_url="http://127.0.0.1:9/api/").probe()
    assert not gone.ok and "unreachable at http://127.0.0.1:9/api/" in gone.message


async def test_fake_answers_unknown_methods_like_slack(fake: SlackFake) -> None:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    with pytest.raises(SlackApiError) as err:
        await client.api_call("conversations.teleport")
    assert err.value.response["error"] == "unknown_method"


# ---- Events API over HTTP ----------------------------------------------------------------


@pytest.fixture
async def webhook(make: Factory) -> AsyncIterator[Webhook]:
    connector, ctx = make(mode="events", app_token=None), RecordingContext(channel="slack")
    await connector.start(ctx)

    async def route(request: web.Request) -> web.Response:
        answer = await connector.handle_webhook(WebhookRequest(
            method=request.method, body=await request.read(), headers=dict(request.headers),
            query=dict(request.query), path=request.path))
        return web.Response(status=answer.status, text=str(answer.body))

    app = web.Application()
    app.router.add_route("*", "/slack/events", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/slack/events", ctx
    await runner.cleanup()


async def test_events_api_verifies_journals_and_dedupes_retries(
        fake: SlackFake, webhook: Webhook) -> None:
    url, ctx = webhook
    assert await fake.post_event(url, {"type": "url_verification", "challenge": "c-123",
                                       "token": "x"}) == (200, "c-123")
    payload = fake.app_mention_event("C0001", "over http")
    assert await fake.post_event(url, payload) == (200, "")
    assert await fake.post_event(url, payload, retry_num=1) == (200, "")
    assert [(m.text, m.address.thread) for m in ctx.inbound] == [
        ("over http", payload["event"]["ts"])]


async def test_events_api_rejects_bad_or_stale_signatures(
        fake: SlackFake, webhook: Webhook) -> None:
    url, ctx = webhook
    payload = fake.message_event("D0001", "forged")
    assert (await fake.post_event(url, payload, secret="wrong"))[0] == 401
    stale = int(time.time()) - 600
    assert (await fake.post_event(url, payload, timestamp=stale))[0] == 401
    assert ctx.inbound == []
    assert all("forged" not in str(entry) for entry in ctx.logs)  # no payload in the log
    assert len([e for e in ctx.logs if e[0] == "warning"]) == 2


async def test_events_api_refuses_get_non_objects_and_a_socket_mode_channel(
        fake: SlackFake, webhook: Webhook, running: Running) -> None:
    url, ctx = webhook
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 405
    body = b"[1, 2]"
    async with aiohttp.ClientSession() as session, session.post(
            url, data=body, headers=fake.sign(body)) as resp:
        assert resp.status == 400
    assert ctx.inbound == []
    socket_mode, _ = running
    answer = await socket_mode.handle_webhook(WebhookRequest("POST", b"{}"))
    assert answer.status == 404


# ---- the pure parser ------------------------------------------------------------------------

BOT = BotIdentity(user_id=BOT_USER_ID, bot_id="B0BOT", name="pyclaw")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)
event_keys = st.sampled_from(["type", "channel", "user", "ts", "text", "thread_ts", "subtype",
                              "bot_id", "files", "channel_type", "parent_user_id",
                              "user_profile", "hidden"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outer=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
       event=st.dictionaries(event_keys, json_values | st.sampled_from(
           ["message", "app_mention", "file_share", "im", "C1", "1.2", BOT_USER_ID]), max_size=9),
       callback=st.booleans())
def test_parser_never_raises(outer: dict[str, Any], event: dict[str, Any], callback: bool) -> None:
    payload = {**outer, "event": event, "type": "event_callback"} if callback else outer
    result = parse_event(payload, channel="slack", bot=BOT)
    assert result is None or isinstance(result, Inbound | Ignored)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200), channel=st.from_regex(r"\A[CDG][A-Z0-9]{4,10}\Z"),
       ts=st.from_regex(r"\A1[0-9]{9}\.[0-9]{6}\Z"), thread=st.booleans())
def test_parser_round_trips_a_valid_message(text: str, channel: str, ts: str, thread: bool
                                            ) -> None:
    thread_ts = "1600000000.000001" if thread else None
    event = {"type": "message", "channel": channel, "user": "U0001", "ts": ts,
             "text": escape_text(text), "channel_type": "im" if channel[0] == "D" else "channel",
             **({"thread_ts": thread_ts} if thread_ts else {})}
    result = parse_event({"type": "event_callback", "event": event}, channel="s", bot=BOT)
    assert isinstance(result, Inbound)
    assert result.text == text  # escaped on the wire, so never taken for a mention
    assert result.platform_id == f"{channel}:{ts}"
    expected_thread = thread_ts if channel[0] == "D" else (thread_ts or ts)
    assert result.address.thread == expected_thread
    assert result.is_group == (channel[0] != "D")


# ---- edits (streamed replies) ------------------------------------------------------------

GROWING = ["Hello", "Hello, **wor", "Hello, **world** — a < b & c", "Hello, **world** — a < b & "
           "c.\n\n```py\nprint(1)\n```"]
"""Drafts of one streamed reply, as the gateway sends them about once a second."""


@pytest.fixture
async def slack(fake: SlackFake) -> AsyncIterator[SlackConnector]:
    config = SlackConfig(bot_token=SecretStr(fake.bot_token), app_token=SecretStr(fake.app_token),
                         base_url=fake.api_url)
    connector = SlackConnector("slack", config)
    await connector.start(RecordingContext(channel="slack"))
    yield connector
    await connector.stop()


async def test_slack_edits_arrive_in_order_escaped_like_send(
        fake: SlackFake, slack: SlackConnector) -> None:
    address = Address("slack", "C0001", thread="1700000000.000001")
    draft = await slack.send_part(address, "…", None)
    channel, _, ts = draft.partition(":")
    for text in [*GROWING, "<!channel> ping"]:
        await slack.edit(address, draft, text)
    expected = [escape_text(t) for t in [*GROWING, "<!channel> ping"]]
    assert fake.edits(channel, ts) == expected
    assert fake.text_of(channel, ts) == "&lt;!channel&gt; ping"  # no @channel ping


async def test_slack_edit_hands_a_429_to_the_gateway(fake: SlackFake, slack: SlackConnector
                                                     ) -> None:
    """The gateway's one retry layer waits out Retry-After; the SDK does not retry."""
    address = Address("slack", "D0001")
    draft = await slack.send_part(address, "…", None)
    fake.fail_next("chat.update", 429, retry_after=1)
    with pytest.raises(RetryableError) as err:
        await slack.edit(address, draft, "too soon")
    assert err.value.retry_after == 1.0 and fake.calls("chat.update") == 1
    await slack.edit(address, draft, "after the wait")
    assert fake.edits(*draft.split(":")) == ["after the wait"]


async def test_slack_edit_of_a_missing_or_foreign_message_is_fatal(
        fake: SlackFake, slack: SlackConnector) -> None:
    address = Address("slack", "C0001")
    with pytest.raises(FatalConnectorError, match="message_not_found"):
        await slack.edit(address, "C0001:1.000099", "text")
    users = fake.message_event("C0001", "written by a person")["event"]
    with pytest.raises(FatalConnectorError, match="cant_update_message"):
        await slack.edit(address, f"C0001:{users['ts']}", "text")
    draft = await slack.send_part(address, "…", None)
    with pytest.raises(FatalConnectorError, match="msg_too_long"):
        await slack.edit(address, draft, "x" * 40_001)
    assert fake.edits(*draft.split(":")) == []
