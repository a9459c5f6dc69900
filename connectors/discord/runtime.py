"""The Discord connector: discord.py's Gateway client inside our loop, replies over REST.

Inbound messages are taken from the Gateway's raw MESSAGE_CREATE frames
(``on_socket_raw_receive``) and judged by the pure parser in ``_parse``, so
even a payload discord.py cannot model is logged instead of vanishing. One
named task submits them in arrival order. discord.py owns heartbeats, RESUME
and zlib; the kit's ``run_connected`` starts a fresh client when discord.py
gives up, and stops for good on a bad token or a refused intent (close codes
4004, 4010-4014). Group messages are not gated here: the parser sets
``is_group``/``mentioned``/``reply_to_bot`` and the gateway applies
``group_reply``. No ``ctx.state`` is kept: the Gateway has no cursor to resume
from after a restart (RESUME lives only as long as discord.py's session).

The Gateway has no acknowledgements: an event is "delivered" once read, so a
crash between reading and journaling loses it. Journaling is the first thing
done with every message to keep that window small, and ``stop`` drains what
was already read before the tasks are cancelled.

Outbound (send, edit, typing) does **not** go through discord.py's HTTP client,
because ``HTTPClient.request`` is a retry layer of its own: it sleeps through
every 429 and sends again (``max_ratelimit_timeout`` cannot help: discord.py
raises it to at least 30 s, so short limits are still slept through), it
resends on 500/502/504/524 up to five times, and on a connection reset (errno
54/10054, i.e. macOS/Windows) it resends a POST whose answer was lost, which
can post the message twice. The gateway is the one retry layer and must see
every outcome, so each part is one request through the kit's
:class:`ChannelHttp` to the same API base discord.py uses (``Route.BASE``,
overridden module-wide by ``api_base``): 429 -> RetryableError with Retry-After,
5xx and refused connections -> RetryableError, a POST whose answer was lost
(server disconnected, reset, read time-out) -> DeliveryUncertain, never resent;
401/403/404 and other 4xx -> FatalConnectorError with Discord's message and
code. Edits and typing are idempotent, so a lost answer there is retryable.

Sending only (``receives`` false, another instance holds the Gateway session): the
connection is discord.py's REST login alone (``GET /users/@me`` and the application,
which checks the token), its client closed again at once. No Gateway WebSocket is opened,
so there is no IDENTIFY, no session and no shard: a second session for the same bot token
would compete with the receiver's and could get it invalidated. Every send, edit, typing
and file goes over REST as above, so nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import discord
import yarl

from connectors.discord._parse import (
    channel_id_of,
    is_ignorable,
    parse_message_create,
    referenced_ids,
)
from connectors.discord.manifest import SPEC, DiscordConfig
from pyclaw_app.channels import ChannelHttp, ConnectorBase, ProbeResult
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable, OutboundFile
from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError
from pyclaw_app.model import Address, Attachment

__all__ = ["CONNECTOR", "DiscordConnector"]

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
_MENTIONS: dict[str, Any] = {"parse": ["users"], "replied_user": True}
"""Allowed mentions of every send and edit: replies may ping the people they name and the
author they answer, never @everyone or a whole role."""
_USER_AGENT = (f"DiscordBot (https://github.com/Rapptz/discord.py {discord.__version__}) "
               f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp.__version__}")
"""Discord wants ``DiscordBot ($url, $version)``; the same one discord.py sends for login and
the Gateway, so the bot's REST and Gateway traffic identify as one client."""
_DRAIN_TIMEOUT = 2.0
UPLOAD_LIMIT = 10 * 2**20
"""What a bot may upload to a server without boosts (Discord's default file limit)."""
MAX_CONTENT = 2000


@contextlib.contextmanager
def _sdk_errors(what: str) -> Iterator[None]:
    """discord.py and network exceptions of login/connect become pyclaw's."""
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
        if exc.status == 429 or exc.status >= 500:
            raise RetryableError(detail) from exc
        raise FatalConnectorError(detail) from exc
    except _NETWORK_ERRORS as exc:
        raise RetryableError(f"{what}: Discord unreachable: {exc!r}") from exc


def _describe(data: Any) -> str | None:
    """Discord's error JSON ``{"message", "code"[, "errors"]}`` as one line."""
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        return None
    text = data["message"]
    if data.get("code"):
        text += f" (code {data['code']})"
    if data.get("errors"):
        text += f": {json.dumps(data['errors'])}"
    return text


