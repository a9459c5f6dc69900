"""One MQTT connection: a paho-mqtt 2 client driven by our asyncio loop, its outcomes in
pyclaw's words.

Why paho and not aiomqtt (which wraps it the same way): aiomqtt acknowledges every QoS 1
message as soon as it is read (no manual acks), so a crash before the journal has it loses
it, and it drops the PUBACK reason code, so a publish that an MQTT 5 broker refused (ACL:
0x87 Not authorized) looks delivered. Here paho runs with ``manual_ack``: a message is
acknowledged by :meth:`Connection.ack` once it is journaled, and :meth:`publish` returns
the broker's PUBACK code. A Connection is used once: after it is lost a new one is made,
so paho never resends a publish of an old connection by itself (the gateway decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from pyclaw_app.errors import DeliveryUncertain, FatalConnectorError, RetryableError

__all__ = ["Connection", "Settings", "describe_code"]

_TIMEOUT = 15.0
_RETRYABLE_CONNACK = {0x88: "server unavailable", 0x89: "server busy",
                      0x97: "quota exceeded", 0x9F: "connection rate exceeded"}
_RETRYABLE_PUBACK = {0x80, 0x97}
"""PUBACK codes worth another try: unspecified error, quota exceeded. The rest (0x87 not
authorized, 0x90 topic name invalid, 0x99 payload format invalid...) cannot get better."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    client_id: str
    username: str | None
    password: str | None
    v5: bool
    session_expiry: int
    keepalive: int
    tls: ssl.SSLContext | None


def describe_code(code: ReasonCode | int) -> str:
    """``0x87 Not authorized`` for a reason code paho gives as an object or a number."""
    if isinstance(code, ReasonCode):
        return f"0x{code.value:02X} {code.getName()}"
    return f"0x{code:02X}"


def _connack_error(code: ReasonCode, settings: Settings) -> Exception:
    where = f"{settings.host}:{settings.port}"
    what = describe_code(code)
    if code.value in _RETRYABLE_CONNACK:
        return RetryableError(f"the broker at {where} refused the connection for now "
                              f"(CONNACK {what})")
    if code.value in (0x86, 0x87, 0x8C):
        who = f"user {settings.username!r}" if settings.username else "anonymous clients"
        return FatalConnectorError(
            f"the broker at {where} refused the login of {who} (CONNACK {what}): check "
            "username and password (mosquitto_passwd) and that the user may connect")
    if code.value == 0x85:
        return FatalConnectorError(f"the broker at {where} refused client id "
                                   f"{settings.client_id!r} (CONNACK {what}): set client_id")
    return FatalConnectorError(f"the broker at {where} refused the connection (CONNACK {what})")


def _network_error(exc: BaseException, settings: Settings) -> Exception:
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FatalConnectorError(
            f"TLS refused: the broker at {where} presented a certificate that does not verify "
            f"({exc.verify_message}); set ca_file to the CA (or the broker's own certificate)")
    if isinstance(exc, ssl.SSLError):
        return FatalConnectorError(f"TLS refused by the broker at {where} ({exc.reason or exc}):"
                                   " is the port a TLS listener, and tls on?")
    if isinstance(exc, TimeoutError | ConnectionResetError):
        return RetryableError(f"no MQTT answer from {where} ({exc!r}): is it the broker's "
                              "port, and a TLS listener exactly when tls is on?")
    return RetryableError(f"broker unreachable at {where}: {exc!r}")


class _Lost(Exception):
    """The connection ended while a request waited for its answer."""


