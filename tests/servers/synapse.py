"""A real Synapse homeserver for the Matrix tests, started once per test process, plus a proxy.

``await shared_synapse()`` runs ``python -m synapse.app.homeserver`` from this virtualenv
(PyPI ``matrix-synapse``) with a config written into a temp directory: server name
``localhost``, SQLite, one plain-HTTP client listener on 127.0.0.1 and a random port (a
local homeserver speaks HTTP; TLS is a reverse proxy's business), registration closed
except through the shared secret, federation and the key-server warning off, and rate
limits so high that no test is throttled by accident. Users are registered with the
shared-secret HMAC flow of ``/_synapse/admin/v1/register``. The process is killed when
the test process exits; one that cannot start raises with its stderr and log, so the
test fails loudly instead of skipping.

:class:`MatrixProxy` is an HTTP proxy on 127.0.0.1 between the connector and Synapse. It
forwards every request and can cut every connection (the long-poll ``/sync`` dies as it
would in a network fault); script the next new message (not an edit): answer it in
Synapse's wire format with a 429 ``M_LIMIT_EXCEEDED`` and ``retry_after_ms`` (or a 500
``M_UNKNOWN``, or a 400 ``M_BAD_JSON``) without forwarding it, or forward it and cut the
connection before Synapse's answer reaches the client (a lost answer, its repeat included);
serve the next ``/sync`` from an older ``since`` (Synapse then redelivers); and it records
each message event Synapse accepted from the connector (``accepted``).

The small synchronous client here (:meth:`Synapse.call`) is for the tests' own setup
(registration, rooms, the platform tests' scripted users); the contract harness's user
is a matrix-nio client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.servers.shared import Shared, free_port, stop_process

__all__ = ["SERVER_NAME", "MatrixError", "MatrixProxy", "Synapse", "shared_synapse"]

SERVER_NAME = "localhost"
_START_TIMEOUT = 90.0
_LOTS = {"per_second": 10000, "burst_count": 10000}
_CONFIG = """\
server_name: "{name}"
pid_file: {root}/homeserver.pid
public_baseurl: http://127.0.0.1:{port}/
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {root}/homeserver.db
log_config: {root}/log.config
media_store_path: {root}/media
signing_key_path: {root}/signing.key
registration_shared_secret: "{secret}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
enable_registration: false
report_stats: false
suppress_key_server_warning: true
trusted_key_servers: []
federation_domain_whitelist: []
presence:
  enabled: false
url_preview_enabled: false
enable_metrics: false
rc_message: {lots}
rc_registration: {lots}
rc_login:
  address: {lots}
  account: {lots}
  failed_attempts: {lots}
rc_joins:
  local: {lots}
  remote: {lots}
rc_joins_per_room: {lots}
rc_invites:
  per_room: {lots}
  per_user: {lots}
  per_issuer: {lots}
rc_room_creation: {lots}
rc_3pid_validation: {lots}
rc_delayed_event_mgmt: {lots}
rc_presence:
  per_user: {lots}
"""
_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {root}/homeserver.log
    encoding: utf8
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


class MatrixError(Exception):
    """A Matrix error answer to one of the tests' own setup calls."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


