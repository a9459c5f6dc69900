"""MCP servers under supervision, against a real server written with the same SDK.

The server (``tests/fakes/mcp_server.py``) runs as a subprocess over stdio, or over
streamable HTTP on 127.0.0.1. Backoff delays are recorded by an injected sleep
(which waits only a moment), so no test waits out a real backoff.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pyclaw_app.agent import Agent, build_chain
from pyclaw_app.agent.mcp import (
    McpManager,
    McpServerConfig,
    McpServerState,
    McpUnavailable,
    probe_server,
)
from pyclaw_app.agent.providers import ToolCall
from pyclaw_app.agent.tools import NotesStore, ToolContext, ToolRegistry
from pyclaw_app.backoff import Backoff
from pyclaw_app.config import Config
from pyclaw_app.config_mcp import mcp_secret_key
from pyclaw_app.model import Address, Inbound
from pyclaw_app.store import Store
from tests.agent.conftest import anthropic_provider
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.mcp_server import HttpMcpServer, kill_stdio, read_state, stdio_section
from tests.fakes.openai_api import FakeReply, FakeToolCall
from tests.support import eventually

TOKEN = "tok-" + uuid.uuid4().hex
WAIT = 20.0


def inbound(channel: str = "local", text: str = "hi") -> Inbound:
    return Inbound(Address(channel, "c1"), platform_id=uuid.uuid4().hex, text=text,
                   sender_id="u1", sender_name="Ann")


class Logs(list[tuple[str, str]]):
    def __call__(self, level: str, message: str) -> None:
        self.append((level, message))

    def having(self, fragment: str) -> list[tuple[str, str]]:
        return [(lvl, m) for lvl, m in self if fragment in m]


class RecordingSleep:
    """The backoff delays asked for; each waits only a moment."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.01)


@pytest.fixture
async def managers() -> AsyncIterator[list[McpManager]]:
    made: list[McpManager] = []
    yield made
    for manager in made:
        await manager.stop()


def start_manager(made: list[McpManager], *configs: McpServerConfig,
                  sleep: RecordingSleep | None = None) -> tuple[McpManager, Logs]:
    logs = Logs()
    manager = McpManager(configs, logs, backoff=lambda: Backoff(base=0.2, cap=5.0),
                         sleep=sleep or RecordingSleep())
    made.append(manager)
    return manager, logs


async def up(manager: McpManager, name: str = "fake") -> None:
    def is_up() -> bool:
        server = manager.server(name)
        return server is not None and server.state == McpServerState.UP

    await eventually(is_up, timeout=WAIT)


async def test_probe_lists_the_tools_over_stdio_and_http(tmp_path: Path) -> None:
    stdio = McpServerConfig.model_validate(stdio_section("fake", tmp_path / "s.json"))
    tools = await probe_server(stdio)
    assert {t.exposed for t in tools} >= {"fake__add", "fake__echo", "fake__slow"}
    add = next(t for t in tools if t.name == "add")
    assert add.description == "Add two integers."
    assert add.parameters["properties"].keys() == {"a", "b"}
    assert read_state(tmp_path / "s.json") is not None  # it really ran

    async with HttpMcpServer(tmp_path / "h.json", TOKEN) as http:
        key = mcp_secret_key("web", "headers", "Authorization")
        base = McpServerConfig(name="web", url=http.url, secret_headers=["Authorization"])
        listed = await probe_server(base.with_secrets({key: f"Bearer {TOKEN}"}))
        assert "web__add" in {t.exposed for t in listed}
        with pytest.raises(McpUnavailable) as wrong:
            await probe_server(base.with_secrets({key: "Bearer wrong-token-123456"}))
        assert "HTTP 401" in str(wrong.value) and "secret headers" in str(wrong.value)
        assert "wrong-token-123456" not in str(wrong.value)
        with pytest.raises(McpUnavailable, match="is not set"):
            await probe_server(base)


async def test_probe_of_a_program_that_does_not_exist_says_so() -> None:
    config = McpServerConfig(name="ghost", command="/nonexistent/mcp-server-ghost")
    with pytest.raises(McpUnavailable, match="not found"):
        await probe_server(config)


async def test_a_killed_server_loses_its_tools_and_comes_back_on_the_backoff(
        tmp_path: Path, managers: list[McpManager]) -> None:
    state = tmp_path / "s.json"
    sleep = RecordingSleep()
    manager, logs = start_manager(
        managers, McpServerConfig.model_validate(stdio_section("fake", state)), sleep=sleep)
    await manager.start()
    await up(manager)
    assert logs.having("MCP server fake connected: 8 tools")
    assert {t.name for t in manager.tools_for(inbound())} >= {"fake__add", "fake__die"}
    assert manager.unavailable_note(inbound()) is None

    pids = []
    for round_no in (1, 2):
        pids.append(kill_stdio(state))
        await eventually(lambda: not manager.tools_for(inbound()), timeout=WAIT)
        assert "fake" in (manager.unavailable_note(inbound()) or "")
        await eventually(lambda n=round_no: len(logs.having("is down")) >= n, timeout=WAIT)
        await up(manager)
        assert read_state(state)["pid"] not in pids  # type: ignore[index]
    down = logs.having("is down")
    assert down[0][0] == "error"
    assert "the server process exited; its 8 tools are withdrawn from the prompt; " \
           "restarting in" in down[0][1]
    assert len(sleep.delays) == 2 and sleep.delays[1] >= sleep.delays[0]  # backing off
    status = manager.status()[0]
    assert status.state == McpServerState.UP and status.restarts == 2 and status.error is None