class Connection:
    """See the module docstring; ``on_traffic`` is called for every packet read."""

    def __init__(self, settings: Settings, on_traffic: Callable[[], None]) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self._on_traffic = on_traffic
        self.messages: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self.lost: asyncio.Future[str] = self._loop.create_future()
        self._connack: asyncio.Future[tuple[bool, ReasonCode]] = self._loop.create_future()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._misc: asyncio.Task[None] | None = None
        self._fd = -1
        self._thread = threading.get_ident()
        paho = self._paho = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id,
            protocol=mqtt.MQTTv5 if settings.v5 else mqtt.MQTTv311,
            clean_session=None if settings.v5 else settings.session_expiry == 0,
            reconnect_on_failure=False, manual_ack=True)
        if settings.username:
            paho.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            paho.tls_set_context(settings.tls)
        paho.on_connect = self._on_connect
        paho.on_disconnect = self._on_disconnect
        paho.on_message = lambda _c, _u, message: self.messages.put_nowait(message)
        paho.on_subscribe = self._on_ack
        paho.on_publish = self._on_publish
        paho.on_socket_open = self._on_socket_open
        paho.on_socket_close = self._on_socket_close
        paho.on_socket_register_write = self._on_register_write
        paho.on_socket_unregister_write = lambda _c, _u, _s: self._threadsafe(self._unwatch_write)

    # ---- connect / close ------------------------------------------------------------------

    async def open(self) -> bool:
        """CONNECT and wait for CONNACK; True when the broker still had our session."""
        s = self.settings
        properties = None
        if s.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = s.session_expiry
        try:
            # paho's connect blocks on DNS, TCP and the TLS handshake: not on our loop
            # (3.1.1 takes the session flag from clean_session, and refuses clean_start)
            clean_start = False if s.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
            await self._loop.run_in_executor(None, lambda: self._paho.connect(
                s.host, s.port, s.keepalive, clean_start=clean_start, properties=properties))
            async with asyncio.timeout(_TIMEOUT):
                present, code = await asyncio.shield(self._connack)
        except (OSError, ssl.SSLError, mqtt.WebsocketConnectionError) as exc:
            self.abort()
            raise _network_error(exc, s) from None
        except TimeoutError:
            self.abort()
            raise RetryableError(f"no CONNACK from {s.host}:{s.port} within {_TIMEOUT:.0f}s "
                                 "(is it an MQTT port?)") from None
        if code.is_failure:
            self.abort()
            raise _connack_error(code, s)
        return present

    async def close(self) -> None:
        """DISCONNECT politely (the broker keeps the session), then drop the socket."""
        if not self.lost.done():
            self._paho.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.shield(self.lost)
        self.abort()

    def abort(self) -> None:
        self._unwatch()
        with contextlib.suppress(OSError):
            sock = self._paho.socket()
            if sock is not None:
                sock.close()
        self._lose("connection closed")
        if self._misc is not None:
            self._misc.cancel()

    def _unwatch(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError, ValueError):  # already closed by paho
                self._loop.remove_reader(fd)
                self._loop.remove_writer(fd)

    def _unwatch_write(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_writer(self._fd)

    def _lose(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(_Lost(reason))

    # ---- requests ---------------------------------------------------------------------------

    async def subscribe(self, topic_filter: str) -> ReasonCode:
        """SUBSCRIBE at QoS 1; the broker's SUBACK code (a failure is >= 0x80)."""
        options = SubscribeOptions(qos=1, noLocal=True,
                                   retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        if self.settings.v5:
            rc, mid = self._paho.subscribe(topic_filter, options=options)
        else:
            rc, mid = self._paho.subscribe(topic_filter, qos=1)
        codes = await self._await(rc, mid, what=f"subscribe to {topic_filter}")
        return codes[0] if codes else ReasonCode(PacketTypes.SUBACK, identifier=0x80)

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool
                      ) -> ReasonCode | None:
        """PUBLISH; with QoS 1 the broker's PUBACK code (always success on MQTT 3.1.1).

        RetryableError when it certainly did not leave (not connected), DeliveryUncertain
        when the connection ended or timed out before the PUBACK, FatalConnectorError or
        RetryableError for a refusal code (see ``_RETRYABLE_PUBACK``)."""
        if self.lost.done():
            raise RetryableError(f"not connected to the broker ({self.lost.result()})",
                                 retry_after=1.0)
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            return None
        try:
            code: ReasonCode = await self._await(info.rc, info.mid, what=f"publish to {topic}")
        except RetryableError as exc:
            raise DeliveryUncertain(f"the connection ended before the broker acknowledged "
                                    f"the publish to {topic}; it may have been delivered "
                                    f"(not sent again): {exc}") from None
        if code.is_failure:
            text = f"the broker refused the publish to {topic} (PUBACK {describe_code(code)})"
            if code.value in _RETRYABLE_PUBACK:
                raise RetryableError(text)
            if code.value == 0x87:
                who = self.settings.username or "anonymous clients"
                text += f": allow {who} to write {topic} in the broker's ACL"
            raise FatalConnectorError(text)
        return code

    async def _await(self, rc: int, mid: int | None, *, what: str) -> Any:
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None or self.lost.done():
            raise RetryableError(f"{what}: not connected ({mqtt.error_string(rc)})")
        fut = self._pending[mid] = self._loop.create_future()
        try:
            async with asyncio.timeout(_TIMEOUT):
                return await fut
        except _Lost:
            raise RetryableError(f"{what}: {self.lost.result()}") from None
        except TimeoutError:
            raise RetryableError(f"{what}: no answer within {_TIMEOUT:.0f}s") from None
        finally:
            self._pending.pop(mid, None)

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK a QoS 1 message (nothing for QoS 0), now that it is journaled."""
        if qos and not self.lost.done():
            self._paho.ack(mid, qos)

    async def next_message(self) -> mqtt.MQTTMessage:
        """The next PUBLISH; RetryableError once the connection is lost and all read ones
        were taken (those not acknowledged are redelivered on the next connection)."""
        if not self.messages.empty():
            return self.messages.get_nowait()
        getter = asyncio.ensure_future(self.messages.get())
        try:
            await asyncio.wait({getter, self.lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        raise RetryableError(self.lost.result())

    # ---- paho callbacks (on our loop, or paho's connect thread: see _threadsafe) ----------

    def _threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` now when paho calls from our loop (it closes a socket right after
        telling us), else on the loop: paho's connect runs in an executor thread."""
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, _c: Any, _u: Any, flags: mqtt.ConnectFlags, code: ReasonCode,
                    _p: Any = None) -> None:
        if not self._connack.done():
            self._connack.set_result((flags.session_present, code))

    def _on_disconnect(self, _c: Any, _u: Any, flags: mqtt.DisconnectFlags, code: ReasonCode,
                       _p: Any = None) -> None:
        if flags.is_disconnect_packet_from_server:
            reason = f"the broker disconnected us (DISCONNECT {describe_code(code)})"
            if code.value == 0x8E:
                reason += (f": another client connected with client id "
                           f"{self.settings.client_id!r}; give each gateway its own client_id")
        else:
            reason = "connection lost" if code.is_failure else "disconnected"
        self._lose(reason)

    def _on_ack(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any = None
                ) -> None:
        fut = self._pending.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(codes)

    def _on_publish(self, _c: Any, _u: Any, mid: int, code: ReasonCode, _p: Any) -> None:
        fut = self._pending.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(code)

    def _on_socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._threadsafe(self._watch, client, sock.fileno())

    def _watch(self, client: mqtt.Client, fd: int) -> None:
        self._fd = fd
        self._loop.add_reader(fd, self._readable, client)
        self._misc = self._loop.create_task(self._misc_loop(), name="mqtt:keepalive")

    def _on_socket_close(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._threadsafe(self._unwatch)
        self._threadsafe(self._lose, "connection lost")

    def _on_register_write(self, client: mqtt.Client, _u: Any, _sock: Any) -> None:
        self._threadsafe(self._watch_write, client)

    def _watch_write(self, client: mqtt.Client) -> None:
        if self._fd >= 0:
            self._loop.add_writer(self._fd, self._writable, client)

    def _readable(self, client: mqtt.Client) -> None:
        self._on_traffic()
        try:
            while True:
                rc = client.loop_read()
                pending = getattr(client.socket(), "pending", None)  # TLS buffers decrypted data
                if rc != mqtt.MQTT_ERR_SUCCESS or not (pending and pending()):
                    break
        except (OSError, ssl.SSLError) as exc:
            self._lose(f"connection lost: {exc!r}")
            return
        if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            self._lose(f"connection lost ({mqtt.error_string(rc)})")

    def _writable(self, client: mqtt.Client) -> None:
        try:
            client.loop_write()
        except (OSError, ssl.SSLError) as exc:
            self._lose(f"connection lost: {exc!r}")

    async def _misc_loop(self) -> None:
        """paho's keep-alive timer: PINGREQ on time, and a dead link noticed."""
        while self._paho.loop_misc() == mqtt.MQTT_ERR_SUCCESS:  # noqa: ASYNC110 - a timer
            await asyncio.sleep(1.0)
        self._lose("keep-alive timed out")
