"""Assemble a running gateway from two paths: the config file and the data directory."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.gateway import Gateway
from pyclaw_app.paths import default_config_path, default_data_dir
from pyclaw_app.secrets import RedactingFilter, SecretStore, open_secret_store
from pyclaw_app.store import Store

__all__ = ["GatewayRuntime", "setup_logging"]


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
        store = await Store(data_dir).open()
        try:
            gateway = Gateway(config, store, Bus())
        except BaseException:
            await store.close()
            raise
        return cls(config_path, data_dir, secrets, store, gateway)

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

    async def stop(self) -> None:
        await self.gateway.stop()
        await self.store.close()
