"""SIGTERM and SIGINT always end the process, within a bound.

A service manager (systemd, Docker, Kubernetes) sends SIGTERM and waits; a
process that stays, because a connector's ``stop()`` hangs or an abandoned task
ignores cancellation and holds ``asyncio.run``'s teardown, gets SIGKILLed later
or, run by hand, never ends. So the first signal asks for a clean stop and arms
a watchdog; a second signal, or the watchdog, ends the process with
``os._exit``. That is safe because of journal-first: nothing is acknowledged to
a platform before it is durable, so an exit in mid-stop loses nothing and the
next start resumes what was open. The watchdog is a thread: the stop it guards
may have blocked the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["LINGER", "SHUTDOWN_GRACE", "ShutdownGuard"]

_log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 20.0
"""Seconds from the first signal to the end of the process, stopped cleanly or not (each
channel's ``stop()`` gets ``stop_timeout``, 10 s, all in parallel)."""
LINGER = 2.0
"""Seconds the interpreter may take to wind down once the gateway has stopped."""
SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any]


class ShutdownGuard:
    """Catches SIGTERM and SIGINT in the main thread while installed.

    The first signal calls ``on_signal`` in the event loop and arms the watchdog
    (``grace`` seconds, exit status 1); ``stopped()`` then shortens what is left to
    ``linger`` (exit status 0). A second signal exits at once with 128 + its number, as
    the default action would report it. A Python handler that was installed before (a
    web server's own graceful shutdown, in the panel) is still called on the first.
    """

    def __init__(self, grace: float = SHUTDOWN_GRACE, linger: float = LINGER) -> None:
        self.grace = grace
        self.linger = linger
        self._signalled = False
        self._on_signal: Callable[[], object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Handler] = {}
        self._timer: threading.Timer | None = None
        self._deadline = 0.0
        """Monotonic time by which the process ends, once signalled."""

    @staticmethod
    def installed() -> bool:
        """Whether a guard already holds SIGTERM in this process."""
        return isinstance(getattr(signal.getsignal(signal.SIGTERM), "__self__", None),
                          ShutdownGuard)

    def install(self, on_signal: Callable[[], object]) -> None:
        """Take SIGTERM and SIGINT; call from the main thread, inside the running loop."""
        self._loop = asyncio.get_running_loop()
        self._on_signal = on_signal
        for sig in SIGNALS:
            previous = signal.signal(sig, self._handle)
            if callable(previous) and previous is not signal.default_int_handler:
                self._previous[sig] = previous

    def uninstall(self) -> None:
        """Give the signals back (only those still ours); an armed watchdog stays armed."""
        for sig in SIGNALS:
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, self._previous.get(sig, signal.SIG_DFL))

    def stopped(self) -> None:
        """The clean stop after a signal is done: what is left may take ``linger`` more
        (never past the first signal's deadline)."""
        if self._signalled:
            left = max(0.0, min(self.linger, self._deadline - time.monotonic()))
            self._arm(left, 0, "the gateway stopped, but the process did not end "
                      f"within {self.linger:g}s (a task ignores cancellation); exiting")

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signalled:
            self._exit(128 + signum, f"second {name}: exiting without waiting for the stop")
        self._signalled = True
        self._deadline = time.monotonic() + self.grace
        _log.warning("%s received: stopping (at most %gs; a second signal exits at once)",
                     name, self.grace)
        self._arm(self.grace, 1, f"the gateway did not stop within {self.grace:g}s; exiting")
        if self._loop is not None and self._on_signal is not None:
            self._loop.call_soon_threadsafe(self._on_signal)
        previous = self._previous.get(signum)
        if previous is not None:
            previous(signum, frame)

    def _arm(self, seconds: float, status: int, why: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(seconds, self._exit, (status, why))
        self._timer.daemon = True
        self._timer.name = "pyclaw:shutdown-watchdog"
        self._timer.start()

    @staticmethod
    def _exit(status: int, why: str) -> None:
        (_log.warning if status == 0 else _log.error)("%s", why)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
