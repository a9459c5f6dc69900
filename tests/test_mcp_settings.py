"""MCP servers in Settings through the control plane, against real MCP servers (stdio and
HTTP, the SDK's own): list, test, save (YAML without secrets, secrets in the store), the
tools reach the agent, edit, delete; and the monitor token may only look."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pyclaw_app.config_mcp import mcp_secret_key
from pyclaw_app.control import FieldError
from pyclaw_app.control.chat import ask
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import AdminRequired, RemoteControlPlane
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, provider_section
from tests.fakes.mcp_server import HttpMcpServer, stdio_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually
from tests.test_mcp_e2e import calls_then_reports

WAIT = 30.0
LOCAL = {"local": {"type": "local"}}
FAKE_TOOLS = {"add", "echo", "big", "slow", "fail", "die", "weird.name", "secret_echo"}


def stdio_form(name: str, state: Path, **extra: Any) -> dict[str, Any]:
    """What the Settings form sends for a stdio server (the HTTP fields left blank)."""
    return {"transport": "stdio", **stdio_section(name, state), **extra}


def plane_for(gateway: Gateway, tmp_path: Path) -> tuple[LocalControlPlane, FileSecretStore]:
    secrets = FileSecretStore(tmp_path / "data" / "secrets.json")
    return LocalControlPlane(gateway, secrets, tmp_path / "pyclaw-0.yaml"), secrets


async def server_up(plane: LocalControlPlane, name: str) -> None:
    async def up() -> bool:
        rows = (await plane.mcp_servers()).servers
        return any(r.name == name and r.state == "up" for r in rows)
    await eventually(up, timeout=WAIT)


def saved_yaml(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((tmp_path / "pyclaw-0.yaml").read_text("utf-8"))
    return data


async def test_add_test_save_use_and_delete_a_stdio_server(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)], "channels": LOCAL})
    plane, secrets = plane_for(gateway, tmp_path)
    servers = await plane.mcp_servers()
    assert servers.servers == ()
    props = servers.schema["properties"]
    assert list(props)[:2] == ["name", "transport"]
    assert props["command"]["shown_when"] == {"transport": "stdio"}
    assert props["url"]["shown_when"] == {"transport": "http"}

    secret = "mcp-secret-" + uuid.uuid4().hex
    values = stdio_form("files", tmp_path / "s.json", secret_env=["FAKE_MCP_SECRET"],
                        url="http://left.over/in/a/hidden/field",
                        secrets={"env.FAKE_MCP_SECRET": secret})
    tools, outcome = await plane.test_mcp_server(values)
    assert outcome.ok, outcome.message
    assert set(tools) == FAKE_TOOLS and outcome.message == "8 tools available"
    assert await plane.save_mcp_server(values) == []

    written = saved_yaml(tmp_path)["mcp_servers"]
    assert [s["name"] for s in written] == ["files"]
    assert "url" not in written[0] and written[0]["secret_env"] == ["FAKE_MCP_SECRET"]
    assert secret not in (tmp_path / "pyclaw-0.yaml").read_text("utf-8")
    assert secrets.get(mcp_secret_key("files", "env", "FAKE_MCP_SECRET")) == secret

    # launched at once: never "stopped" while it comes up (the card follows "starting")
    assert (await plane.mcp_servers()).servers[0].state in ("starting", "up")
    await server_up(plane, "files")
    row = (await plane.mcp_servers()).servers[0]
    assert (row.transport, row.enabled, row.secrets_set) == ("stdio", True,
                                                            ("env.FAKE_MCP_SECRET",))
    assert set(row.tools) == FAKE_TOOLS and row.offered == len(FAKE_TOOLS)
    assert row.target.endswith(f"-m tests.fakes.mcp_server --state {tmp_path / 's.json'}")
    assert secret not in repr(row)

    # the saved server's tools reach the agent at once, with the stored secret
    fake_llm.responder = calls_then_reports("files__secret_echo", {})
    assert await ask(gateway, "secret?", chat="m1", timeout=WAIT) == f"The tool said: {secret}"

    # edit: a blank secret keeps the stored one; the allowlist applies without a restart
    edited = dict(row.values) | {"tools": ["echo"], "secrets": {"env.FAKE_MCP_SECRET": ""}}
    assert await plane.save_mcp_server(edited, original_name="files") == []
    assert secrets.get(mcp_secret_key("files", "env", "FAKE_MCP_SECRET")) == secret
    row = (await plane.mcp_servers()).servers[0]
    assert row.offered == 1 and row.values["tools"] == ["echo"]
    assert saved_yaml(tmp_path)["mcp_servers"][0]["tools"] == ["echo"]

    assert await plane.delete_mcp_server("files") == []
    assert (await plane.mcp_servers()).servers == ()
    assert saved_yaml(tmp_path).get("mcp_servers") in (None, [])
    assert secrets.get(mcp_secret_key("files", "env", "FAKE_MCP_SECRET")) is None
    assert gateway.mcp.server("files") is None
    assert await plane.delete_mcp_server("files") == [
        FieldError("", "no MCP server is called 'files'")]


async def test_field_errors_and_unreachable_servers_lose_nothing(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    state = tmp_path / "s.json"
    gateway = await make_gateway({"providers": [provider_section(fake_llm)], "channels": LOCAL,
                                  "mcp_servers": [stdio_section("fake", state)]})
    plane, _ = plane_for(gateway, tmp_path)
    before = (tmp_path / "pyclaw-0.yaml").read_text("utf-8")

    errors = await plane.save_mcp_server({"transport": "stdio", "name": "bad__name"})
    assert {e.field for e in errors} >= {"name"}
    errors = await plane.save_mcp_server({"transport": "http", "name": "web",
                                          "url": "ftp://x"})
    assert [e.field for e in errors] == ["url"]
    errors = await plane.save_mcp_server(stdio_form("fake", state))
    assert errors[0].field == "name" and "another MCP server" in errors[0].message
    errors = await plane.save_mcp_server(stdio_form("tok", state, secret_env=["TOKEN"]))
    assert [e.field for e in errors] == ["secrets.env.TOKEN"]
    assert (tmp_path / "pyclaw-0.yaml").read_text("utf-8") == before

    tools, outcome = await plane.test_mcp_server({"transport": "stdio", "name": "gone",
                                                 "command": str(tmp_path / "no-such-program")})
    assert tools == [] and not outcome.ok and outcome.message
    tools, outcome = await plane.test_mcp_server({"transport": "stdio", "name": "x"})
    assert not outcome.ok and "command" in outcome.message
    await server_up(plane, "fake")  # the running server was never touched


async def test_an_http_server_with_a_secret_header(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    token = "tok-" + uuid.uuid4().hex
    async with HttpMcpServer(tmp_path / "h.json", token) as http:
        gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                      "channels": LOCAL})
        plane, secrets = plane_for(gateway, tmp_path)
        values = {"transport": "http", "name": "web", "url": http.url,
                  "command": "left-over", "secret_headers": ["Authorization"],
                  "secrets": {"headers.Authorization": "Bearer wrong"}}
        tools, outcome = await plane.test_mcp_server(values)
        assert not outcome.ok and "wrong" not in outcome.message
        values["secrets"] = {"headers.Authorization": f"Bearer {token}"}
        tools, outcome = await plane.test_mcp_server(values)
        assert outcome.ok and "echo" in tools
        assert await plane.save_mcp_server(values) == []
        assert token not in (tmp_path / "pyclaw-0.yaml").read_text("utf-8")
        assert secrets.get(mcp_secret_key("web", "headers", "Authorization")) == \
            f"Bearer {token}"
        await server_up(plane, "web")
        row = (await plane.mcp_servers()).servers[0]
        assert row.secrets_set == ("headers.Authorization",) and row.target == http.url

        # the stored header is not sent to another URL: it must be typed again
        moved = dict(row.values) | {"url": "http://127.0.0.1:9/mcp", "secrets": {}}
        tools, outcome = await plane.test_mcp_server(moved, original_name="web")
        assert not outcome.ok and "headers.Authorization is not set" in outcome.message
        # ... and a blank one kept for the same URL still connects
        tools, outcome = await plane.test_mcp_server(dict(row.values), original_name="web")
        assert outcome.ok, outcome.message

        # renamed: the secret moves to the new name
        assert await plane.save_mcp_server(dict(row.values) | {"name": "web2"},
                                           original_name="web") == []
        assert secrets.get(mcp_secret_key("web", "headers", "Authorization")) is None
        assert secrets.get(mcp_secret_key("web2", "headers", "Authorization")) == \
            f"Bearer {token}"
        await server_up(plane, "web2")
        assert [r.name for r in (await plane.mcp_servers()).servers] == ["web2"]


@pytest.fixture
async def host(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0, "control_api": True}, "providers": [provider_section(fake_llm)],
        "mcp_servers": [stdio_section("fake", tmp_path / "s.json")]}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


async def test_the_monitor_lists_servers_and_only_the_admin_changes_them(
        tmp_path: Path, host: GatewayHost) -> None:
    assert host.server is not None
    secrets = host.runtime.secrets
    monitor = await RemoteControlPlane(host.server.url, secrets.get(MONITOR_TOKEN_KEY) or ""
                                       ).connect()
    admin = await RemoteControlPlane(host.server.url, secrets.get(ADMIN_TOKEN_KEY) or ""
                                     ).connect()
    try:
        async def up() -> bool:
            rows = (await monitor.mcp_servers()).servers
            return [(r.name, r.state) for r in rows] == [("fake", "up")]
        await eventually(up, timeout=WAIT)
        listed = await monitor.mcp_servers()
        assert "transport" in listed.schema["properties"]
        assert set(listed.servers[0].tools) == FAKE_TOOLS
        values = stdio_form("second", tmp_path / "t.json")
        for call in (monitor.save_mcp_server(values), monitor.delete_mcp_server("fake"),
                     monitor.test_mcp_server(values)):
            with pytest.raises(AdminRequired, match="needs the admin token"):
                await call
        async with httpx.AsyncClient(base_url=host.server.url) as client:
            resp = await client.post(
                "/api/v1/call/save_mcp_server", json={"values": values},
                headers={"Authorization": f"Bearer {secrets.get(MONITOR_TOKEN_KEY)}"})
        assert resp.status_code == 403
        assert [r.name for r in (await admin.mcp_servers()).servers] == ["fake"]

        tools, outcome = await admin.test_mcp_server(values)
        assert outcome.ok and set(tools) == FAKE_TOOLS
        assert await admin.save_mcp_server(values) == []
        errors = await admin.save_mcp_server({"transport": "stdio", "name": "x y"})
        assert errors and errors[0].field == "name"
        async def both_up() -> bool:
            rows = (await monitor.mcp_servers()).servers
            return [(r.name, r.state) for r in rows] == [("fake", "up"), ("second", "up")]
        await eventually(both_up, timeout=WAIT)
        assert await admin.delete_mcp_server("second") == []
        assert [r.name for r in (await monitor.mcp_servers()).servers] == ["fake"]
    finally:
        await monitor.close()
        await admin.close()
