"""MCP tools end to end: a message through a real channel (local chat, Telegram against the
fake Bot API), the OpenAI fake calling a tool of a real MCP server, the result back in the
model's next request and in the reply; crashes, timeouts, the output cap and secrets."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyclaw_app.agent.mcp import McpServerState
from pyclaw_app.config_mcp import mcp_secret_key
from pyclaw_app.control.chat import ask
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.mcp_server import HttpMcpServer, kill_stdio, stdio_section
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall
from tests.support import eventually

WAIT = 30.0
LOCAL = {"local": {"type": "local"}}


def tool_results(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m.get("role") == "tool"]


def offered(request: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in request.get("tools") or []}


def calls_then_reports(name: str, arguments: dict[str, Any]):
    """A model that calls ``name`` once per question, then answers with what it read."""
    def responder(messages: list[dict[str, Any]]) -> str | FakeReply:
        last = messages[-1]
        if last.get("role") == "tool":
            return f"The tool said: {last['content']}"
        return FakeReply("Let me check. ", [FakeToolCall(name, arguments)])
    return responder


async def mcp_up(gateway: Gateway, name: str = "fake") -> None:
    await eventually(lambda: any(s.name == name and s.state == McpServerState.UP
                                 for s in gateway.mcp.status()), timeout=WAIT)


async def log_lines(gateway: Gateway, fragment: str = "") -> list[str]:
    await gateway.store.db.execute("SELECT 1")  # let the queued log lines commit
    rows = await gateway.store.db.fetchall("SELECT message, data FROM channel_log ORDER BY id")
    return [f"{r['message']} {r['data'] or ''}" for r in rows if fragment in r["message"]]


async def test_local_chat_reaches_an_mcp_tool_and_the_reply_carries_its_result(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake_llm.responder = calls_then_reports("fake__add", {"a": 2, "b": 3})
    gateway = await make_gateway({"providers": [provider_section(fake_llm)], "channels": LOCAL,
                                  "mcp_servers": [stdio_section("fake", tmp_path / "s.json")]})
    await mcp_up(gateway)
    reply = await ask(gateway, "what is 2 + 3?", chat="m1", timeout=WAIT)
    assert reply == "The tool said: 5"
    first, second = fake_llm.requests
    assert {"fake__add", "fake__echo", "calculate", "current_time"} <= offered(first)
    add = next(t for t in first["tools"] if t["function"]["name"] == "fake__add")
    assert add["function"]["description"] == "Add two integers."
    assert add["function"]["parameters"]["required"] == ["a", "b"]
    call = second["messages"][-2]["tool_calls"][0]
    assert call["function"]["name"] == "fake__add"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": call["id"],
                                      "content": "5"}
    # the call is in the message's log lines (what the Logs view shows beside it)
    lines = await log_lines(gateway, 'tool fake__add({"a": 2, "b": 3}) -> 5')
    assert lines and lines[0].startswith("message ")
    assert await log_lines(gateway, "MCP server fake connected: 8 tools")
    calls = await gateway.store.db.fetchall("SELECT provider FROM llm_calls")
    assert len(calls) == 2


async def test_a_crashed_server_vanishes_from_the_prompt_and_comes_back(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    state = tmp_path / "s.json"
    gateway = await make_gateway({"providers": [provider_section(fake_llm)], "channels": LOCAL,
                                  "mcp_servers": [stdio_section("fake", state)]})
    await mcp_up(gateway)

    # the server dies in the middle of a call: the model reads an error, the turn ends
    fake_llm.responder = calls_then_reports("fake__die", {})
    reply = await ask(gateway, "please crash", chat="m2", timeout=WAIT)
    assert reply.startswith("The tool said: error: the MCP server 'fake' stopped during the "
                            "call")
    await eventually(lambda: log_lines(gateway, "MCP server fake is down: the server process "
                                                "exited; its 8 tools are withdrawn"),
                     timeout=WAIT)
    await mcp_up(gateway)

    # killed while idle: its tools leave the prompt, the prompt says they are missing
    kill_stdio(state)
    await eventually(lambda: gateway.mcp.status()[0].state != McpServerState.UP, timeout=WAIT)
    fake_llm.responder = lambda messages: "no tools today"
    assert await ask(gateway, "anything?", chat="m2", timeout=WAIT) == "no tools today"
    request = fake_llm.requests[-1]
    assert not {n for n in offered(request) if n.startswith("fake__")}
    assert "calculate" in offered(request)
    assert "MCP server(s) fake are unavailable right now" in request["messages"][0]["content"]

    # restarted on the backoff: the tools are offered again
    await mcp_up(gateway)
    assert await ask(gateway, "and now?", chat="m2", timeout=WAIT) == "no tools today"
    assert "fake__add" in offered(fake_llm.requests[-1])
    assert "unavailable" not in fake_llm.requests[-1]["messages"][0]["content"]
    assert gateway.mcp.status()[0].restarts == 2


async def test_timeout_and_output_cap_per_server(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway({
        "providers": [provider_section(fake_llm)], "channels": LOCAL,
        "mcp_servers": [stdio_section("quick", tmp_path / "q.json", timeout=0.5),
                        stdio_section("fake", tmp_path / "s.json", max_output_chars=300)]})
    await mcp_up(gateway, "quick")
    await mcp_up(gateway)
    fake_llm.responder = calls_then_reports("quick__slow", {"seconds": 30})
    reply = await ask(gateway, "take your time", chat="m3", timeout=WAIT)
    assert reply == ("The tool said: error: the MCP tool 'slow' of server 'quick' did not "
                     "answer within 0.5 seconds")
    fake_llm.responder = calls_then_reports("fake__big", {"size": 5000})
    await ask(gateway, "a lot please", chat="m3", timeout=WAIT)
    result = tool_results(fake_llm.requests[-1]["messages"])[-1]
    assert result.startswith("x" * 300 + " [truncated: the result was 5,000 characters")
    assert "x" * 301 not in result
    # the server is still up: a timeout is the call's failure, not the server's
    assert all(s.state == McpServerState.UP for s in gateway.mcp.status())


async def test_secret_env_reaches_the_server_and_never_the_log(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    secret = "fake-mcp-secret-" + uuid.uuid4().hex
    data = tmp_path / "data"
    FileSecretStore(data / "secrets.json").set(
        mcp_secret_key("fake", "env", "FAKE_MCP_SECRET"), secret)
    fake_llm.responder = calls_then_reports("fake__secret_echo", {})
    caplog.set_level(logging.DEBUG)
    gateway = await make_gateway({
        "providers": [provider_section(fake_llm)], "channels": LOCAL,
        "mcp_servers": [stdio_section("fake", tmp_path / "s.json",
                                      secret_env=["FAKE_MCP_SECRET"])]}, data_dir=data)
    await mcp_up(gateway)
    reply = await ask(gateway, "what is the secret?", chat="m4", timeout=WAIT)
    assert reply == f"The tool said: {secret}"  # the tool's own answer goes to the model
    lines = await log_lines(gateway, "tool fake__secret_echo")
    assert lines and "***" in lines[0]
    assert all(secret not in line for line in await log_lines(gateway))
    assert secret not in caplog.text
    assert secret not in (tmp_path / "pyclaw-0.yaml").read_text("utf-8")


async def test_telegram_uses_an_http_mcp_server_with_a_secret_header(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        telegram: TelegramHarness, caplog: pytest.LogCaptureFixture) -> None:
    token = "mcp-" + uuid.uuid4().hex
    data = tmp_path / "data"
    FileSecretStore(data / "secrets.json").set(
        mcp_secret_key("web", "headers", "Authorization"), f"Bearer {token}")
    caplog.set_level(logging.DEBUG)
    fake_llm.responder = calls_then_reports("web__echo", {"text": "from telegram"})
    async with HttpMcpServer(tmp_path / "h.json", token) as http:
        gateway = await make_gateway({
            "providers": [provider_section(fake_llm)],
            "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                      "rate_limit_per_minute": 0, **telegram.channel_config()}},
            "mcp_servers": [{"name": "web", "url": http.url, "channels": ["telegram"],
                             "secret_headers": ["Authorization"], "tools": ["echo"]}]},
            data_dir=data)
        await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                         timeout=WAIT)
        await mcp_up(gateway, "web")
        chat = telegram.chat(0)
        await telegram.inject_message(chat, "echo something")
        await eventually(lambda: [m.text for m in telegram.sent(chat)], timeout=WAIT)
        await gateway.lanes.join()
        assert [m.text for m in telegram.sent(chat)][-1] == \
            "The tool said: echo: from telegram"
        assert offered(fake_llm.requests[0]) & {"web__echo", "web__add"} == {"web__echo"}
        assert await log_lines(gateway, 'tool web__echo({"text": "from telegram"})')
    rows = await gateway.store.db.fetchall("SELECT message, data FROM channel_log")
    messages = await gateway.store.db.fetchall("SELECT text FROM messages")
    assert token not in json.dumps([dict(r) for r in rows] + [dict(m) for m in messages])
    assert token not in caplog.text
    assert token not in (tmp_path / "pyclaw-0.yaml").read_text("utf-8")


async def test_mcp_tools_survive_a_settings_save(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    """Saving providers in Settings builds a new agent: it must keep the gateway's servers."""
    gateway = await make_gateway({"providers": [provider_section(fake_llm)], "channels": LOCAL,
                                  "mcp_servers": [stdio_section("fake", tmp_path / "s.json")]})
    await mcp_up(gateway)
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"),
                              tmp_path / "pyclaw-0.yaml")
    form = plane.settings_form()
    assert await plane.save_settings(list(form.providers), {"system_prompt": "Be brief."}) == []
    fake_llm.responder = calls_then_reports("fake__echo", {"text": "still here"})
    assert await ask(gateway, "echo?", chat="m5", timeout=WAIT) == \
        "The tool said: echo: still here"
    saved = (tmp_path / "pyclaw-0.yaml").read_text("utf-8")
    assert "mcp_servers" in saved and "fake" in saved  # written back with the section
