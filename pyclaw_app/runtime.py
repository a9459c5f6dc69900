"""Assemble a running gateway from two paths: the config file and the data directory."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.gateway import Gateway
from pyclaw_app.paths import default_config_path, default_data_dir
from pyclaw_app.secrets import RedactingFilter, SecretStore, open_secret_store
from pyclaw_app.shutdown import ShutdownGuard
from pyclaw_app.store import Store

__all__ = ["GatewayRuntime", "setup_logging"]

_log = logging.getLogger(__name__)


def setup_logging(level: int = logging.INFO) -> None:
    """Console logging with the redaction filter on the handler, so no secret is printed."""
    root = logging.getLogger()
    if any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2", "aiosqlite", "flet", "flet_web",
                  "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass
class GatewayRuntime:
    """Secrets, config, store and gateway for two paths; servers are the control layer's."""

    config_path: Path
    data_dir: Path
    secrets: SecretStore
    store: Store
    gateway: Gateway
    guard: ShutdownGuard | None = None
    """Set where a UI framework owns SIGTERM (see ``_guard_signals``)."""
    _stopping: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    @classmethod
    async def open(cls, config_path: Path | None = None, data_dir: Path | None = None, *,
                   only_channels: Collection[str] | None = None) -> GatewayRuntime:
        """Build everything without starting channels (``only_channels`` narrows the set)."""
        config_path = config_path or default_config_path()
        data_dir = data_dir or default_data_dir()
        secrets = open_secret_store(data_dir)
        config = load_config(config_path, secrets)
        if only_channels is not None:
            config.channels = {n: e for n, e in config.channels.items() if n in only_channels}
        store = await Store(data_dir, config.storage).open()
        try:
            gateway = Gateway(config, store, Bus())
        except BaseException:
            await store.close()
            raise
        runtime = cls(config_path, data_dir, secrets, store, gateway)
        runtime._guard_signals()
        return runtime

    @classmethod
    async def start(cls, config_path: Path | None = None, data_dir: Path | None = None, *,
                    only_channels: Collection[str] | None = None) -> GatewayRuntime:
        runtime = await cls.open(config_path, data_dir, only_channels=only_channels)
        try:
            await runtime.gateway.start()
        except BaseException:
            await runtime.store.close()
            raise
        return runtime

    async def hold_store(self, *, standby: bool = False) -> None:
        """Become the store's one gateway, or raise :class:`~pyclaw_app.errors.StoreError`
        naming the one that is; ``standby`` waits for it to stop or die instead (the
        channels and the journal's open rows are then taken over by ``gateway.start()``,
        under the same custody rules as a restart)."""
        def standing_by(holder: str) -> None:
            _log.warning("standing by: %s is the active gateway on this store; taking over "
                         "when it stops", holder)

        await self.store.db.hold_instance_lock(f"{socket.gethostname()} pid {os.getpid()}",
                                               wait=standby, on_wait=standing_by)

    async def join_shared(self) -> None:
        """Be one of the active instances sharing the store (``storage.shared``), or raise
        :class:`~pyclaw_app.errors.StoreError` when a gateway that runs alone holds it."""
        db = self.store.db
        link = db.cluster_link(f"{socket.gethostname()} pid {os.getpid()}")
        instance = await link.join()
        _log.info("sharing the work with the other gateways on %s as instance %d",
                  db.backend, instance)
        self.gateway.share(link, on_fenced=_fence_process,
                           reload=lambda: load_config(self.config_path, self.secrets))

    async def stop(self) -> None:
        """Stop the gateway and close the store, once, though a signal and the caller may
        both ask (it goes on if the caller is cancelled)."""
        await asyncio.shield(self._stop_soon())

    def _guard_signals(self) -> None:
        """Bound the panel's exit on SIGTERM.

        In the panel, Flet (and its web server) own SIGTERM: their graceful shutdown never
        stops the gateway and can wait for open sessions forever, so a second SIGTERM was
        ignored too. A guard chained to their handler stops the gateway as well and ends
        the process within ``SHUTDOWN_GRACE``. Where no Python handler is set, the
        default action ends the process at once; the headless gateway sets its own guard.
        """
        if threading.current_thread() is not threading.main_thread() \
                or ShutdownGuard.installed() or not callable(signal.getsignal(signal.SIGTERM)):
            return
        self.guard = ShutdownGuard()
        self.guard.install(self._stop_soon)

    def _stop_soon(self) -> asyncio.Task[None]:
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(), name="gateway:stop")
            self._stopping.add_done_callback(_report_failure)
        return self._stopping

    async def _stop(self) -> None:
        """In the panel the web server may end the loop first (its own SIGTERM handling
        returns once the sessions are closed), and the loop's end cancels this stop: the
        store is closed all the same, since its worker thread would otherwise hold the
        interpreter's exit until the watchdog ended it as a failed stop."""
        try:
            await self.gateway.stop()
        finally:
            await self.store.close()
            if self.guard is not None:
                self.guard.stopped()
                self.guard.uninstall()


FENCED_EXIT = 75
"""EX_TEMPFAIL: a fenced instance ends so its supervisor (systemd, Kubernetes) starts a new
one, which joins under a new id."""


def _fence_process(why: str) -> None:
    """A shared instance that lost its session ends at once, without the graceful stop:
    the others may already be answering its conversations, and a graceful stop would
    finish its sends (twice)."""
    logging.shutdown()
    sys.stderr.write(f"pyclaw: fenced, exiting: {why}\n")
    os._exit(FENCED_EXIT)


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("stopping the gateway failed", exc_info=task.exception())
