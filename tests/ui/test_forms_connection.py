"""Test connection in a provider form says "refused" or "timed out", whichever happened.

Through the real SettingsAdmin and the real SDKs: a port nothing listens on, and a
server that accepts the connection and never answers. (The openai SDK's transport
calls a refused connection "Request timed out.", so the words come from the cause
chain, not from the SDK's class.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyclaw_app.control.settings import SettingsAdmin
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.ui.browser_support import free_port

KINDS = ("openai", "anthropic")


@pytest.fixture
async def admin(make_gateway: GatewayFactory, fake_llm: FakeOpenAI, tmp_path: Path
                ) -> SettingsAdmin:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    return SettingsAdmin(gateway, FileSecretStore(tmp_path / "keys.json"))


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A server that takes connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    with contextlib.suppress(Exception):
        await server.wait_closed()


def _provider(kind: str, port: int, timeout: float = 10.0) -> dict[str, object]:
    return {"name": f"test-{kind}", "kind": kind, "model": "m", "api_key": "sk-test",
            "base_url": f"http://127.0.0.1:{port}/v1", "timeout": timeout}


@pytest.mark.parametrize("kind", KINDS)
async def test_refused(admin: SettingsAdmin, kind: str) -> None:
    port = free_port()  # bound and released: nothing listens there now
    models, outcome = await admin.list_models(_provider(kind, port))
    assert models == [] and not outcome.ok
    assert outcome.message.startswith(
        f"connection refused: nothing is listening at 127.0.0.1:{port}"), outcome.message
    assert "timed out" not in outcome.message


@pytest.mark.parametrize("kind", KINDS)
async def test_timed_out(admin: SettingsAdmin, silent_port: int, kind: str) -> None:
    models, outcome = await admin.list_models(_provider(kind, silent_port, timeout=0.5))
    assert models == [] and not outcome.ok
    assert outcome.message == (f"timed out: 127.0.0.1:{silent_port} did not answer within "
                               "0.5 seconds"), outcome.message


async def test_other_failures_keep_the_providers_own_words(admin: SettingsAdmin) -> None:
    async with FakeOpenAI(api_key="sk-right-key-0000000000") as llm:
        provider = {**_provider("openai", 0), "base_url": llm.base_url}
        _, outcome = await admin.list_models(provider)
    assert not outcome.ok and "401" in outcome.message
