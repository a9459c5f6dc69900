"""A real mosquitto broker for the tests, started once per test session, plus a cuttable proxy.

``await shared_broker()`` starts ``/usr/sbin/mosquitto`` on 127.0.0.1 with a generated
config in a temp directory: a plain listener and a TLS listener (a self-signed certificate
made with ``openssl``), a password file made by ``mosquitto_passwd``, an ACL, and
persistence on, so a broker restart keeps the sessions and their queued messages (what a
home broker does). ``user`` is the current user: run as root, mosquitto would otherwise
switch to the ``mosquitto`` account, which cannot read the temp directory. The broker is
killed when the test process exits; one that cannot start raises with its log, so the test
fails loudly instead of skipping. ``shared_broker(dynsec=True)`` is a second one whose users
and ACLs come from the dynamic-security plugin, which refuses subscriptions at SUBSCRIBE.

:class:`MqttProxy` sits between the connector and the broker on 127.0.0.1. It forwards
MQTT packets whole and can cut every connection (a network fault), refuse the next
matching PUBLISH with an MQTT 5 PUBACK reason code (what mosquitto itself answers when
its ACL denies a publish), or forward a PUBLISH and cut the connection before its PUBACK
reaches the client (a lost answer).
"""

from __future__ import annotations

import asyncio
import getpass
import glob
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.proxy import Pair, TcpProxy
from tests.servers.shared import Shared, free_port, listening, stop_process

__all__ = ["DYNSEC_PASSWORD", "USERS", "Broker", "MqttProxy", "shared_broker"]

MOSQUITTO = "/usr/sbin/mosquitto"
USERS = {
    "pyclaw": "pyclaw-secret-1",  # the connector: reads and writes under pyclaw/
    "device": "device-secret-1",  # the tests' user: a device or script
    "readonly": "readonly-secret-1",  # may subscribe, every publish is refused
    "writeonly": "writeonly-secret-1",  # may publish, every subscription is refused
}
DYNSEC_PASSWORD = "dynsec-secret-1"
"""Of the dynamic-security broker's ``admin`` and ``nosub`` users."""
_ACL = """\
user pyclaw
topic readwrite pyclaw/#

user device
topic readwrite pyclaw/#

user readonly
topic read pyclaw/#

user writeonly
topic write pyclaw/#
"""
_START_TIMEOUT = 10.0


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")


@dataclass
class Broker:
    """One mosquitto process and the files it runs from."""

    root: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    dynsec: bool = False
    """Users and ACLs from the dynamic-security plugin instead of the password file and
    ACL file: that plugin refuses a SUBSCRIBE it does not allow (SUBACK 0x87), where the
    ACL file grants every subscription and filters at delivery."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> str:
        """The self-signed certificate the TLS listener presents (its own CA)."""
        return str(self.root / "broker.crt")

    @property
    def log_file(self) -> Path:
        return self.root / "mosquitto.log"

    def prepare(self) -> None:
        for tool in (MOSQUITTO, "mosquitto_passwd", "mosquitto_ctrl", "openssl"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (apt-get install mosquitto openssl)")
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", "broker.key", "-out", "broker.crt", cwd=self.root)
        auth = self._dynsec() if self.dynsec else self._password_and_acl_files()
        (self.root / "mosquitto.conf").write_text(f"""\
user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
{auth}
persistence true
persistence_location {self.root}/
log_dest file {self.log_file}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
max_queued_messages 1000

listener {self.port} 127.0.0.1

listener {self.tls_port} 127.0.0.1
certfile {self.root / 'broker.crt'}
keyfile {self.root / 'broker.key'}
""", "utf-8")

    def _password_and_acl_files(self) -> str:
        passwd = self.root / "passwd"
        passwd.touch(mode=0o600)
        for user, password in USERS.items():
            _run("mosquitto_passwd", "-b", str(passwd), user, password, cwd=self.root)
        (self.root / "acl").write_text(_ACL, "utf-8")
        return f"password_file {passwd}\nacl_file {self.root / 'acl'}"

    def _dynsec(self) -> str:
        """``mosquitto_ctrl dynsec init`` makes the admin; ``nosub`` is a user with the same
        password and no roles, so the default ACL (no subscribe, no publish) applies."""
        plugin = next(iter(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")), "")
        if not plugin:
            raise RuntimeError("mosquitto_dynamic_security.so not found (package mosquitto)")
        path = self.root / "dynsec.json"
        _run("mosquitto_ctrl", "dynsec", "init", str(path), "admin", DYNSEC_PASSWORD,
             cwd=self.root)
        data = json.loads(path.read_text("utf-8"))
        admin = data["clients"][0]
        data["clients"].append({**admin, "username": "nosub", "textName": "", "roles": []})
        path.write_text(json.dumps(data), "utf-8")
        return f"plugin {plugin}\nplugin_opt_config_file {path}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.root / "mosquitto.conf")], cwd=self.root,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: "
                                   f"{self._stderr()}\n{self.log()}")
            if all(listening(p) for p in (self.port, self.tls_port)):
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen within {_START_TIMEOUT}s:\n{self.log()}")

    def _stderr(self) -> str:
        if self.process is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read().decode("utf-8", "replace")

    def log(self) -> str:
        return self.log_file.read_text("utf-8", "replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions (persistence) and closes every connection."""
        stop_process(self.process, terminate=True)

    def kill(self) -> None:
        stop_process(self.process)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def restart(self) -> None:
        """Stop and start again on the same ports; sessions survive (persistence)."""
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)


