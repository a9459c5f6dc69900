"""The Discord connector: discord.py's Gateway client inside our loop, replies over REST.

Inbound messages are taken from the Gateway's raw MESSAGE_CREATE frames
(``on_socket_raw_receive``) and judged by the pure parser in ``_parse``, so
even a payload discord.py cannot model is logged instead of vanishing. One
named task submits them in arrival order; discord.py owns heartbeats, RESUME
and zlib; our supervisor task restarts the client with :class:`Backoff` when
discord.py gives up, and stops for good on a bad token or a refused intent.

The Gateway has no acknowledgements: an event is "delivered" once read, so a
crash between reading and journaling loses it. Journaling is the first thing
done with every message to keep that window small.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import discord
import yarl

from pyclaw_app.channels import Connector, ConnectorContext, ProbeResult, split_text
from connectors.discord._parse import channel_id_of, is_ignorable, parse_message_create
from connectors.discord.manifest import MAX_TEXT, SPEC, DiscordConfig
from pyclaw_app.backoff import Backoff
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, ChannelState, Outbound

__all__ = ["CONNECTOR", "DiscordConnector"]

_log = logging.getLogger(__name__)

# Gateway close codes Discord documents as "do not reconnect".
_FATAL_CLOSE = {
    4004: "Discord rejected the bot token (gateway close 4004: authentication failed)",
    4010: "invalid shard (gateway close 4010)",
    4011: "this bot needs sharding (gateway close 4011)",
    4012: "invalid API version (gateway close 4012)",
    4013: "invalid intents (gateway close 4013)",
    4014: "the Message Content intent is not enabled for this bot: turn it on in the "
          "Developer Portal under Bot -> Privileged Gateway Intents (gateway close 4014)",
}
_NETWORK_ERRORS = (OSError, aiohttp.ClientError, asyncio.TimeoutError)
_SEND_TRIES = 3
_PARTIAL_KEEP = 256
_STOP_TIMEOUT = 4.0  # per task; the gateway allows stop() 10 s in all
_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True)
"""Replies may ping the people they name, never @everyone or a whole role."""


@contextlib.contextmanager
def _sdk_errors(what: str) -> Iterator[None]:
    """The one place discord.py and network exceptions become pyclaw's."""
    try:
        yield
    except discord.LoginFailure as exc:
        raise FatalConnectorError("Discord rejected the bot token (401 Unauthorized)") from exc
    except discord.RateLimited as exc:
        raise RetryableError(f"{what}: rate limited by Discord",
                             retry_after=exc.retry_after) from exc
    except discord.HTTPException as exc:
        detail = f"{what}: Discord answered HTTP {exc.status}: {exc.text or exc.response.reason}"
        if exc.code:
            detail += f" (code {exc.code})"
        if exc.status == 401:
            raise FatalConnectorError(f"{what}: Discord rejected the bot token") from exc
        if exc.status == 429:
            raise RetryableError(detail, retry_after=_retry_after(exc)) from exc
        if exc.status >= 500:
            raise RetryableError(detail) from exc
        raise FatalConnectorError(detail) from exc
    except _NETWORK_ERRORS as exc:
        raise RetryableError(f"{what}: Discord unreachable: {exc!r}") from exc


def _retry_after(exc: discord.HTTPException) -> float | None:
    try:
        return float(exc.response.headers.get("Retry-After", ""))
    except ValueError:
        return None


class _GatewayClient(discord.Client):
    """A discord.Client that only forwards Gateway events to the connector's callbacks."""

    def __init__(self, *, on_frame: Callable[[str], None], on_online: Callable[[bool], None],
                 on_disconnect: Callable[[], None]) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        intents.dm_messages = True
        intents.guild_messages = True
        super().__init__(intents=intents, enable_debug_events=True, max_messages=None,
                         chunk_guilds_at_startup=False)
        self._on_frame = on_frame
        self._on_online = on_online
        self._on_disconnect = on_disconnect

    async def on_socket_raw_receive(self, msg: str) -> None:
        self._on_frame(msg)

    async def on_connect(self) -> None:
        self._on_online(False)

    async def on_resumed(self) -> None:
        self._on_online(True)

    async def on_disconnect(self) -> None:
        self._on_disconnect()