@dataclass
class Synapse:
    """One Synapse process and the files it runs from."""

    root: Path
    port: int = field(default_factory=free_port)
    shared_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    """localpart -> (password, access token) of every user registered so far."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{SERVER_NAME}"

    def prepare(self) -> None:
        (self.root / "log.config").write_text(_LOG_CONFIG.format(root=self.root), "utf-8")
        (self.root / "homeserver.yaml").write_text(_CONFIG.format(
            name=SERVER_NAME, root=self.root, port=self.port, secret=self.shared_secret,
            macaroon=secrets.token_hex(16), form=secrets.token_hex(16),
            lots=json.dumps(_LOTS)), "utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", "homeserver.yaml",
             "--generate-keys"], cwd=self.root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"synapse --generate-keys failed ({done.returncode}):\n"
                               f"{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        stderr = (self.root / "stderr.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", "homeserver.yaml"],
            cwd=self.root, stdout=stderr, stderr=stderr,
            env={**os.environ, "SYNAPSE_ASYNC_IO_REACTOR": "0"})
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"synapse exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"synapse did not answer within {_START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        parts = [p.read_text("utf-8", "replace") for p in
                 (self.root / "stderr.log", self.root / "homeserver.log") if p.exists()]
        return "\n".join(parts)

    def kill(self) -> None:
        stop_process(self.process, timeout=10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---- the tests' setup calls ----------------------------------------------------------

    def call(self, method: str, path: str, token: str | None = None,
             body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One client-server API call, synchronously (setup only); raises MatrixError."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return dict(json.loads(answer.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            raise MatrixError(exc.code, json.loads(exc.read() or b"{}")) from None

    def register(self, localpart: str, password: str | None = None, *,
                 displayname: str | None = None, admin: bool = False) -> str:
        """Register ``localpart`` with the shared secret (once); returns its access token."""
        if localpart in self.users:
            return self.users[localpart][1]
        password = password or f"pw-{localpart}-{secrets.token_hex(4)}"
        nonce = self.call("GET", "/_synapse/admin/v1/register")["nonce"]
        digest = hmac.new(self.shared_secret.encode(), b"\x00".join(
            p.encode() for p in (nonce, localpart, password,
                                 "admin" if admin else "notadmin")), hashlib.sha1).hexdigest()
        answer = self.call("POST", "/_synapse/admin/v1/register", body={
            "nonce": nonce, "username": localpart, "password": password, "admin": admin,
            "displayname": displayname or localpart, "mac": digest})
        self.users[localpart] = (password, str(answer["access_token"]))
        return str(answer["access_token"])

    def password(self, localpart: str) -> str:
        return self.users[localpart][0]

    def token(self, localpart: str) -> str:
        return self.users[localpart][1]

    def create_room(self, owner: str, *, invite: list[str] = (), direct: bool = False,
                    name: str | None = None, encrypted: bool = False) -> str:
        """A private room created by ``owner`` (a localpart), inviting user ids."""
        body: dict[str, Any] = {"preset": "trusted_private_chat" if direct else "private_chat",
                                "invite": list(invite), "is_direct": direct}
        if name:
            body["name"] = name
        if encrypted:
            body["initial_state"] = [{"type": "m.room.encryption", "state_key": "",
                                      "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
        return str(self.call("POST", "/_matrix/client/v3/createRoom", self.token(owner),
                             body)["room_id"])

    def join(self, localpart: str, room_id: str) -> None:
        quoted = urllib.parse.quote(room_id)
        self.call("POST", f"/_matrix/client/v3/join/{quoted}", self.token(localpart), {})

    def send(self, localpart: str, room_id: str, content: dict[str, Any],
             event_type: str = "m.room.message") -> str:
        """Send an event as ``localpart``; returns its event id."""
        quoted = urllib.parse.quote(room_id)
        txn = secrets.token_hex(8)
        return str(self.call("PUT", f"/_matrix/client/v3/rooms/{quoted}/send/{event_type}/"
                             f"{txn}", self.token(localpart), content)["event_id"])


def _prepared(root: Path) -> Synapse:
    server = Synapse(root)
    server.prepare()
    return server


_SHARED = Shared(_prepared, prefix="pyclaw-synapse-", restart=True)


async def shared_synapse() -> Synapse:
    """The process-wide Synapse, started on first use, killed at exit; one found dead is
    started again on the same database and port (its users and rooms are still there)."""
    return await _SHARED()


# ---- the proxy -------------------------------------------------------------------------------

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class _Fault:
    kind: str  # "status" or "lose"
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    skip: int = 0


class MatrixProxy:
    """An HTTP proxy to Synapse with scripted faults on message sends (see the module doc)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._fault: _Fault | None = None
        self._rate_limited_at: float | None = None
        self.rate_limit_log: list[tuple[float, float]] = []
        """(when a 429 was answered, when the next send arrived) per scripted 429."""
        self.drops = 0
        self.accepted: list[tuple[str, dict[str, Any], str, float]] = []
        """(room id, content, event id, monotonic time) of each message event Synapse
        accepted from the connector, recorded as its answer passed the proxy."""
        self.last_since: str | None = None
        """The ``since`` of the latest ``/sync`` the connector asked for."""
        self._rewind: str | None = None
        self._losing: str | None = None
        """The path of the send whose answers are being cut: aiohttp sends an idempotent
        PUT again once when a kept-alive connection dies, so the repeat is cut too."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self.drop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def drop(self) -> None:
        """Cut every connection at once (in-flight long polls and idle keep-alives)."""
        self.drops += 1
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    def fail_next_send(self, status: int, *, skip: int = 0) -> None:
        code = {429: "M_LIMIT_EXCEEDED", 400: "M_BAD_JSON", 403: "M_FORBIDDEN"}.get(
            status, "M_UNKNOWN")
        self._fault = _Fault("status", status, {"errcode": code,
                                                "error": f"scripted {status}"}, skip)

    def rate_limit_next_send(self, retry_after: float) -> None:
        self._fault = _Fault("status", 429, {
            "errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests",
            "retry_after_ms": int(retry_after * 1000)})

    def lose_next_send(self) -> None:
        self._fault = _Fault("lose")

    def rewind_next_sync(self, since: str | None) -> None:
        """Serve the connector's next ``/sync`` from this older ``since`` token (the one it
        had asked with before an event arrived): Synapse then delivers those events again,
        as it does to a client that lost a batch."""
        self._rewind = since or ""

    def _target(self, request: web.Request) -> str:
        url = request.rel_url
        if request.path.endswith("/sync"):
            if self._rewind is not None:
                query = {k: v for k, v in url.query.items() if k != "since"}
                if self._rewind:
                    query["since"] = self._rewind
                url, self._rewind = url.with_query(query), None
            self.last_since = url.query.get("since")
        return f"{self.upstream}{url}"

    @staticmethod
    def _is_send(request: web.Request, body: bytes) -> bool:
        """A new message (not an edit, whose content carries ``m.new_content``)."""
        return (request.method == "PUT" and "/send/m.room.message/" in request.path
                and b'"m.new_content"' not in body)

    def _scripted(self, request: web.Request, body: bytes) -> _Fault | None:
        if not self._is_send(request, body):
            return None
        if request.path == self._losing:
            return _Fault("lose")
        self._losing = None
        if self._rate_limited_at is not None:
            self.rate_limit_log.append((self._rate_limited_at, time.monotonic()))
            self._rate_limited_at = None
        fault = self._fault
        if fault is None:
            return None
        if fault.skip:
            fault.skip -= 1
            return None
        self._fault = None
        return fault

    def _record(self, request: web.Request, data: bytes, status: int, body: bytes) -> None:
        if status != 200 or request.method != "PUT" or "/send/m.room.message/" not in request.path:
            return
        with contextlib.suppress(ValueError, KeyError, IndexError):
            room = request.raw_path.split("/rooms/", 1)[1].split("/", 1)[0]
            self.accepted.append((urllib.parse.unquote(room), json.loads(data),
                                  str(json.loads(body)["event_id"]), time.monotonic()))

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            self._transports.add(transport)
        data = await request.read()
        fault = self._scripted(request, data)
        if fault is not None and fault.kind == "status":
            if fault.status == 429:
                self._rate_limited_at = time.monotonic()
            return web.json_response(fault.body, status=fault.status)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            async with self._session.request(
                    request.method, self._target(request), headers=headers,
                    data=data, allow_redirects=False) as answer:
                body = await answer.read()
                status, content_type = answer.status, answer.content_type
        except aiohttp.ClientError:
            if transport is not None:
                transport.abort()
            raise
        self._record(request, data, status, body)
        if fault is not None and fault.kind == "lose":
            self._losing = request.path
            if transport is not None:
                transport.abort()  # Synapse has it; the client never hears so
            return web.Response(status=status)
        return web.Response(body=body, status=status, content_type=content_type)
