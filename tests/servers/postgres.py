"""A real PostgreSQL server for the tests, started once per test process.

``await shared_postgres()`` runs Debian's PostgreSQL (``initdb`` + ``postgres``) on
127.0.0.1 in a temp directory, with password (SCRAM) authentication for the superuser
``pyclaw`` over TCP, as a deployment would have it; run as root, the server runs as the
``postgres`` account, since PostgreSQL refuses to run as root. Durability is switched off
(``fsync``, ``synchronous_commit``, ``full_page_writes``): a test cluster lives for one
process, and those settings change nothing the gateway can observe but the speed.
:meth:`Postgres.new_database` gives each test an empty database of its own.
A server that cannot start raises with its log: the test fails, never skips.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.servers.shared import Shared, free_port, listening, stop_process

__all__ = ["PASSWORD", "USER", "Postgres", "shared_postgres"]

USER = "pyclaw"
PASSWORD = "pg-test-secret-1"
_START_TIMEOUT = 30.0
_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off",
             "max_connections=300", "shared_buffers=32MB", "log_min_messages=warning")


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found[-1]


def _as_server_user() -> dict[str, str]:
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


@dataclass
class Postgres:
    """One PostgreSQL cluster and the process serving it."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str) -> str:
        """A URL for ``dbname`` without the password (that comes from the secret store)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    def prepare(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        done = subprocess.run(
            [_bin("initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
             "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8",
             "--locale=C.UTF-8", "--no-sync"],
            capture_output=True, text=True, check=False, **_as_server_user())  # type: ignore[call-overload]
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr}")

    def start(self) -> None:
        args = [_bin("postgres"), "-D", str(self.data), "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.root}"]
        for setting in _SETTINGS:
            args += ["-c", setting]
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        **_as_server_user())  # type: ignore[call-overload]
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"PostgreSQL did not start:\n{self.log()}")
            time.sleep(0.05)
        while True:  # listening comes a moment before the server takes queries
            try:
                with self.admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                               dbname=dbname, autocommit=True, connect_timeout=5)

    def new_database(self) -> str:
        """An empty database for one test; returns its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        try:
            return self.log_file.read_text("utf-8", "replace")[-4000:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        stop_process(self.process, terminate=True)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _prepared(root: Path) -> Postgres:
    server = Postgres(root)
    server.prepare()
    return server


shared_postgres = Shared(_prepared, prefix="pyclaw-pg-", restart=True)