class DiscordConnector(Connector):
    spec = SPEC
    config: DiscordConfig

    def __init__(self, name: str, config: DiscordConfig) -> None:
        super().__init__(name, config)
        self._log = _log.getChild(name)
        self._ctx: ConnectorContext | None = None
        self._client: _GatewayClient | None = None
        self._bot_id = ""
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._backoff = Backoff()
        self._online = False
        self._partial: OrderedDict[int, list[str]] = OrderedDict()

    # ---- lifecycle ------------------------------------------------------------------------

    def _token(self) -> str:
        token = self.config.token.get_secret_value().strip() if self.config.token else ""
        if not token:
            raise FatalConnectorError("no Discord bot token configured")
        return token

    def _apply_endpoints(self) -> None:
        """Point discord.py at a compatible server when configured (module-wide in the SDK)."""
        if self.config.api_base:
            discord.http.Route.BASE = self.config.api_base.rstrip("/")
        if self.config.gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.config.gateway_url)

    def _new_client(self) -> _GatewayClient:
        self._client = _GatewayClient(on_frame=self._on_frame, on_online=self._on_online,
                                      on_disconnect=self._on_disconnect)
        return self._client

    async def start(self, ctx: ConnectorContext) -> None:
        if self._runner is not None:
            raise RuntimeError(f"Discord channel {self.name!r} is already started")
        self._ctx = ctx
        try:
            token = self._token()
        except FatalConnectorError as exc:
            ctx.set_state(ChannelState.OFFLINE, str(exc))
            ctx.log("error", str(exc))
            raise
        self._stopping.clear()
        self._apply_endpoints()
        ctx.set_state(ChannelState.CONNECTING, "logging in")
        client = self._new_client()
        try:
            with _sdk_errors("login"):
                await client.login(token)
            self._bot_id = str(client.user.id) if client.user else ""
        except FatalConnectorError as exc:
            await self._discard_client()
            ctx.set_state(ChannelState.OFFLINE, str(exc))
            ctx.log("error", str(exc))
            raise
        except RetryableError as exc:
            await self._discard_client()
            ctx.set_state(ChannelState.DEGRADED, str(exc))
            ctx.log("warning", f"{exc}; will keep retrying")
        self._consumer = asyncio.create_task(self._consume(), name=f"discord:{self.name}:inbound")
        self._runner = asyncio.create_task(self._run(token), name=f"discord:{self.name}:gateway")

    async def stop(self) -> None:
        self._stopping.set()
        await self._discard_client()
        runner, self._runner = self._runner, None
        if runner is not None:
            await _finish(runner, _STOP_TIMEOUT)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._queue.put_nowait(None)  # drain what was already read, then end
            await _finish(consumer, _STOP_TIMEOUT)
        self._ctx = None  # the gateway reports STOPPED; a failed start stays OFFLINE

    async def _discard_client(self) -> None:
        client, self._client = self._client, None
        self._online = False
        if client is not None:
            with contextlib.suppress(*_NETWORK_ERRORS, discord.DiscordException):
                await client.close()

    async def _run(self, token: str) -> None:
        """Keep a Gateway connection: discord.py reconnects and resumes; we restart it when it
        gives up."""
        ctx = self._ctx
        assert ctx is not None
        while not self._stopping.is_set():
            try:
                client = self._client
                if client is None:
                    client = self._new_client()
                    with _sdk_errors("login"):
                        await client.login(token)
                    self._bot_id = str(client.user.id) if client.user else ""
                await client.connect(reconnect=True)
                reason = "gateway connection closed"
            except discord.PrivilegedIntentsRequired:
                return await self._give_up(_FATAL_CLOSE[4014])
            except discord.ConnectionClosed as exc:
                if exc.code in _FATAL_CLOSE:
                    return await self._give_up(_FATAL_CLOSE[exc.code])
                reason = f"gateway closed the connection (code {exc.code})"
            except FatalConnectorError as exc:
                return await self._give_up(str(exc))
            except RetryableError as exc:
                reason = str(exc)
            except (*_NETWORK_ERRORS, discord.HTTPException, discord.GatewayNotFound) as exc:
                reason = f"gateway connection failed: {exc!r}"
            except Exception as exc:  # noqa: BLE001 - e.g. the SDK choking on an event; restart
                self._log.exception("Discord client crashed")
                reason = f"Discord client crashed: {exc!r}"
            if self._stopping.is_set():
                return
            await self._discard_client()
            delay = self._backoff.next_delay()
            ctx.set_state(ChannelState.DEGRADED, reason)
            ctx.log("warning", f"{reason}; reconnecting in {delay:.1f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _give_up(self, reason: str) -> None:
        await self._discard_client()
        if self._ctx is not None:
            self._ctx.set_state(ChannelState.OFFLINE, reason)
            self._ctx.log("error", reason, fatal=True)

    # ---- Gateway events -------------------------------------------------------------------

    def _on_online(self, resumed: bool) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        self._backoff.reset()
        client = self._client
        who = f"@{client.user.name}" if client is not None and client.user else "bot"
        ctx.set_state(ChannelState.ONLINE, f"connected as {who}")
        ctx.heartbeat()
        if resumed:
            ctx.log("info", "gateway session resumed")
        elif not self._online:
            ctx.log("info", f"gateway connected as {who}")
        self._online = True

    def _on_disconnect(self) -> None:
        if self._ctx is None or self._stopping.is_set():
            return
        self._ctx.set_state(ChannelState.DEGRADED, "gateway connection lost; reconnecting")
        if self._online:
            self._ctx.log("warning", "gateway connection lost; reconnecting")
        self._online = False

    def _on_frame(self, raw: str) -> None:
        """Every Gateway frame (already inflated); MESSAGE_CREATE goes to the inbound queue."""
        ctx = self._ctx
        if ctx is None:
            return
        ctx.heartbeat()
        try:
            frame = json.loads(raw)
        except ValueError:
            ctx.log("error", "skipped a Gateway frame that is not JSON", size=len(raw))
            return
        if isinstance(frame, dict) and frame.get("t") == "MESSAGE_CREATE":
            data = frame.get("d")
            self._queue.put_nowait(data if isinstance(data, dict) else {"d": data})

    async def _consume(self) -> None:
        while (data := await self._queue.get()) is not None:
            await self._deliver(data)

    async def _deliver(self, data: dict[str, Any]) -> None:
        ctx = self._ctx
        if ctx is None or is_ignorable(data, self._bot_id):
            return
        inbound = parse_message_create(data, channel=self.name, bot_id=self._bot_id,
                                       thread_parent=self._thread_parent(channel_id_of(data)))
        if inbound is None:
            ctx.log("error", "skipped a malformed MESSAGE_CREATE payload",
                    keys=sorted(str(k) for k in data)[:30])
            return
        if (inbound.is_group and self.config.guild_mode == "mention"
                and not (inbound.mentioned or inbound.reply_to_bot)):
            return
        try:
            await ctx.submit(inbound)
        except Exception as exc:  # noqa: BLE001 - one lost message must not stop the channel
            self._log.exception("could not journal Discord message %s", inbound.platform_id)
            ctx.log("error", f"could not journal message {inbound.platform_id}: {exc!r}")

    def _thread_parent(self, channel_id: str | None) -> str | None:
        client = self._client
        if client is None or channel_id is None:
            return None
        channel = client.get_channel(int(channel_id))
        return str(channel.parent_id) if isinstance(channel, discord.Thread) else None

    # ---- outbound -------------------------------------------------------------------------

    def _rest_client(self) -> _GatewayClient:
        client = self._client
        if client is None or client.user is None or client.is_closed():
            raise RetryableError("Discord client is not connected yet", retry_after=1.0)
        return client

    @staticmethod
    def _target(address: Address) -> int:
        try:
            return int(address.thread or address.chat)
        except ValueError:
            raise FatalConnectorError(f"not a Discord channel id: {address.chat!r}") from None

    async def send(self, outbound: Outbound) -> list[str]:
        client = self._rest_client()
        target = self._target(outbound.address)
        channel = client.get_partial_messageable(target)
        parts = [part for part in split_text(outbound.text, MAX_TEXT) if part]
        key = outbound.journal_id
        done = self._partial.pop(key, []) if key is not None else []
        for index in range(len(done), len(parts)):
            reference = None
            if index == 0 and outbound.reply_to and outbound.reply_to.isdigit():
                reference = discord.MessageReference(message_id=int(outbound.reply_to),
                                                     channel_id=target, fail_if_not_exists=False)
            try:
                sent = await self._send_part(channel, parts[index], reference, _MENTIONS)
            except RetryableError:
                if key is not None and done:
                    self._remember_partial(key, done)
                raise
            done.append(str(sent.id))
        return done

    async def _send_part(self, channel: discord.PartialMessageable, text: str,
                         reference: discord.MessageReference | None,
                         mentions: discord.AllowedMentions) -> discord.Message:
        """One message; discord.py already sleeps through 429s, we retry network blips."""
        backoff = Backoff(base=0.5, cap=5.0)
        for attempt in range(1, _SEND_TRIES + 1):
            try:
                with _sdk_errors("send"):
                    return await channel.send(text, reference=reference,
                                              allowed_mentions=mentions)
            except RetryableError as exc:
                if attempt == _SEND_TRIES:
                    raise
                delay = backoff.next_delay(exc.retry_after or 0.0)
                self._log.info("send attempt %d failed (%s); retrying in %.1fs", attempt, exc,
                               delay)
                await asyncio.sleep(delay)
        raise ConnectorError("send failed")  # unreachable: the loop returns or raises

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """PATCH the message's content; discord.py sits out 429s here as it does for sends.

        The same mention rules as ``send`` apply, so a streamed reply can never
        start pinging @everyone halfway. An unknown message (10008) or one the bot
        did not write (50005) is a FatalConnectorError through ``_sdk_errors``.
        """
        client = self._rest_client()
        if not platform_id.isdigit():
            raise FatalConnectorError(f"not a Discord message id: {platform_id!r}")
        message = client.get_partial_messageable(self._target(address)).get_partial_message(
            int(platform_id))
        with _sdk_errors("edit"):
            await message.edit(content=text, allowed_mentions=_MENTIONS)

    def _remember_partial(self, key: int, done: list[str]) -> None:
        """Parts already delivered, so the gateway's retry of this reply does not repeat them."""
        self._partial[key] = done
        while len(self._partial) > _PARTIAL_KEEP:
            self._partial.popitem(last=False)

    async def typing(self, address: Address) -> None:
        client = self._rest_client()
        with _sdk_errors("typing"):
            await client.get_partial_messageable(self._target(address)).typing()

    async def probe(self) -> ProbeResult:
        try:
            token = self._token()
        except FatalConnectorError as exc:
            return ProbeResult(False, str(exc))
        self._apply_endpoints()
        client = discord.Client(intents=discord.Intents.none())
        base = discord.http.Route.BASE
        try:
            async with asyncio.timeout(15):
                await client.login(token)
            user = client.user
            name = user.name if user else "?"
            return ProbeResult(True, f"connected as @{name}")
        except discord.LoginFailure:
            return ProbeResult(False, "bad token: Discord answered 401 Unauthorized")
        except discord.HTTPException as exc:
            return ProbeResult(False, f"Discord at {base} answered HTTP {exc.status}: {exc.text}")
        except _NETWORK_ERRORS as exc:
            return ProbeResult(False, f"Discord API unreachable at {base}: {exc!r}")
        finally:
            with contextlib.suppress(*_NETWORK_ERRORS, discord.DiscordException):
                await client.close()


async def _finish(task: asyncio.Task[None], timeout: float) -> None:
    """Let a task end by itself within ``timeout``, then cancel it; surface nothing."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elif not task.cancelled() and task.exception() is not None:
        _log.error("task %s failed", task.get_name(), exc_info=task.exception())


CONNECTOR = DiscordConnector