def _prepared(root: Path, *, dynsec: bool) -> Broker:
    broker = Broker(root, dynsec=dynsec)
    broker.prepare()
    return broker


_BROKERS = {flavour: Shared(lambda root, flavour=flavour: _prepared(root, dynsec=flavour),
                            prefix="pyclaw-mosquitto-", restart=True)
            for flavour in (False, True)}
"""One broker per flavour (``dynsec``); a stopped one is started again on its own files and
ports, so its persisted sessions survive."""


async def shared_broker(*, dynsec: bool = False) -> Broker:
    """The process-wide broker (one per flavour), started on first use, killed at exit."""
    return await _BROKERS[dynsec]()


# ---- the proxy -------------------------------------------------------------------------------

_PUBLISH, _PUBACK = 3, 4


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT packet: fixed header byte, Remaining Length varint, body."""
    head = await reader.readexactly(1)
    length, shift, raw = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return head + raw + await reader.readexactly(length)


def _body(packet: bytes) -> bytes:
    i = 1
    while packet[i] & 0x80:
        i += 1
    return packet[i + 1:]


def _publish_of(packet: bytes) -> tuple[str, int | None] | None:
    """(topic, packet id or None for QoS 0) of a PUBLISH packet, None for other packets."""
    if packet[0] >> 4 != _PUBLISH:
        return None
    body = _body(packet)
    size = int.from_bytes(body[:2], "big")
    topic = body[2:2 + size].decode("utf-8", "replace")
    qos = (packet[0] >> 1) & 3
    return topic, int.from_bytes(body[2 + size:4 + size], "big") if qos else None


@dataclass(eq=False)
class _Pair(Pair):
    losing: set[int] = field(default_factory=set)
    """Packet ids of PUBLISHes whose PUBACK is to be lost (the connection cut at it)."""


class MqttProxy(TcpProxy[_Pair]):
    """A TCP proxy to the broker that knows MQTT packet boundaries (see the module doc)."""

    def __init__(self, broker_port: int) -> None:
        super().__init__(broker_port)
        self.broker_port = broker_port
        self._fail: tuple[str, int, int] | None = None  # (topic prefix, reason, skip)
        self._lose: str | None = None
        self.refused: list[tuple[str, int]] = []
        """(topic, reason code) of each PUBLISH the proxy refused."""

    async def drop(self) -> None:
        """Cut every live connection at once, as a network fault would (:meth:`cut`, kept
        awaitable for the callers that await it)."""
        self.cut()

    def fail_next_publish(self, topic_prefix: str, reason: int, *, skip: int = 0) -> None:
        """Answer the QoS 1 PUBLISH to ``topic_prefix...`` after the next ``skip`` ones with a
        PUBACK carrying ``reason`` (MQTT 5), without forwarding it to the broker."""
        self._fail = (topic_prefix, reason, skip)

    def lose_next_publish(self, topic_prefix: str) -> None:
        """Forward the next QoS 1 PUBLISH to ``topic_prefix...``, then cut the connection when
        the broker's PUBACK for it comes back, before the client sees it."""
        self._lose = topic_prefix

    def _pair(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> _Pair:
        return _Pair(client, server)

    async def _upstream(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        """Client to broker, where PUBLISHes are refused or marked for losing their answer."""
        while True:
            packet = await _read_packet(reader)
            publish = _publish_of(packet)
            if publish is not None and publish[1] is not None:
                topic, packet_id = publish
                if self._refuse(pair, topic, packet_id):
                    continue
                if self._lose is not None and topic.startswith(self._lose):
                    self._lose = None
                    pair.losing.add(packet_id)
            pair.server.write(packet)

    def _refuse(self, pair: _Pair, topic: str, packet_id: int) -> bool:
        if self._fail is None or not topic.startswith(self._fail[0]):
            return False
        prefix, reason, skip = self._fail
        if skip:
            self._fail = (prefix, reason, skip - 1)
            return False
        self._fail = None
        self.refused.append((topic, reason))
        pair.client.write(bytes([_PUBACK << 4, 3]) + packet_id.to_bytes(2, "big")
                          + bytes([reason]))
        return True

    async def _downstream(self, reader: asyncio.StreamReader, pair: _Pair) -> None:
        while True:
            packet = await _read_packet(reader)
            if packet[0] >> 4 == _PUBACK and pair.losing:
                packet_id = int.from_bytes(_body(packet)[:2], "big")
                if packet_id in pair.losing:
                    return  # the broker has it; the client never hears so
            pair.client.write(packet)
