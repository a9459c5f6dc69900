"""Assemble a running gateway from two paths: the config file and the data directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pyclaw_app.bus import Bus
from pyclaw_app.config import Config, load_config
from pyclaw_app.control.webhooks import WebhookServer
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
    config_path: Path
    data_dir: Path
    secrets: SecretStore
    store: Store
    gateway: Gateway
    webhooks: WebhookServer | None = None

    @classmethod
    async def start(cls, config_path: Path | None = None, data_dir: Path | None = None
                    ) -> GatewayRuntime:
        config_path = config_path or default_config_path()
        data_dir = data_dir or default_data_dir()
        secrets = open_secret_store(data_dir)
        config = load_config(config_path, secrets)
        store = await Store(data_dir).open()
        webhooks = None
        try:
            gateway = Gateway(config, store, Bus())
            if _wants_webhooks(config):
                # Before the channels: a platform may call us as soon as its webhook is set.
                webhooks = WebhookServer(gateway, config.server.host, config.server.port)
                await webhooks.start()
            await gateway.start()
        except BaseException:
            if webhooks is not None:
                await webhooks.stop()
            await store.close()
            raise
        return cls(config_path, data_dir, secrets, store, gateway, webhooks)

    async def stop(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.gateway.stop()
        await self.store.close()


def _wants_webhooks(config: Config) -> bool:
    if config.server.webhooks != "auto":
        return config.server.webhooks == "on"
    return any(e.config is not None and e.config.enabled and e.config.needs_webhook()
               for e in config.channels.values())
