"""The Signal connector: signal-cli's HTTP daemon, JSON-RPC for calls, server-sent events in.

``run_connected`` keeps one event stream (``GET /api/v1/events?account=...``): ``connect``
opens it and asks the daemon for the account's groups (``listGroups``: a local call that
fails with a clear line when the daemon has no such account), ``serve`` reads it until it
ends; signal-cli writes a keep-alive comment every 15 s, so ``event_timeout`` seconds of
silence mean a dead stream, opened again.

What survives a disconnect is signal-cli's, not ours: its events carry no ids and it
replays nothing (no ``Last-Event-ID``). Started with ``--receive-mode manual`` it fetches
messages from Signal's servers only while an event stream is open, so what arrives while
the channel is away waits there and comes when the stream is back; with the default
(``on-start``) the daemon reads and drops them. Each event is journaled before the next
is read, with the platform id ``<author>:<timestamp>`` that names a Signal message, so a
message handed over twice is answered once; nothing needs a cursor in ``ctx.state``. A
message the journal refuses is submitted again until it is stored: the stream has no way
to hand it over again.

Replies are ``send`` with ``recipient`` or ``groupId``, the first part quoting the message
it answers (``quoteTimestamp``, ``quoteAuthor``); a streamed reply is edited with
``send`` + ``editTimestamp`` (the original message's timestamp, as Signal's apps do); the
typing indicator is ``sendTyping`` (Signal's apps clear it when the message arrives, so
no STOP is sent).

Sending only (``receives`` false, another instance reads the events): the connection is
``listGroups`` alone (the same account check); no event stream is opened, so a daemon in
``--receive-mode manual`` fetches nothing from Signal on this instance's behalf, and
``send``, edits and ``sendTyping`` are the JSON-RPC calls they always are.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

import aiohttp

from connectors.signal._parse import (
    Skip,
    decode_event,
    event_account,
    group_id,
    parse_event,
    split_id,
)
from connectors.signal._rpc import SignalRpc, classify_http
from connectors.signal._sse import SseDecoder
from connectors.signal.manifest import SPEC, SignalConfig
from pyclaw_app.backoff import Backoff
from pyclaw_app.channels import ChannelHttp, ConnectorBase, ProbeResult
from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    PyclawError,
    RetryableError,
)
from pyclaw_app.model import Address, Attachment, Inbound

__all__ = ["CONNECTOR", "EVENTS_PATH", "SignalConnector"]

EVENTS_PATH = "/api/v1/events"
CHECK_PATH = "/api/v1/check"


class SignalConnector(ConnectorBase):
    spec = SPEC
    config: SignalConfig

    def __init__(self, name: str, config: SignalConfig) -> None:
        super().__init__(name, config)
        self._rpc: SignalRpc | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stream: aiohttp.ClientResponse | None = None
        self._warned_account = ""

    # ---- lifecycle ------------------------------------------------------------------------

    def _make_rpc(self) -> SignalRpc:
        token = self.secret_or_none("bearer_token")
        http = ChannelHttp(self.config.url, platform="signal-cli",
                           auth=lambda: {"Authorization": f"Bearer {token}"} if token else {},
                           secrets=[token] if token else [],
                           timeout=self.config.request_timeout, classify=classify_http)
        return SignalRpc(http, self.config.account)

    def _headers(self) -> dict[str, str]:
        token = self.secret_or_none("bearer_token")
        return {"Accept": "text/event-stream",
                **({"Authorization": f"Bearer {token}"} if token else {})}

    async def open(self) -> None:
        self._rpc = self._make_rpc()
        if self.receives:
            self._session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(
                total=None, connect=self.config.request_timeout,
                sock_read=self.config.event_timeout))
        await self.connect_and_keep("events", self._connect,
                                    self._serve if self.receives else self._idle,
                                    platform="signal-cli")

    async def close(self) -> None:
        self._drop_stream()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        rpc, self._rpc = self._rpc, None
        if rpc is not None:
            await rpc.http.close()

    def _drop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    async def probe(self) -> ProbeResult:
        rpc = self._make_rpc()
        try:
            await rpc.http.call("GET", CHECK_PATH)
            groups = await rpc.call("listGroups", {}, sent_matters=False)
        except ConnectorError as exc:
            return ProbeResult(False, str(exc))
        finally:
            await rpc.http.close()
        count = len(groups) if isinstance(groups, list) else 0
        return ProbeResult(True, f"connected as {self.config.account} through signal-cli "
                           f"({count} group{'' if count == 1 else 's'})")

    async def _connect(self) -> str:
        self._drop_stream()
        if self.receives:
            self._stream = await self._open_stream()
        try:
            groups = await self._live().call("listGroups", {}, sent_matters=False)
        except BaseException:
            self._drop_stream()
            raise
        count = len(groups) if isinstance(groups, list) else 0
        return (f"connected as {self.config.account}, in {count} group"
                f"{'' if count == 1 else 's'}{'' if self.receives else ' (sending only)'}")

    async def _open_stream(self) -> aiohttp.ClientResponse:
        session = self._session
        if session is None:
            raise RetryableError("the Signal channel is not running")
        url = f"{self.config.url}{EVENTS_PATH}"
        try:
            response = await session.get(url, params={"account": self.config.account},
                                         headers=self._headers(), allow_redirects=False)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise FatalConnectorError(
                f"the TLS certificate of {self.config.url} was refused ({exc.certificate_error})"
                ": give the proxy a certificate this machine trusts") from None
        except aiohttp.ClientConnectorSSLError as exc:
            raise FatalConnectorError(f"TLS with {self.config.url} failed ({exc}); is it "
                                      "https at all?") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableError(f"signal-cli at {self.config.url} unreachable: "
                                 f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if response.status == 200:
            return response
        response.close()
        raise self._stream_refused(response.status)

    def _stream_refused(self, status: int) -> ConnectorError:
        said = f"signal-cli refused the event stream (HTTP {status})"
        if status == 400:
            return FatalConnectorError(f"{said}: the daemon has no account "
                                       f"{self.config.account}; register or link it with "
                                       "signal-cli, or set account to the number it serves")
        if status in (401, 403):
            return FatalConnectorError(f"{said}: check bearer_token, the reverse proxy in "
                                       "front of signal-cli wants another")
        if status == 421:
            return FatalConnectorError(f"{said}: it answers only to the address it listens "
                                       "on (--http HOST:PORT); use that address in url")
        if status in (404, 405):
            return FatalConnectorError(f"{said}: not signal-cli's HTTP daemon; start it with "
                                       "`signal-cli -a +NUMBER daemon --http 127.0.0.1:8080`")
        if 300 <= status < 400:
            return FatalConnectorError(f"{said}: redirects are not followed; check url")
        return RetryableError(said)

    # ---- receiving ------------------------------------------------------------------------

    async def _serve(self) -> None:
        stream = self._stream
        if stream is None:
            raise RetryableError("no event stream")
        decoder = SseDecoder()
        try:
            while True:
                try:
                    chunk = await stream.content.readany()
                except TimeoutError:
                    raise RetryableError(f"no keep-alive from signal-cli for "
                                         f"{self.config.event_timeout:g}s") from None
                except (aiohttp.ClientError, ConnectionError) as exc:
                    raise RetryableError(f"the event stream broke: {type(exc).__name__}: "
                                         f"{exc}".rstrip(": ")) from None
                if not chunk:
                    raise RetryableError("signal-cli ended the event stream")
                self.ctx.heartbeat()
                for event in decoder.feed(chunk):
                    if event.event == "receive":
                        await self._event(event.data)
                if decoder.oversized:
                    self.ctx.log("warning", f"skipped {decoder.oversized} event(s) longer "
                                 "than the stream's line limit")
                    decoder.oversized = 0
        finally:
            self._drop_stream()

    async def _idle(self) -> None:
        """Sending only: nothing to read, the receiving instance holds the event stream."""
        await asyncio.Event().wait()

    async def _event(self, data: str) -> None:
        event = decode_event(data)
        parsed = event if isinstance(event, Skip) else \
            parse_event(event, channel=self.name, bot=self.config.account)
        if isinstance(parsed, Skip):
            if parsed.level == "debug":
                self.log.debug("skipped %s", parsed.reason)
            else:
                self.ctx.log(parsed.level, f"skipped {parsed.reason}")
            return
        if isinstance(event, dict):
            self._check_account(event_account(event))
        await self._submit(parsed)

    def _check_account(self, account: str) -> None:
        """Say once when the daemon serves another number than the configured one (a
        single-account daemon ignores the account asked for): replies still go out from
        the daemon's number, and its mentions are the ones recognised."""
        if not account or account == self.config.account or self._warned_account == account:
            return
        self._warned_account = account
        self.ctx.log("warning", f"signal-cli serves {account}, not the configured "
                     f"{self.config.account}; set account to {account}")

    async def _submit(self, inbound: Inbound) -> None:
        """Journal it, trying again while the journal refuses: signal-cli will not hand the
        message over a second time."""
        backoff = Backoff(base=0.5, cap=30.0)
        while True:
            try:
                await self.ctx.submit(inbound)
                return
            except PyclawError as exc:
                delay = backoff.next_delay()
                self.ctx.log("error", f"could not journal Signal message {inbound.platform_id}"
                             f", trying again in {delay:.1f}s: {exc}")
                await asyncio.sleep(delay)

    # ---- sending --------------------------------------------------------------------------

    def _live(self) -> SignalRpc:
        rpc = self._rpc
        if rpc is None or not self.running:
            raise RetryableError(f"Signal channel {self.name!r} is not running",
                                 retry_after=1.0)
        return rpc

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        """signal-cli has already downloaded (and decrypted) what arrived into its own
        attachments folder; ``getAttachment`` hands those bytes over, base64 in the JSON-RPC
        answer (GetAttachmentCommand), so the connector returns them as data."""
        if not attachment.platform_id:
            raise AttachmentUnavailable("signal-cli gave no attachment id for it")
        try:
            result = await self._live().call("getAttachment", {"id": attachment.platform_id},
                                             sent_matters=False)
        except FatalConnectorError as exc:
            raise AttachmentUnavailable(f"signal-cli does not have the file ({exc})") from exc
        encoded = result.get("data") if isinstance(result, dict) else None
        try:
            data = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) \
                else None
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            raise AttachmentUnavailable("signal-cli answered getAttachment without the file")
        return AttachmentSource(data=data, size=len(data))

    @staticmethod
    def _target(address: Address) -> dict[str, Any]:
        gid = group_id(address.chat)
        return {"groupId": gid} if gid is not None else {"recipient": [address.chat]}

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        params: dict[str, Any] = {**self._target(address), "message": text}
        quoted = split_id(reply_to) if reply_to else None
        if quoted is not None:
            params["quoteAuthor"], params["quoteTimestamp"] = quoted
        result = await self._live().call("send", params, sent_matters=True)
        stamp = result.get("timestamp") if isinstance(result, dict) else None
        if not isinstance(stamp, int):
            raise DeliveryUncertain("signal-cli took the message but named no timestamp; it "
                                    "may have been sent, so it is not sent again")
        self._report_partial(address, result)
        return f"{self.config.account}:{stamp}"

    def _report_partial(self, address: Address, result: dict[str, Any]) -> None:
        """A group message that reached some members and not others is sent (the daemon
        says so only in the per-recipient results): the log says who missed it."""
        results = result.get("results")
        failed = [r for r in results if isinstance(r, dict) and r.get("type") != "SUCCESS"] \
            if isinstance(results, list) else []
        if failed:
            kinds = sorted({str(r.get("type")) for r in failed})
            self.ctx.log("warning", f"a message to {address.chat} did not reach "
                         f"{len(failed)} recipient(s): {', '.join(kinds)}")

    async def edit(self, address: Address, platform_id: str, text: str) -> None:
        """``send`` with ``editTimestamp``: Signal apps show the new text in place of the
        message sent at that timestamp. Sending an edit twice is harmless, so a lost answer
        is retryable."""
        sent = split_id(platform_id)
        if sent is None:
            raise FatalConnectorError(f"{platform_id!r} is not a Signal message id")
        await self._live().call("send", {**self._target(address), "message": text,
                                         "editTimestamp": sent[1]}, sent_matters=False)

    async def typing(self, address: Address) -> None:
        try:
            await self._live().call("sendTyping", self._target(address), sent_matters=False)
        except ConnectorError as exc:  # a missing indicator fails no reply
            self.log.debug("typing indicator failed: %s", exc)


CONNECTOR = SignalConnector
