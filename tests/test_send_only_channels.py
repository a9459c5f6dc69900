"""Seven connection-based channels started to send only (``Connector.receives`` false).

With ``storage.shared`` one instance holds a channel's single receiving connection and
the others answer its conversations through the platform's request API. Each case
starts the real connector with ``receives = False`` against its platform (real Synapse
for Matrix, dovecot and the SMTP server for Email, the fakes of tests/fakes for the
rest, each through its contract harness), seeds ``ctx.state`` with what a receiving
instance keeps there (cursors, sync tokens, device ids, mail threads), then shows typing,
sends a reply part and edits it where the platform can, and checks:

- the platform got them (its own record of what the bot sent, typed and edited);
- nothing was received or subscribed: no ``/sync`` and no ``/messages`` read-back (the
  requests Synapse was asked), no Mattermost or Rocket.Chat WebSocket (nor DDP login), no
  Zulip event queue registered and the receiving instance's queue not deleted, no IMAP
  connection, no signal-cli event stream, no Discord Gateway WebSocket (nor IDENTIFY or
  RESUME);
- ``ctx.state`` is exactly as seeded, and the channel says ONLINE "... (sending only)".

Each check fails if ``receives`` were ignored: the receiving path opens what is counted
here before ``start`` returns (the email reader a moment later, well before its reply
has been delivered), and writes its cursors.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors.discord.manifest import DiscordConfig
from connectors.discord.runtime import DiscordConnector
from connectors.email.manifest import EmailConfig
from connectors.email.runtime import EmailConnector
from connectors.matrix.manifest import MatrixConfig
from connectors.matrix.runtime import DEVICE_KEY, SINCE_KEY, MatrixConnector
from connectors.mattermost.manifest import MattermostConfig
from connectors.mattermost.runtime import CURSOR_KEY as MATTERMOST_CURSOR
from connectors.mattermost.runtime import MattermostConnector
from connectors.rocketchat.manifest import RocketChatConfig
from connectors.rocketchat.runtime import CURSOR_KEY as ROCKETCHAT_CURSOR
from connectors.rocketchat.runtime import RocketChatConnector
from connectors.signal.manifest import SignalConfig
from connectors.signal.runtime import SignalConnector
from connectors.zulip._api import ZulipApi
from connectors.zulip.manifest import ZulipConfig
from connectors.zulip.runtime import CURSOR_KEY as ZULIP_CURSOR
from connectors.zulip.runtime import ZulipConnector
from pyclaw_app.channels import ChannelConfig, ConnectorBase
from pyclaw_app.channels.contract import OutboundFile
from pyclaw_app.errors import FatalConnectorError
from pyclaw_app.model import Address, ChannelState
from tests.contract.harness import PlatformHarness
from tests.contract.harness_discord import DiscordHarness
from tests.contract.harness_email import EmailHarness
from tests.contract.harness_matrix import MatrixHarness
from tests.contract.harness_mattermost import MattermostHarness
from tests.contract.harness_rocketchat import RocketChatHarness
from tests.contract.harness_signal import SignalHarness
from tests.contract.harness_zulip import ZulipHarness
from tests.support import RecordingContext, eventually

WAIT = 30.0
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class RequestLog:
    """An HTTP proxy on 127.0.0.1 that forwards everything to ``upstream`` and keeps each
    request's method and path: what the homeserver was asked, in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(request.method, f"{self.upstream}{request.rel_url}",
                                         headers=headers, data=await request.read(),
                                         allow_redirects=False) as answer:
            body = await answer.read()
            return web.Response(body=body, status=answer.status,
                                content_type=answer.content_type)

    def paths(self, *endings: str) -> list[str]:
        return [path for _, path in self.requests if path.endswith(endings)]


@dataclass
class Platform:
    """One channel's platform, ready: the connector's settings, what a receiving instance
    would have kept in ``ctx.state``, and what the platform recorded."""

    config: dict[str, Any]
    state: dict[str, Any]
    receiving: Callable[[], list[str]]
    """What the bot received or subscribed to, in the platform's words: empty when it only
    sent."""
    typed: Callable[[], int] | None = None
    """How many typing indicators the platform was shown; None where typing is not a
    request of the platform's API."""


Setup = Callable[[Any, str], contextlib.AbstractAsyncContextManager[Platform]]


