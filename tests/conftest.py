"""Fixtures shared by every test: no proxies, a fake LLM, and a gateway factory on real SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.config_storage import StorageConfig
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from tests.fakes.openai_api import FakeOpenAI
from tests.stores import STORES, default_kind, storage_for

GatewayFactory = Callable[..., Awaitable[Gateway]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "each_store: run on SQLite and on PostgreSQL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A browser test gets one more try: Chromium on a loaded 2-core machine now and then
    loses a click or draws a frame late (each such miss seen was a different test, and
    passed again at once); a real failure fails both tries."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("each_store") \
            and "storage" in metafunc.fixturenames:
        metafunc.parametrize("storage", STORES, indirect=True)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYCLAW_SECRETS", "file")


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server  # type: ignore[misc]


def provider_section(llm: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {"name": "fake", "base_url": llm.base_url, "model": "fake-model", "max_retries": 0,
            "timeout": 10, **extra}


@pytest.fixture
async def storage(request: pytest.FixtureRequest) -> StorageConfig | None:
    """The store of this test's gateways: SQLite (None) unless the module asks for both
    (``ON_EACH_STORE`` in ``tests/stores.py``) or ``PYCLAW_TEST_STORE`` names PostgreSQL."""
    return await storage_for(getattr(request, "param", default_kind()))


StoreFactory = Callable[[Path], Awaitable[Store]]


@pytest.fixture
async def open_store(storage: StorageConfig | None) -> AsyncIterator[StoreFactory]:
    """Open stores on ``storage`` (SQLite in the given directory, or the test's PostgreSQL
    database, the same one for every call: a reopened store sees what was written);
    each is closed at teardown if the test did not."""
    opened: list[Store] = []

    async def factory(directory: Path) -> Store:
        store = await Store(directory, storage).open()
        opened.append(store)
        return store

    yield factory
    for store in reversed(opened):
        if store.db.is_open:
            await store.close()


@pytest.fixture
async def make_gateway(tmp_path: Path, storage: StorageConfig | None
                       ) -> AsyncIterator[GatewayFactory]:
    """Build and start gateways from a config dict; everything is stopped at teardown."""
    started: list[tuple[Gateway, Store]] = []

    async def factory(config: dict[str, Any] | None = None, *, data_dir: Path | None = None,
                      bus: Bus | None = None) -> Gateway:
        path = tmp_path / f"pyclaw-{len(started)}.yaml"
        path.write_text(yaml.safe_dump(config or {}), "utf-8")
        directory = data_dir or tmp_path / "data"
        secrets = FileSecretStore(directory / "secrets.json")
        store = await Store(directory, storage).open()
        gateway = Gateway(load_config(path, secrets), store, bus or Bus())
        await gateway.start()
        started.append((gateway, store))
        return gateway

    yield factory
    for gateway, store in reversed(started):
        await gateway.stop()
        await store.close()


@pytest.fixture
async def telegram() -> AsyncIterator[Any]:
    """The Bot API fake behind its contract harness (the real python-telegram-bot talks to
    it); modules that want the bare fake define their own ``telegram``."""
    from tests.contract.harness_telegram import TelegramHarness

    harness = TelegramHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def slack() -> AsyncIterator[Any]:
    """The Slack fake behind its contract harness (the real slack-sdk talks to it)."""
    from tests.contract.harness_slack import SlackHarness

    harness = SlackHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def discord_harness() -> AsyncIterator[Any]:
    """The Discord fake behind its contract harness (the real discord.py talks to it)."""
    from tests.contract.harness_discord import DiscordHarness

    harness = DiscordHarness()
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