async def test_a_call_in_flight_when_the_server_dies_is_an_error_not_a_hang(
        tmp_path: Path, store: Store, managers: list[McpManager]) -> None:
    manager, _ = start_manager(managers, McpServerConfig.model_validate(
        stdio_section("fake", tmp_path / "s.json")))
    await manager.start()
    await up(manager)
    message = inbound()
    ctx = ToolContext(message, NotesStore(store.journal.db), datetime.now)
    tools = ToolRegistry(manager.tools_for(message))
    result = await tools.run(ToolCall("c1", "fake__die"), ctx)
    assert result.is_error and "stopped during the call" in result.content
    # a tool taken into the prompt before the crash answers at once, never hangs
    stale = await tools.run(ToolCall("c2", "fake__add", {"a": 1, "b": 2}), ctx)
    assert stale.is_error and "not available right now" in stale.content
    await up(manager)
    fresh = ToolRegistry(manager.tools_for(message))
    ok = await fresh.run(ToolCall("c3", "fake__add", {"a": 1, "b": 2}), ctx)
    assert (ok.content, ok.is_error) == ("3", False)


async def test_channel_and_tool_allowlists(tmp_path: Path,
                                           managers: list[McpManager]) -> None:
    config = McpServerConfig.model_validate(stdio_section(
        "fake", tmp_path / "s.json", channels=["telegram"], tools=["add", "echo", "nope"]))
    manager, logs = start_manager(managers, config)
    await manager.start()
    await up(manager)
    assert manager.tools_for(inbound("local")) == []
    assert manager.unavailable_note(inbound("local")) is None
    assert sorted(t.name for t in manager.tools_for(inbound("telegram"))) == [
        "fake__add", "fake__echo"]
    assert logs.having("tools ['nope'] are in its allowlist but the server does not list them")
    # new limits and allowlists apply to the running connection, without a restart
    pid = read_state(tmp_path / "s.json")["pid"]  # type: ignore[index]
    relaxed = config.model_copy(update={"channels": None, "tools": ["big"]})
    await manager.apply([relaxed])
    assert [t.name for t in manager.tools_for(inbound("local"))] == ["fake__big"]
    assert read_state(tmp_path / "s.json")["pid"] == pid  # type: ignore[index]
    # a different program (here: its environment) is a new connection
    await manager.apply([relaxed.model_copy(update={"env": {"MODE": "other"}})])
    await up(manager)
    assert read_state(tmp_path / "s.json")["pid"] != pid  # type: ignore[index]
    await manager.apply([])
    assert manager.tools_for(inbound("local")) == [] and manager.status() == []
    assert logs.having("MCP server fake removed")


async def test_a_server_whose_secret_is_missing_stays_down_and_says_why(
        managers: list[McpManager]) -> None:
    config = McpServerConfig(name="web", url="http://127.0.0.1:9/mcp",
                             secret_headers=["Authorization"])
    manager, logs = start_manager(managers, config)
    await manager.start()
    await eventually(lambda: logs.having("pyclaw secret set "
                                         "mcp_servers.web.headers.Authorization"),
                     timeout=WAIT)
    assert manager.status()[0].state != McpServerState.UP
    assert manager.tools_for(inbound()) == []


async def test_anthropic_gets_the_mcp_tools_and_their_results(
        tmp_path: Path, store: Store, fake_anthropic: FakeAnthropic,
        managers: list[McpManager]) -> None:
    manager, _ = start_manager(managers, McpServerConfig.model_validate(
        stdio_section("fake", tmp_path / "s.json")))
    await manager.start()
    await up(manager)

    def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
        results = [b for m in messages if isinstance(m["content"], list)
                   for b in m["content"] if b.get("type") == "tool_result"]
        if not results:
            return FakeReply(tool_calls=[FakeToolCall("fake__add", {"a": 20, "b": 22})])
        return f"The MCP server says {results[-1]['content']}."

    fake_anthropic.responder = responder
    config = Config(path=None, providers=[anthropic_provider(fake_anthropic)])
    agent = Agent(build_chain(config), store.journal, store.usage, tool_source=manager)
    try:
        message = inbound(text="what is 20 + 22?")
        journal_id = (await store.journal.submit(message)).journal_id
        reply = await agent.reply(message, journal_id)
    finally:
        await agent.close()
    assert reply.text == "The MCP server says 42."
    first = fake_anthropic.requests[0]
    offered = {t["name"]: t for t in first["tools"]}
    assert {"fake__add", "calculate"} <= offered.keys()
    assert offered["fake__add"]["input_schema"]["required"] == ["a", "b"]


async def test_http_server_that_goes_away_is_reconnected(
        tmp_path: Path, managers: list[McpManager]) -> None:
    """An idle HTTP connection has nothing to lose: a server that went away is noticed at
    the next request, here the health check (``health_interval``)."""
    async with HttpMcpServer(tmp_path / "h.json", TOKEN) as http:
        key = mcp_secret_key("web", "headers", "Authorization")
        config = McpServerConfig(name="web", url=http.url, health_interval=0.3,
                                 secret_headers=["Authorization"]).with_secrets(
            {key: f"Bearer {TOKEN}"})
        manager, logs = start_manager(managers, config)
        await manager.start()
        await up(manager, "web")
        await http.kill()
        await eventually(lambda: not manager.tools_for(inbound()), timeout=WAIT)
        await eventually(lambda: logs.having("MCP server web is down"), timeout=WAIT)
        await http.start()  # the same port
        await up(manager, "web")
        assert "web__add" in {t.name for t in manager.tools_for(inbound())}
    assert not [m for _, m in logs if TOKEN in m]