@contextlib.asynccontextmanager
async def matrix(harness: MatrixHarness, chat: str) -> AsyncIterator[Platform]:
    assert harness.proxy is not None
    log = RequestLog(harness.proxy.url)
    await log.start()
    try:
        yield Platform(
            config={**harness.channel_config(), "homeserver": log.url},
            state={SINCE_KEY: "s72594_4483_1934", DEVICE_KEY: "RECEIVERDEVICE",
                   "e2e_noticed": ["!other:localhost"]},
            receiving=lambda: log.paths("/sync", "/messages"),
            typed=lambda: len(log.paths(f"/typing/{harness.bot}")))
    finally:
        await log.stop()


@contextlib.asynccontextmanager
async def mattermost(harness: MattermostHarness, chat: str) -> AsyncIterator[Platform]:
    fake = harness.fake
    yield Platform(config=harness.channel_config(),
                   state={MATTERMOST_CURSOR: {"at": 1_700_000_000_000,
                                              "channels": {chat: 1_700_000_000_500}}},
                   receiving=lambda: ["websocket"] * fake.sockets_opened,
                   typed=lambda: sum(1 for u, c, _ in fake.typing_log
                                     if u == harness.bot and c == chat))


@contextlib.asynccontextmanager
async def rocketchat(harness: RocketChatHarness, chat: str) -> AsyncIterator[Platform]:
    fake = harness.fake
    yield Platform(config=harness.channel_config(),
                   state={ROCKETCHAT_CURSOR: {"since": 1_700_000_000_000,
                                              "rooms": {chat: 1_700_000_000_500},
                                              "floors": {chat: 1_699_999_999_000}}},
                   receiving=lambda: ["websocket"] * fake.connections
                   + ["ddp login"] * fake.logins)


@contextlib.asynccontextmanager
async def zulip(harness: ZulipHarness, chat: str) -> AsyncIterator[Platform]:
    """The receiving instance's queue is registered first: it must outlive the sender."""
    config = harness.channel_config()
    api = ZulipApi(config["site"], config["email"], config["api_key"])
    try:
        receivers = str((await api.register())["queue_id"])
    finally:
        await api.close()
    queues = harness.fake.queues
    yield Platform(config=config, state={ZULIP_CURSOR: 41},
                   receiving=lambda: [f"registered {q}" for q in queues if q != receivers]
                   + ([] if receivers in queues else [f"deleted {receivers}"]),
                   typed=lambda: sum(1 for t in harness.fake.typing
                                     if t.user_id == harness.bot.user_id))


@contextlib.asynccontextmanager
async def email(harness: EmailHarness, chat: str) -> AsyncIterator[Platform]:
    """The mail being answered is known only from what the receiving instance kept."""
    assert harness.proxy is not None
    proxy = harness.proxy
    yield Platform(config=harness.channel_config(),
                   state={"cursor": {"uidvalidity": 1, "uid": 7},
                          f"thread:{chat}": {"<lunch-1@users.test>": [
                              "<lunch-1@users.test>", "Lunch?", []]}},
                   receiving=lambda: ["imap connection"] * proxy.connections)


@contextlib.asynccontextmanager
async def signal(harness: SignalHarness, chat: str) -> AsyncIterator[Platform]:
    fake = harness.fake
    yield Platform(config=harness.channel_config(), state={},
                   receiving=lambda: ["event stream"] * fake.streams_opened,
                   typed=lambda: len(fake.typing))


@contextlib.asynccontextmanager
async def discord(harness: DiscordHarness, chat: str) -> AsyncIterator[Platform]:
    """Discord keeps nothing in ``ctx.state``; a Gateway session is the receiver's alone."""
    fake = harness.fake
    yield Platform(config=harness.channel_config(), state={},
                   receiving=lambda: ["gateway websocket"] * fake.gateway_requests
                   + ["identify"] * fake.identifies + ["resume"] * fake.resumes,
                   typed=lambda: sum(1 for c, _ in fake.typing if c == chat))


@dataclass(frozen=True)
class Case:
    name: str
    harness: type[PlatformHarness]
    connector: type[ConnectorBase]
    model: type[ChannelConfig]
    platform: Setup
    reply_to: str | None = None


CASES = [
    Case("matrix", MatrixHarness, MatrixConnector, MatrixConfig, matrix),
    Case("mattermost", MattermostHarness, MattermostConnector, MattermostConfig, mattermost),
    Case("rocketchat", RocketChatHarness, RocketChatConnector, RocketChatConfig, rocketchat),
    Case("zulip", ZulipHarness, ZulipConnector, ZulipConfig, zulip),
    Case("email", EmailHarness, EmailConnector, EmailConfig, email,
         reply_to="<lunch-1@users.test>"),
    Case("signal", SignalHarness, SignalConnector, SignalConfig, signal),
    Case("discord", DiscordHarness, DiscordConnector, DiscordConfig, discord),
]


