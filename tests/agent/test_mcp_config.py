"""The ``mcp_servers`` section (YAML, secrets, saving), tool names and results: no server runs."""

from __future__ import annotations

import base64
from pathlib import Path

import mcp_types as types
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pyclaw_app.agent.mcp import McpServerConfig, config_from_form
from pyclaw_app.agent.mcp._client import result_text
from pyclaw_app.agent.mcp._names import MAX_NAME, exposed_names, valid_name
from pyclaw_app.config import load_config, save_config
from pyclaw_app.config_mcp import mcp_secret_key
from pyclaw_app.secrets import FileSecretStore, redactor

TOKEN = "Bearer mcp-token-0123456789abcdef"


def write(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


@pytest.fixture
def secrets(tmp_path: Path) -> FileSecretStore:
    return FileSecretStore(tmp_path / "data" / "secrets.json")


# ---- names ---------------------------------------------------------------------------------
_SERVER = st.from_regex(r"\A[A-Za-z0-9]{1,8}(?:[-_][A-Za-z0-9]{1,8}){0,3}\Z")
_TOOLS = st.lists(st.text(min_size=1, max_size=140), min_size=1, max_size=12)


@given(_SERVER, _TOOLS)
def test_exposed_names_are_valid_unique_and_stable(server: str, tools: list[str]) -> None:
    names = exposed_names(server, tools)
    assert set(names) == set(tools)
    assert all(valid_name(n) and len(n) <= MAX_NAME for n in names.values())
    assert len(set(names.values())) == len(names)
    assert all(n.startswith(f"{server}__") for n in names.values())
    assert exposed_names(server, tools) == names  # the same after a restart


def test_readable_names_are_kept_and_odd_ones_cleaned() -> None:
    names = exposed_names("files", ["read_file", "weird.name", "x" * 80, "read_file"])
    assert names["read_file"] == "files__read_file"
    assert names["weird.name"].startswith("files__weird_name_")
    assert len(names["x" * 80]) == MAX_NAME


# ---- the YAML section ----------------------------------------------------------------------
def test_stdio_and_http_servers_load_with_secrets_from_the_store(
        tmp_path: Path, secrets: FileSecretStore, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets.set(mcp_secret_key("search", "headers", "Authorization"), TOKEN)
    monkeypatch.setenv("PYCLAW_MCP_FILES_ENV_GITHUB_TOKEN", "ghp_from_the_environment_123")
    path = write(tmp_path / "pyclaw.yaml", {"mcp_servers": [
        {"name": "files", "command": "npx", "args": ["-y", "server-filesystem", "/notes"],
         "env": {"LOG_LEVEL": "debug"}, "secret_env": ["GITHUB_TOKEN"],
         "channels": ["telegram"], "tools": ["read_file"], "timeout": 5},
        {"name": "search", "url": "https://mcp.example.com/mcp",
         "headers": {"X-Client": "pyclaw"}, "secret_headers": ["Authorization"]},
    ]})
    cfg = load_config(path, secrets)
    assert not cfg.errors and not cfg.warnings
    files, search = cfg.mcp_servers
    assert files.transport == "stdio" and search.transport == "http"
    assert files.process_env() == {"LOG_LEVEL": "debug",
                                   "GITHUB_TOKEN": "ghp_from_the_environment_123"}
    assert search.request_headers() == {"X-Client": "pyclaw", "Authorization": TOKEN}
    assert files.channels == ["telegram"] and files.tools == ["read_file"]
    assert TOKEN not in repr(search) and TOKEN not in search.model_dump_json()
    assert "ghp_from_the_environment_123" not in redactor("env ghp_from_the_environment_123")


def test_a_missing_secret_and_a_bad_server_are_errors_with_lines(
        tmp_path: Path, secrets: FileSecretStore) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(
        "mcp_servers:\n"
        "  - name: search\n"
        "    url: https://mcp.example.com/mcp\n"
        "    secret_headers: [Authorization]\n"
        "  - name: both\n"
        "    url: https://x.example/mcp\n"
        "    command: npx\n"
        "  - name: search\n"
        "    command: uvx\n", "utf-8")
    cfg = load_config(path, secrets)
    messages = [str(e) for e in cfg.errors]
    assert any("pyclaw secret set mcp_servers.search.headers.Authorization" in m
               and ":2" in m for m in messages)
    assert any("either command" in m and ":5" in m for m in messages)
    assert any("two MCP servers are called 'search'" in m for m in messages)
    assert [s.name for s in cfg.mcp_servers] == ["search"]  # the good one still loads


def test_a_secret_written_in_plain_headers_is_a_warning_and_redacted(
        tmp_path: Path, secrets: FileSecretStore) -> None:
    path = write(tmp_path / "pyclaw.yaml", {"mcp_servers": [
        {"name": "search", "url": "https://mcp.example.com/mcp",
         "headers": {"X-Api-Key": "plain-in-yaml-987654", "X-Client": "pyclaw"}}]})
    cfg = load_config(path, secrets)
    assert not cfg.errors
    assert [str(w) for w in cfg.warnings if "mcp_servers.search.headers." in str(w)] == [
        w for w in map(str, cfg.warnings) if "X-Api-Key" in w]
    assert len(cfg.warnings) == 1
    assert "plain-in-yaml-987654" not in redactor("header plain-in-yaml-987654")


def test_saving_writes_the_section_and_keeps_secrets_out_of_the_file(
        tmp_path: Path, secrets: FileSecretStore) -> None:
    path = write(tmp_path / "pyclaw.yaml", {"mcp_servers": [
        {"name": "search", "url": "https://mcp.example.com/mcp",
         "secret_headers": ["Authorization"]}]})
    cfg = load_config(path, secrets)
    cfg.mcp_servers = [cfg.mcp_servers[0].with_secrets(
        {mcp_secret_key("search", "headers", "Authorization"): TOKEN}).model_copy(
        update={"timeout": 12.0})]
    save_config(cfg, secrets)
    text = path.read_text("utf-8")
    assert TOKEN not in text and "mcp-token" not in text
    saved = yaml.safe_load(text)["mcp_servers"]
    assert saved == [{"name": "search", "url": "https://mcp.example.com/mcp",
                      "secret_headers": ["Authorization"], "timeout": 12.0}]
    assert secrets.get(mcp_secret_key("search", "headers", "Authorization")) == TOKEN
    again = load_config(path, secrets)
    assert not again.errors and again.mcp_servers[0].request_headers() == {
        "Authorization": TOKEN}


@pytest.mark.parametrize("body, problem", [
    ({"name": "a__b", "command": "x"}, "pattern"),
    ({"name": "ok"}, "either command"),
    ({"name": "ok", "command": "x", "headers": {"A": "b"}}, "for url servers"),
    ({"name": "ok", "url": "ftp://x"}, "pattern"),
    ({"name": "ok", "url": "https://x", "args": ["a"]}, "for command servers"),
    ({"name": "ok", "url": "https://x", "headers": {"K": "v"}, "secret_headers": ["K"]},
     "both headers and secret_headers"),
    ({"name": "ok", "command": "x", "timeout": 0}, "greater than 0"),
])
def test_bad_server_configs_say_why(body: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        McpServerConfig.model_validate(body)


def test_the_form_keeps_a_stored_secret_only_for_the_same_endpoint() -> None:
    key = mcp_secret_key("search", "headers", "Authorization")
    saved = McpServerConfig(name="search", url="https://mcp.example.com/mcp",
                            secret_headers=["Authorization"]).with_secrets({key: TOKEN})
    form = {"name": "search", "url": "https://mcp.example.com/mcp",
            "secret_headers": ["Authorization"], "secrets": {"headers.Authorization": ""}}
    assert config_from_form(form, saved).request_headers()["Authorization"] == TOKEN
    moved = config_from_form({**form, "url": "https://attacker.example/mcp"}, saved)
    assert moved.missing_secrets() == [key]
    typed = config_from_form({**form, "url": "https://other.example/mcp",
                              "secrets": {"headers.Authorization": "Bearer typed-again-42"}},
                             saved)
    assert typed.request_headers()["Authorization"] == "Bearer typed-again-42"


# ---- results -------------------------------------------------------------------------------
def test_results_become_text_and_media_is_named() -> None:
    image = base64.b64encode(b"\x89PNG" + b"0" * 296).decode()
    result = types.CallToolResult(content=[
        types.TextContent(text="first"),
        types.ImageContent(data=image, mime_type="image/png"),
        types.EmbeddedResource(resource=types.TextResourceContents(uri="file:///a.txt",
                                                                  text="inside")),
        types.ResourceLink(name="report", uri="https://example.com/r.pdf"),
    ])
    assert result_text(result) == ("first\n[image (image/png, about 300 bytes) not shown]\n"
                                   "[file:///a.txt]\ninside\n"
                                   "[resource report: https://example.com/r.pdf]")
    structured = types.CallToolResult(content=[], structured_content={"sum": 5})
    assert result_text(structured) == '{"sum": 5}'
