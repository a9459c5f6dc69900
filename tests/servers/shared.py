"""What the real-server helpers share about running a server: one per test process.

A real server takes seconds to start, so each helper starts one per test process, on
first use, and every test after that shares it (each with its own accounts).
:class:`Shared` is that: it starts the server in a worker thread (so the event loop that
asked goes on), under a lock (two harnesses may ask at once, from two threads), in a
fresh temp directory that is removed at exit, and registers the server's ``kill`` at exit
so no process outlives the tests. A server found dead is started again: in place where
its state must survive (a broker's persisted sessions, the same ports), else a new one.

:func:`stop_process` is the process teardown they share; :func:`free_port` and
:func:`listening` are how they pick ports and see that a server is up.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

__all__ = ["Server", "Shared", "free_port", "listening", "stop_process"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` (a server is up)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def stop_process(process: subprocess.Popen[bytes] | None, *, terminate: bool = False,
                 timeout: float = 5.0) -> None:
    """End ``process`` if it still runs, and reap it.

    With ``terminate`` it gets SIGTERM first and ``timeout`` seconds to end, for a server
    that saves its state or closes its connections on it; SIGKILL otherwise or after that
    (a test server has nothing to save). A process that does not end even then is left,
    rather than failing the teardown (at exit, nothing more could be done about it)."""
    if process is None or process.poll() is not None:
        return
    if terminate:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
            return
    process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)


class Server(Protocol):
    """What :class:`Shared` needs of a server helper."""

    @property
    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def kill(self) -> None: ...


S = TypeVar("S", bound=Server)


class Shared(Generic[S]):
    """One server per test process, started on first use in a thread, killed at exit.

    ``make`` builds the server on its fresh temp directory (and prepares what must exist
    before it starts); :class:`Shared` then starts it. ``ready`` runs after each start in
    the same thread (accounts the tests expect to exist). ``restart``: a server found dead
    is started again as it is, for one whose files and ports must survive (what a test that
    stopped it to prove persistence expects); else a new one is made, the dead one killed
    (what is left of it: one of two processes may still run) and forgotten."""

    def __init__(self, make: Callable[[Path], S], *, prefix: str, restart: bool = False,
                 ready: Callable[[S], None] | None = None) -> None:
        self._make = make
        self._prefix = prefix
        self._restart = restart
        self._ready = ready
        self._server: S | None = None
        self._lock = threading.Lock()

    def get(self) -> S:
        """The running server, started now if there is none (blocking: call it in a thread)."""
        with self._lock:
            server = self._server
            if server is not None and server.alive:
                return server
            if server is None or not self._restart:
                if server is not None:
                    server.kill()
                self._server = None
                root = Path(tempfile.mkdtemp(prefix=self._prefix))
                atexit.register(shutil.rmtree, root, True)
                server = self._make(root)
                atexit.register(server.kill)  # runs before the rmtree: atexit is LIFO
                if self._restart:
                    self._server = server  # a failed start is tried again on these files
            server.start()
            if self._ready is not None:
                self._ready(server)
            self._server = server
            return server

    async def __call__(self) -> S:
        """:meth:`get` in a worker thread, so the asking event loop goes on meanwhile."""
        return await asyncio.to_thread(self.get)