@pytest.fixture
async def started(request: pytest.FixtureRequest) -> AsyncIterator[PlatformHarness]:
    harness = request.param.harness()
    await harness.start()
    yield harness
    await harness.stop()


async def _seeded(values: dict[str, Any]) -> RecordingContext:
    ctx = RecordingContext(channel="standby")
    for key, value in values.items():
        await ctx.state.set(key, value)
    return ctx


@pytest.mark.parametrize(("case", "started"), [(c, c) for c in CASES],
                         ids=[c.name for c in CASES], indirect=["started"])
async def test_a_send_only_connector_sends_and_edits_without_receiving(
        case: Case, started: PlatformHarness) -> None:
    harness = started
    chat = harness.chat(1)
    async with case.platform(harness, chat) as platform:
        ctx = await _seeded(platform.state)
        seeded = dict(ctx.state.values)
        connector = case.connector("standby", case.model(**platform.config))
        connector.receives = False
        await connector.start(ctx)
        try:
            state, reason = ctx.states[-1]
            assert state is ChannelState.ONLINE and reason.endswith("(sending only)"), \
                ctx.states
            address = Address(channel="standby", chat=chat)
            if platform.typed is not None:
                await connector.typing(address)
                await eventually(platform.typed, timeout=WAIT)
            sent = await connector.send_part(address, "hello from the standby", case.reply_to)
            await eventually(lambda: [(m.text.strip(), m.reply_to) for m in harness.sent(chat)]
                             == [("hello from the standby", case.reply_to)], timeout=WAIT)
            if harness.supports_edit:
                await connector.edit(address, sent, "hello, edited from the standby")
                await eventually(lambda: harness.visible(chat)
                                 == ["hello, edited from the standby"], timeout=WAIT)
            assert platform.receiving() == []
        finally:
            await connector.stop()
        assert platform.receiving() == []
        assert ctx.state.values == seeded
        assert ctx.inbound == [] and ctx.crashes == []


def test_every_case_is_a_send_only_channel() -> None:
    """The manifests say what the cases show: the gateway starts these to send only."""
    assert all(c.connector.spec.capabilities.send_only for c in CASES)
    assert [c.connector.spec.name for c in CASES] == [c.name for c in CASES]


@pytest.fixture
async def discord_standby() -> AsyncIterator[DiscordHarness]:
    harness = DiscordHarness()
    await harness.start()
    yield harness
    await harness.stop()


async def test_a_send_only_discord_channel_uploads_files_over_rest(
        discord_standby: DiscordHarness) -> None:
    """Files are a multipart Create Message: the standby sends them without a Gateway."""
    harness = discord_standby
    chat = harness.chat(1)
    ctx = RecordingContext(channel="standby")
    connector = DiscordConnector("standby", DiscordConfig(**harness.channel_config()))
    connector.receives = False
    await connector.start(ctx)
    try:
        sent = await connector.send_file(
            Address(channel="standby", chat=chat),
            OutboundFile(name="notes.txt", mime="text/plain", data=b"minutes of the day\n",
                         caption="today's notes"), None)
    finally:
        await connector.stop()
    assert [(u.message_id, u.channel_id, u.filename, u.data, u.content)
            for u in harness.fake.uploads] == [
        (sent, chat, "notes.txt", b"minutes of the day\n", "today's notes")]
    assert harness.fake.gateway_requests == 0 and ctx.crashes == []


async def test_a_refused_token_fails_a_send_only_discord_start_without_a_gateway(
        discord_standby: DiscordHarness) -> None:
    """The REST login is the check: a bad token stops the start, as it does a receiver's."""
    ctx = RecordingContext(channel="standby")
    connector = DiscordConnector("standby", DiscordConfig(token="not-the-bot-token"))
    connector.receives = False
    with pytest.raises(FatalConnectorError, match="rejected the bot token"):
        await connector.start(ctx)
    await connector.stop()
    assert ctx.states[-1][0] is ChannelState.OFFLINE, ctx.states
    assert "not-the-bot-token" not in repr(ctx.states) + repr(ctx.logs)
    assert discord_standby.fake.gateway_requests == 0
