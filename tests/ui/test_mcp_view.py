"""Settings → MCP servers against the fake admin plane (real McpServerConfig validation):
cards with state, the generated form with transport-dependent fields, secret values,
Test connection listing tools, Save, Edit keeping a stored secret, Delete."""

from __future__ import annotations

from typing import Any

import flet as ft

from pyclaw_app.config import AgentConfig, ProviderConfig
from pyclaw_app.control import McpServerRow, McpServers, SettingsForm
from tests.ui.fake_admin_plane import FakeAdminPlane
from views.forms import SAVED_SECRET_NOTE, SchemaForm
from views.mcp_view import McpEditor, McpSection, card_status
from views.settings_view import SettingsView


def type_into(form: SchemaForm, name: str, text: str) -> None:
    field = form[name]
    assert isinstance(field.input, ft.TextField), name
    field.input.value = text


def choose(form: SchemaForm, name: str, value: str) -> None:
    field = form[name]
    assert isinstance(field.input, ft.Dropdown), name
    field.input.value = value
    form.update_visibility()


def texts(control: Any) -> list[str]:
    """Every Text value under a control (what the user reads)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, ft.Text) and node.value:
            found.append(str(node.value))
        for attr in ("content", "controls", "title", "actions"):
            child = getattr(node, attr, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ft.Control):
                    walk(item)

    walk(control)
    return found


async def section(plane: FakeAdminPlane | None = None) -> tuple[McpSection, FakeAdminPlane]:
    plane = plane or FakeAdminPlane()
    view = McpSection(plane)
    await view.load()
    return view, plane


def new_stdio(view: McpSection, name: str = "files") -> McpEditor:
    editor = view.open_editor(None)
    type_into(editor.form, "name", name)
    type_into(editor.form, "command", "npx")
    type_into(editor.form, "args", "-y, @modelcontextprotocol/server-filesystem, /srv")
    return editor


async def test_add_a_stdio_server_test_it_and_save_it_with_a_secret() -> None:
    view, plane = await section()
    assert texts(view.cards) == ["No MCP server yet."]
    editor = new_stdio(view)
    assert view.root.controls == [editor.root]
    # stdio: the command's fields, not the URL's
    assert editor.form.shown("command") and editor.form.shown("args")
    assert not editor.form.shown("url") and not editor.form.shown("secret_headers")
    assert editor.secret_form.fields == {}

    type_into(editor.form, "secret_env", "API_TOKEN")
    editor._blurred(editor.form["secret_env"])
    secret = editor.secret_form["env.API_TOKEN"]
    assert secret.spec.kind == "secret" and secret.spec.title == "API_TOKEN"
    assert isinstance(secret.input, ft.TextField) and secret.input.password

    assert await editor.test_connection()
    assert editor.outcome.message == "2 tools available"
    assert editor.tools_shown == ["read_file", "write_file"]

    assert not await editor.save()  # the secret has no value yet: said under its field
    assert secret.error == "type its value" and plane.mcp_rows == []

    type_into(editor.secret_form, "env.API_TOKEN", "s3cret")
    assert await editor.save()
    sent, original = plane.calls[-1][1]
    assert original is None and sent["secrets"] == {"env.API_TOKEN": "s3cret"}
    assert sent["args"] == ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
    assert plane.mcp_secrets == {("files", "env.API_TOKEN"): "s3cret"}
    assert view.editor is None and view.root.controls == [view.list_page]
    shown = texts(view.cards)
    assert "files" in shown and "Up · 2 tools" in shown
    assert any("stdio · npx · 1 secret saved" == t for t in shown)
    assert "s3cret" not in " ".join(texts(view.root))
    assert view.notice.message.startswith("MCP server files saved")


async def test_http_fields_show_only_for_http_and_errors_land_under_them() -> None:
    view, plane = await section()
    editor = view.open_editor(None)
    choose(editor.form, "transport", "http")
    editor._blurred(editor.form["transport"])
    assert editor.form.shown("url") and editor.form.shown("secret_headers")
    assert not editor.form.shown("command") and not editor.form.shown("env")
    type_into(editor.form, "name", "web")
    type_into(editor.form, "url", "ftp://nope")
    assert not await editor.save()
    assert editor.form["url"].error and plane.mcp_rows == []

    type_into(editor.form, "url", "https://mcp.example/mcp")
    type_into(editor.form, "secret_headers", "Authorization")
    assert list(editor.values()["secrets"]) == []
    assert list(editor.secret_form.fields) == ["headers.Authorization"]
    type_into(editor.secret_form, "headers.Authorization", "Bearer t")
    # back to stdio and again to http: what was typed is still there
    choose(editor.form, "transport", "stdio")
    editor._blurred(editor.form["transport"])
    assert editor.secret_form.fields == {}
    choose(editor.form, "transport", "http")
    editor._blurred(editor.form["transport"])
    assert editor.values()["secrets"] == {"headers.Authorization": "Bearer t"}
    assert await editor.save()
    assert plane.mcp_rows[0].transport == "http"
    assert "HTTP · https://mcp.example/mcp · 1 secret saved" in texts(view.cards)


async def test_edit_keeps_a_stored_secret_and_delete_asks_first() -> None:
    view, plane = await section()
    editor = new_stdio(view)
    type_into(editor.form, "secret_env", "API_TOKEN")
    editor.show_secrets()  # what a blur of the field does
    type_into(editor.secret_form, "env.API_TOKEN", "s3cret")
    assert await editor.save()

    editor = view.open_editor("files")
    secret = editor.secret_form["env.API_TOKEN"]
    assert secret.secret_saved and SAVED_SECRET_NOTE in texts(secret.root)
    assert isinstance(secret.input, ft.TextField) and secret.input.value == ""
    type_into(editor.form, "tools", "read_file")
    assert await editor.save()
    assert plane.calls[-1][1][1] == "files"
    assert plane.mcp_secrets == {("files", "env.API_TOKEN"): "s3cret"}
    assert plane.mcp_rows[0].values["tools"] == ["read_file"]

    dialog = view.confirm_delete("files", None)
    assert texts(dialog.title) == ["Delete MCP server files?"]
    assert await view.delete("files")
    assert texts(view.cards) == ["No MCP server yet."] and plane.mcp_secrets == {}
    assert not await view.delete("files")
    assert "no MCP server is called 'files'" in view.notice.message


async def test_a_failed_test_says_why_and_lists_nothing() -> None:
    view, _ = await section()
    editor = new_stdio(view)
    type_into(editor.form, "command", "/opt/missing/server")
    assert not await editor.test_connection()
    assert editor.outcome.message == "the program was not found" and editor.tools_shown == []
    assert not editor.tool_list.visible


def row(**changes: Any) -> McpServerRow:
    base = McpServerRow("files", "stdio", "npx", True, {"name": "files"}, (), "up",
                        ("a", "b", "c"), 3)
    return McpServerRow(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})


def test_card_words() -> None:
    assert card_status(row()) == (True, "Up · 3 tools")
    assert card_status(row(offered=1)) == (True, "Up · 1 of 3 tools offered")
    assert card_status(row(state="down", error="connection refused")) == (
        False, "Down: connection refused")
    assert card_status(row(state="stopped", enabled=False, error="disabled")) == (False, "Off")
    assert card_status(row(state="starting")) == (True, "Starting…")


async def test_the_card_follows_a_server_while_it_starts() -> None:
    plane = FakeAdminPlane()
    plane.mcp_rows = [row(state="starting", tools=(), offered=0)]
    view, _ = await section(plane)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            plane.mcp_rows = [row()]

    view.sleep = sleep
    await view.settle()
    assert len(slept) == 2 and view.status_of("files") == "Up · 3 tools"


async def test_a_plane_that_cannot_list_leaves_settings_usable() -> None:
    class Broken(FakeAdminPlane):
        async def mcp_servers(self) -> McpServers:
            raise RuntimeError("gateway unreachable")

    view, _ = await section(Broken())
    assert view.notice.message == "Could not load the MCP servers: gateway unreachable"


async def test_settings_shows_the_section_below_providers() -> None:
    class Plane(FakeAdminPlane):
        def settings_form(self) -> SettingsForm:
            return SettingsForm((), (), AgentConfig().model_dump(mode="json"),
                                ProviderConfig.model_json_schema(),
                                AgentConfig.model_json_schema())

        async def usage(self, **filters: Any) -> list[Any]:
            return []

    plane = Plane()
    plane.mcp_rows = [row()]
    view = SettingsView(plane)
    await view.load()
    shown = texts(view.settings_page)
    assert shown.index("MCP servers") > shown.index("Providers")
    assert shown.index("MCP servers") < shown.index("Assistant")
    assert "Up · 3 tools" in shown