def _body_retry_after(data: Any) -> float | None:
    """A 429's ``retry_after`` (seconds, float) when the Retry-After header is missing."""
    value = data.get("retry_after") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) else None


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

    async def on_connect(self) -> None:  # READY: a new session
        self._on_online(False)

    async def on_resumed(self) -> None:
        self._on_online(True)

    async def on_disconnect(self) -> None:
        self._on_disconnect()


class DiscordConnector(ConnectorBase):
    spec = SPEC
    config: DiscordConfig

    def __init__(self, name: str, config: DiscordConfig) -> None:
        super().__init__(name, config)
        self._client: _GatewayClient | None = None
        self._gateway: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._rest: ChannelHttp | None = None
        self._bot_id = ""
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._inbound: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def _apply_endpoints(self) -> None:
        """Point discord.py at a compatible server when configured (module-wide in the SDK)."""
        if self.config.api_base:
            discord.http.Route.BASE = self.config.api_base.rstrip("/")
        if self.config.gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.config.gateway_url)

    async def open(self) -> None:
        token = self.secret("token")
        self._apply_endpoints()
        self._rest = ChannelHttp(
            discord.http.Route.BASE, platform="Discord", secrets=[token],
            auth=lambda: {"Authorization": f"Bot {token}", "User-Agent": _USER_AGENT},
            describe=_describe, rate_limit=_body_retry_after)
        if not self.receives:
            await self.connect_and_keep("login", self._sign_in, self._idle, platform="Discord")
            return
        self._inbound = self.spawn("inbound", self._consume())
        try:
            await self._login()  # a refused token fails start(); a network fault does not
        except RetryableError as exc:
            self.went_degraded(f"{exc}; will keep retrying")
        self._runner = self.spawn("gateway", self.run_connected(self._connect, self._serve))

    async def stop(self) -> None:
        """End the Gateway connection first and journal what was already read from it (the
        Gateway never sends it again), then the kit's stop."""
        runner, inbound = self._runner, self._inbound
        if self.running and runner is not None:
            runner.cancel()  # closes the client: no frame is read after this
            await asyncio.wait({runner}, timeout=_DRAIN_TIMEOUT)
        if self.running and inbound is not None and not inbound.done():
            self._queue.put_nowait(None)  # the consumer ends once it submitted the rest
            await asyncio.wait({inbound}, timeout=_DRAIN_TIMEOUT)
        await super().stop()

    async def close(self) -> None:
        await self._discard_client()
        rest, self._rest = self._rest, None
        if rest is not None:
            await rest.close()

    async def _login(self) -> _GatewayClient:
        client = self._client = _GatewayClient(
            on_frame=self._on_frame, on_online=lambda resumed: self._on_online(client, resumed),
            on_disconnect=lambda: self._on_disconnect(client))
        try:
            with _sdk_errors("login"):
                await client.login(self.secret("token"))
        except BaseException:
            await self._discard_client()
            raise
        self._bot_id = str(client.user.id) if client.user else ""
        return client

    async def _sign_in(self) -> str:
        """Sending only: log in over REST to check the token, then close the client, which
        never connects; what the state says."""
        client = await self._login()
        who = f"@{client.user.name}" if client.user else "bot"
        await self._discard_client()
        return f"connected as {who} (sending only)"

    @staticmethod
    async def _idle() -> None:
        """Sending only: nothing to read, the receiving instance holds the Gateway."""
        await asyncio.Event().wait()

    async def _connect(self) -> None:
        """Log in (unless ``open`` just did) and open the Gateway; returns at READY."""
        client = self._client or await self._login()
        self._ready = ready = asyncio.Event()
        self._gateway = gateway = asyncio.create_task(
            self._run_gateway(client), name=f"discord:{self.name}:websocket")
        waiter = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({gateway, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if gateway.done():  # ended before READY: its error says why
            await self._serve()
            raise RetryableError("gateway connection closed before READY")

    async def _serve(self) -> None:
        """Until the Gateway connection ends for good (discord.py resumes by itself)."""
        gateway = self._gateway
        try:
            if gateway is not None:
                await gateway
        finally:
            await self._discard_client()

    async def _run_gateway(self, client: _GatewayClient) -> None:
        try:
            await client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            raise FatalConnectorError(_FATAL_CLOSE[4014]) from None
        except discord.ConnectionClosed as exc:
            if exc.code in _FATAL_CLOSE:
                raise FatalConnectorError(_FATAL_CLOSE[exc.code]) from None
            raise RetryableError(f"gateway closed the connection (code {exc.code})") from None
        except (*_NETWORK_ERRORS, discord.HTTPException, discord.GatewayNotFound) as exc:
            raise RetryableError(f"gateway connection failed: {exc!r}") from None
        except Exception as exc:  # e.g. the SDK choking on an event: a new client
            self.log.exception("Discord client crashed")
            raise RetryableError(f"Discord client crashed: {exc!r}") from None

    async def _discard_client(self) -> None:
        client, self._client = self._client, None
        gateway, self._gateway = self._gateway, None
        if client is not None:
            with contextlib.suppress(*_NETWORK_ERRORS, discord.DiscordException):
                await client.close()
        if gateway is not None and gateway is not asyncio.current_task():
            gateway.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await gateway

    # ---- Gateway events -------------------------------------------------------------------

    def _on_online(self, client: _GatewayClient, resumed: bool) -> None:
        if not self.running or client is not self._client:
            return
        if not self._ready.is_set():
            self._ready.set()  # the first READY of a client: run_connected reports it
            return
        who = f"@{client.user.name}" if client.user else "bot"
        self.went_online("gateway session resumed" if resumed else f"connected as {who}")

    def _on_disconnect(self, client: _GatewayClient) -> None:
        """discord.py lost the socket and reconnects (RESUME) by itself; a stale client's
        events (one being closed) are not this channel's news."""
        if self.running and client is self._client and self._ready.is_set():
            self.went_degraded("gateway connection lost; discord.py is reconnecting")

    def _on_frame(self, raw: str) -> None:
        """Every Gateway frame (already inflated); MESSAGE_CREATE goes to the inbound queue."""
        if not self.running:
            return
        ctx = self.ctx
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
        ctx = self.ctx
        if is_ignorable(data, self._bot_id):
            return
        inbound = parse_message_create(data, channel=self.name, bot_id=self._bot_id,
                                       thread_parent=self._thread_parent(channel_id_of(data)),
                                       bot_name=self._bot_name(), names=self._names(data))
        if inbound is None:
            ctx.log("error", "skipped a malformed MESSAGE_CREATE payload",
                    keys=sorted(str(k) for k in data)[:30])
            return
        try:
            await ctx.submit(inbound)
        except Exception as exc:  # one lost message must not stop the channel
            self.log.exception("could not journal Discord message %s", inbound.platform_id)
            ctx.log("error", f"could not journal message {inbound.platform_id}: {exc!r}")

    def _bot_name(self) -> str:
        user = self._client.user if self._client is not None else None
        return user.name if user is not None else ""

    def _names(self, data: dict[str, Any]) -> dict[str, str]:
        """Names of the channels and roles a message links to, from discord.py's cache of
        the guilds the Gateway sent (GUILD_CREATE): no request per message."""
        client = self._client
        if client is None:
            return {}
        channels, roles = referenced_ids(data)
        found: dict[str, str] = {}
        for cid in channels:
            linked = client.get_channel(int(cid))
            if linked is not None and isinstance(name := getattr(linked, "name", None), str):
                found[f"#{cid}"] = name
        guild_id = data.get("guild_id")
        guild = (client.get_guild(int(guild_id))
                 if isinstance(guild_id, str) and guild_id.isdigit() else None)
        for rid in roles:
            role = guild.get_role(int(rid)) if guild is not None else None
            if role is not None:
                found[f"&{rid}"] = role.name
        return found

    def _thread_parent(self, channel_id: str | None) -> str | None:
        client = self._client
        if client is None or channel_id is None:
            return None
        channel = client.get_channel(int(channel_id))
        return str(channel.parent_id) if isinstance(channel, discord.Thread) else None

    # ---- outbound (one REST request each; see the module docstring) -----------------------

    def _http(self) -> ChannelHttp:
        rest = self._rest
        if rest is None or not self.running:
            raise RetryableError(f"Discord channel {self.name!r} is not running", retry_after=1.0)
        return rest

    @staticmethod
    def _target(address: Address) -> str:
        target = address.thread or address.chat
        if not target.isdigit():
            raise FatalConnectorError(f"not a Discord channel id: {target!r}")
        return target

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        """POST /channels/{id}/messages once; a thread's id is the channel to post in.

        ``reply_to`` becomes a message reference with ``fail_if_not_exists: false``, so a
        reply to a message deleted meanwhile is still sent, unquoted.
        """
        target = self._target(address)
        body: dict[str, Any] = {"content": text, "allowed_mentions": _MENTIONS}
        if reply_to and reply_to.isdigit():
            body["message_reference"] = {"message_id": reply_to, "channel_id": target,
                                         "fail_if_not_exists": False}
        answer = await self._http().call("POST", f"/channels/{target}/messages", json_body=body)
        message_id = answer.data.get("id") if isinstance(answer.data, dict) else None
        if not isinstance(message_id, str):
            raise DeliveryUncertain(f"Discord accepted the message but answered without its id "
                                    f"(HTTP {answer.status})")
        return message_id

    async def send_file(self, address: Address, file: OutboundFile, reply_to: str | None
                        ) -> str:
        """POST /channels/{id}/messages as multipart/form-data: ``payload_json`` (content,
        the ``attachments`` list, mention rules, the reply reference) and ``files[0]``,
        encoded by discord.py's own ``handle_message_parameters`` from a ``discord.File``,
        and sent once through the kit's client like a text part (a lost answer is
        DeliveryUncertain, never resent)."""
        data = file.content()
        if len(data) > UPLOAD_LIMIT:
            raise FatalConnectorError(f"Discord takes files of up to {UPLOAD_LIMIT // 2**20} MB "
                                      f"from bots; {file.name} is {len(data) / 2**20:.1f} MB")
        target = self._target(address)
        reference = ({"message_id": reply_to, "channel_id": target, "fail_if_not_exists": False}
                     if reply_to and reply_to.isdigit() else discord.utils.MISSING)
        params = discord.http.handle_message_parameters(
            content=file.caption[:MAX_CONTENT] or None,
            file=discord.File(io.BytesIO(data), filename=file.name),
            allowed_mentions=discord.AllowedMentions(everyone=False, users=True, roles=False,
                                                     replied_user=True),
            message_reference=reference)  # its JSON, which discord.py passes on as given
        form = aiohttp.FormData(quote_fields=False)  # Discord wants files[0] unescaped
        for part in params.multipart or ():
            form.add_field(**part)
        answer = await self._http().call("POST", f"/channels/{target}/messages", data=form)
        message_id = answer.data.get("id") if isinstance(answer.data, dict) else None
        if not isinstance(message_id, str):
            raise DeliveryUncertain(f"Discord accepted the file but answered without the "
                                    f"message's id (HTTP {answer.status})")
        return message_id

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """PATCH the message's content with the same mention rules as ``send_part``, so a
        streamed reply can never start pinging @everyone halfway. An unknown message
        (10008) or one the bot did not write (50005) is a FatalConnectorError; a 429 is a
        RetryableError with Retry-After (the gateway waits, not discord.py)."""
        if not platform_id.isdigit():
            raise FatalConnectorError(f"not a Discord message id: {platform_id!r}")
        await self._http().call(
            "PATCH", f"/channels/{self._target(address)}/messages/{platform_id}",
            json_body={"content": text, "allowed_mentions": _MENTIONS}, idempotent=True)

    async def typing(self, address: Address) -> None:
        await self._http().call("POST", f"/channels/{self._target(address)}/typing",
                                idempotent=True)

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """The attachment's signed CDN ``url``, fetched without the bot token (the CDN wants
        none, and the token must not travel with a link a message carried)."""
        if not attachment.url:
            raise AttachmentUnavailable("Discord gave no link for it")
        return AttachmentSource(url=attachment.url, size=attachment.size)

    async def probe(self) -> ProbeResult:
        token = self.secret_or_none("token")
        if token is None:
            return ProbeResult(False, "the Discord bot token is not set")
        self._apply_endpoints()
        client = discord.Client(intents=discord.Intents.none())
        base = discord.http.Route.BASE
        try:
            async with asyncio.timeout(15):
                await client.login(token)
            user = client.user
            return ProbeResult(True, f"connected as @{user.name if user else '?'}")
        except discord.LoginFailure:
            return ProbeResult(False, "bad token: Discord answered 401 Unauthorized")
        except discord.HTTPException as exc:
            return ProbeResult(False, f"Discord at {base} answered HTTP {exc.status}: {exc.text}")
        except _NETWORK_ERRORS as exc:
            return ProbeResult(False, f"Discord API unreachable at {base}: {exc!r}")
        finally:
            with contextlib.suppress(*_NETWORK_ERRORS, discord.DiscordException):
                await client.close()


CONNECTOR = DiscordConnector
