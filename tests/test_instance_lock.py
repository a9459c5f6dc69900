"""One gateway per store: a second one is refused with who holds it, not left to answer twice.

Two gateways on one journal would each resume the other's open rows at start and answer
them again; until instances share the work (issue 15's claims and leases) the second is
refused. CLI commands beside a running gateway (pairing, schedules) still open the store.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from pyclaw_app.config_storage import StorageConfig
from pyclaw_app.errors import StoreError
from pyclaw_app.runtime import GatewayRuntime
from pyclaw_app.secrets import FileSecretStore
from tests.stores import ON_EACH_STORE

pytestmark = ON_EACH_STORE


def _config(tmp_path: Path, storage: StorageConfig | None) -> Path:
    path = tmp_path / "pyclaw.yaml"
    body: dict[str, object] = {"channels": {"local": {"type": "local"}}}
    if storage is not None:
        body["storage"] = {"url": storage.url}
        assert storage.password is not None
        FileSecretStore(tmp_path / "data" / "secrets.json").set(
            "storage.password", storage.password.get_secret_value())
    path.write_text(yaml.safe_dump(body))
    return path


async def test_a_second_gateway_on_the_same_store_is_refused_until_the_first_stops(
        tmp_path: Path, storage: StorageConfig | None) -> None:
    path = _config(tmp_path, storage)
    first = await GatewayRuntime.open(path, tmp_path / "data")
    await first.hold_store()
    try:
        second = await GatewayRuntime.open(path, tmp_path / "data")  # CLI commands may
        try:
            with pytest.raises(StoreError, match="another gateway is running") as refused:
                await second.hold_store()
            assert f"{socket.gethostname()} pid {os.getpid()}" in str(refused.value)
            assert first.store.db.holds_instance and not second.store.db.holds_instance
        finally:
            await second.stop()
    finally:
        await first.stop()
    third = await GatewayRuntime.open(path, tmp_path / "data")
    await third.hold_store()
    await third.stop()
