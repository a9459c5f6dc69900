"""Settings → MCP servers: one card per server with its live state, and the add/edit form.

The form is generated from the plane's schema (``McpServerConfig`` plus a transport
choice whose extras hide the other transport's fields). Secret header and variable
values get masked fields of their own, one per name listed in ``secret_headers`` /
``secret_env``, built again when that list changes; a stored one says "A value is
saved" and a blank one keeps it. The editor opens in place of the list, inside the
section's card, so the rest of Settings stays where it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import flet as ft

from pyclaw_app.control import ControlPlane, FieldError, McpServerRow, ProbeOutcome
from views.card_list import CardList
from views.confirm import ask_first
from views.forms import SchemaForm
from views.i18n import t
from views.status_line import StatusLine

__all__ = ["SECRETS", "McpEditor", "McpSection", "card_status"]

_log = logging.getLogger(__name__)

SECRETS = "secrets"
"""The form's field for secret values: ``{"headers.Authorization": value}``."""
SECRET_LISTS = {"stdio": ("secret_env", "env"), "http": ("secret_headers", "headers")}
"""Per transport: the field naming its secrets, and their kind."""
REBUILDS = ("transport", "secret_env", "secret_headers")
SETTLE_POLLS = 40
SETTLE_DELAY = 0.5
"""After a save, the card is refreshed every SETTLE_DELAY s while the server is starting,
at most SETTLE_POLLS times (20 s), so it is seen coming up without a reload."""

Refresh = Callable[[], None]
Sleep = Callable[[float], Awaitable[None]]


def _nothing() -> None:
    """The default refresh: control-level tests have no page to update."""


def card_status(row: McpServerRow) -> tuple[bool, str]:
    """(healthy, words) for a server's card."""
    if row.state == "up":
        count = len(row.tools)
        tools = t("{count} tool", count=count) if count == 1 else t("{count} tools", count=count)
        if row.offered != count:
            tools = t("{offered} of {tools} offered", offered=row.offered, tools=tools)
        return True, t("Up · {tools}", tools=tools)
    if row.state == "starting":
        return True, t("Starting…")
    if not row.enabled:
        return False, t("Off")
    reason = f": {row.error}" if row.error else ""
    return False, (t("Down") if row.state == "down" else t("Stopped")) + reason


def _secret_schema(kind: str, names: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": {
        f"{kind}.{name}": {"type": "string", "format": "password", "title": name,
                           "group": "essentials", "description": _secret_description(kind, name)}
        for name in names}}


def _secret_description(kind: str, name: str) -> str:
    if kind == "headers":
        return t("The value of the secret header {name}; kept in the secret store, never in "
                 "the config file", name=name)
    return t("The value of the secret environment variable {name}; kept in the secret store, "
             "never in the config file", name=name)


class McpEditor:
    """Add or edit one server: the generated form, its secret values, Test connection, Save."""

    def __init__(self, section: McpSection, row: McpServerRow | None) -> None:
        self.section = section
        self.row = row
        self.original_name = row.name if row is not None else None
        self.form = SchemaForm(section.schema, dict(row.values) if row else {"transport": "stdio"},
                               on_blur=self._blurred)
        self.secret_slot = ft.Container()
        self.secret_form = SchemaForm({})
        self.secret_names: tuple[str, tuple[str, ...]] = ("", ())
        self.typed: dict[str, str] = {}
        """Secret values typed so far, by field: a field hidden by a transport switch or a
        name taken off the list comes back with its value."""
        self.progress = ft.ProgressRing(width=20, height=20, stroke_width=2.5, visible=False,
                                        semantics_label=t("Testing the connection"))
        self.outcome = StatusLine(wrap=True)
        self.tool_list = ft.Row(wrap=True, spacing=6, run_spacing=6, visible=False)
        self.form_error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.test_button = ft.OutlinedButton(t("Test connection"), icon=ft.Icons.WIFI_TETHERING,
                                             on_click=self._on_test)
        self.save_button = ft.FilledButton(t("Save MCP server"), icon=ft.Icons.SAVE_OUTLINED,
                                           on_click=self._on_save)
        title = (t("Edit MCP server {name}", name=row.name) if row is not None
                 else t("Add an MCP server"))
        self.root = ft.Column(spacing=14, controls=[
            ft.Row([ft.IconButton(ft.Icons.ARROW_BACK, tooltip=t("Back to the MCP servers"),
                                  on_click=self._on_cancel),
                    ft.Text(title, theme_style=ft.TextThemeStyle.TITLE_MEDIUM,
                            weight=ft.FontWeight.W_600)], spacing=8),
            ft.Text(t("A program pyclaw starts (stdio: npx, uvx, a script) or a server it "
                      "reaches over HTTP. Its tools are offered to the assistant as "
                      "<name>__<tool>."),
                    color=ft.Colors.ON_SURFACE_VARIANT),
            self.form.root,
            self.secret_slot,
            self.form_error,
            ft.Divider(height=1),
            ft.Row(wrap=True, spacing=12, run_spacing=8,
                   vertical_alignment=ft.CrossAxisAlignment.CENTER,
                   controls=[self.test_button, self.progress]),
            self.outcome.root,
            self.tool_list,
            ft.Row(spacing=12, controls=[
                self.save_button, ft.TextButton(t("Cancel"), on_click=self._on_cancel)]),
        ])
        self.show_secrets()

    # -- secret values ---------------------------------------------------------------------

    def _secret_names(self) -> tuple[str, tuple[str, ...]]:
        """The kind of secret the chosen transport takes, and the names listed for it."""
        transport = str(self.form["transport"].value() or "stdio")
        field, kind = SECRET_LISTS.get(transport, SECRET_LISTS["stdio"])
        names = self.form[field].value() or []
        return kind, tuple(dict.fromkeys(str(n) for n in names))

    def show_secrets(self) -> None:
        """One masked field per listed secret; what was typed survives a rebuild."""
        wanted = self._secret_names()
        if wanted == self.secret_names:
            return
        self.typed.update({n: str(f.raw or "") for n, f in self.secret_form.fields.items()})
        kind, names = wanted
        stored = self.row.secrets_set if self.row is not None else ()
        self.secret_form = SchemaForm(_secret_schema(kind, names), {}, stored, grouped=False)
        for name, field in self.secret_form.fields.items():
            if isinstance(field.input, ft.TextField) and name in self.typed:
                field.input.value = self.typed[name]
        self.secret_names = wanted
        self.secret_slot.content = ft.Column(spacing=8, controls=[
            ft.Text(t("Secret values"), theme_style=ft.TextThemeStyle.TITLE_SMALL,
                    weight=ft.FontWeight.W_600),
            self.secret_form.root]) if names else None

    def _blurred(self, field: Any) -> None:
        if field.spec.name in REBUILDS:
            self.show_secrets()

    # -- values, test, save ----------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        self.show_secrets()
        values = self.form.values()
        values[SECRETS] = {k: v for k, v in self.secret_form.values().items() if v}
        return values

    def show_errors(self, errors: Sequence[FieldError]) -> None:
        secret = [FieldError(e.field.removeprefix(f"{SECRETS}."), e.message) for e in errors
                  if e.field.startswith(f"{SECRETS}.")]
        rest = self.form.show_errors([e for e in errors if not e.field.startswith(f"{SECRETS}.")])
        rest += self.secret_form.show_errors(secret)
        self.form_error.value = "\n".join(rest)
        self.form_error.visible = bool(rest)

    async def test_connection(self, refresh: Refresh = _nothing) -> bool:
        """Start or reach the server once with the form's values; list its tools."""
        self.progress.visible = True
        self.outcome.hide()
        self.tool_list.visible = False
        self.test_button.disabled = True
        refresh()
        try:
            tools, outcome = await self.section.plane.test_mcp_server(self.values(),
                                                                      self.original_name)
        except Exception as exc:  # noqa: BLE001 - the result line says what went wrong
            _log.warning("test_mcp_server failed: %s", exc)
            tools, outcome = [], ProbeOutcome(False, t("could not test: {error}", error=exc))
        finally:
            self.progress.visible = False
            self.test_button.disabled = False
        self.outcome.show(outcome.ok, outcome.message)
        self.tool_list.controls = [
            ft.Container(padding=ft.Padding.symmetric(horizontal=8, vertical=2),
                         border_radius=8, bgcolor=ft.Colors.SECONDARY_CONTAINER,
                         content=ft.Text(name, size=12, color=ft.Colors.ON_SECONDARY_CONTAINER))
            for name in tools]
        self.tool_list.visible = bool(tools)
        return outcome.ok

    @property
    def tools_shown(self) -> list[str]:
        return [str(c.content.value) for c in self.tool_list.controls
                if isinstance(c, ft.Container) and isinstance(c.content, ft.Text)]

    async def save(self, refresh: Refresh = _nothing) -> bool:
        self.save_button.disabled = True
        refresh()
        values = self.values()
        try:
            errors = await self.section.plane.save_mcp_server(values, self.original_name)
        except Exception as exc:  # noqa: BLE001 - shown on the form, nothing is lost
            _log.warning("save_mcp_server failed: %s", exc)
            errors = [FieldError("", t("could not save: {error}", error=exc))]
        finally:
            self.save_button.disabled = False
        self.show_errors(errors)
        if errors:
            return False
        name = values.get("name", "")
        await self.section.close_editor(t("MCP server {name} saved: its tools are offered "
                                          "once it is up.", name=name))
        return True

    async def _on_test(self, e: ft.Event[ft.Control]) -> None:
        await self.test_connection(e.page.update)
        e.page.update()

    async def _on_save(self, e: ft.Event[ft.Control]) -> None:
        if await self.save(e.page.update):
            e.page.update()
            await self.section.settle(e.page.update)
        e.page.update()

    async def _on_cancel(self, e: ft.Event[ft.Control]) -> None:
        await self.section.close_editor()
        e.page.update()


class McpSection(CardList[McpServerRow, McpEditor]):
    """The MCP servers part of Settings: cards with live state, Add, Edit, Delete."""

    def __init__(self, plane: ControlPlane, *, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__()
        self.plane = plane
        self.sleep = sleep
        self._mount(ft.Column(spacing=14, controls=[
            ft.Column(spacing=2, controls=[
                ft.Text(t("MCP servers"), theme_style=ft.TextThemeStyle.TITLE_MEDIUM,
                        weight=ft.FontWeight.W_600),
                ft.Text(t("Tools from Model Context Protocol servers, offered to the "
                          "assistant beside the built-in ones. Secret headers and variables "
                          "are kept in the secret store, never in the config."), size=13,
                        color=ft.Colors.ON_SURFACE_VARIANT)]),
            self.notice.root,
            self.cards,
            ft.Row(spacing=8, controls=[
                ft.FilledTonalButton(t("Add MCP server"), icon=ft.Icons.ADD,
                                     on_click=self._on_add),
                ft.TextButton(t("Refresh"), icon=ft.Icons.REFRESH, on_click=self._on_refresh,
                              tooltip=t("Read the servers' state again"))]),
        ]))

    async def _listed(self) -> tuple[Sequence[McpServerRow], dict[str, Any]]:
        listed = await self.plane.mcp_servers()
        return listed.servers, listed.schema

    def _load_failed(self, error: Exception) -> str:
        return t("Could not load the MCP servers: {error}", error=error)

    def _show_cards(self) -> None:
        cards: list[ft.Control] = []
        for row in self.rows:
            ok, words = card_status(row)
            color = ft.Colors.GREEN_700 if ok else ft.Colors.ERROR
            stored = len(row.secrets_set)
            secrets = "" if not stored else " · " + (
                t("{count} secret saved", count=stored) if stored == 1
                else t("{count} secrets saved", count=stored))
            cards.append(ft.Container(
                padding=ft.Padding.symmetric(horizontal=12, vertical=8), border_radius=10,
                border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                content=ft.Row(vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                    ft.Icon(ft.Icons.TERMINAL if row.transport == "stdio"
                            else ft.Icons.CLOUD_OUTLINED, color=ft.Colors.PRIMARY),
                    ft.Column(expand=True, spacing=2, controls=[
                        ft.Text(row.name, weight=ft.FontWeight.W_600),
                        ft.Text(f"{'stdio' if row.transport == 'stdio' else 'HTTP'} · "
                                f"{row.target}{secrets}", size=12,
                                color=ft.Colors.ON_SURFACE_VARIANT),
                        ft.Row(spacing=4, vertical_alignment=ft.CrossAxisAlignment.CENTER,
                               controls=[ft.Icon(ft.Icons.CHECK_CIRCLE if ok
                                                 else ft.Icons.ERROR_OUTLINE, size=14,
                                                 color=color),
                                         ft.Text(words, size=12, color=color,
                                                 expand=True)]),
                    ]),
                    ft.IconButton(ft.Icons.EDIT_OUTLINED,
                                  tooltip=t("Edit {name}", name=row.name),
                                  on_click=lambda e, n=row.name: self._on_edit(e, n)),
                    ft.IconButton(ft.Icons.DELETE_OUTLINE,
                                  tooltip=t("Delete {name}", name=row.name),
                                  icon_color=ft.Colors.ERROR,
                                  on_click=lambda e, n=row.name: self.confirm_delete(n, e.page)),
                ])))
        if not cards:
            cards.append(ft.Text(t("No MCP server yet."), color=ft.Colors.ON_SURFACE_VARIANT))
        self.cards.controls = cards

    def status_of(self, name: str) -> str:
        row = self.row(name)
        return card_status(row)[1] if row is not None else ""

    def _editor(self, row: McpServerRow | None) -> McpEditor:
        return McpEditor(self, row)

    async def settle(self, refresh: Refresh = _nothing) -> None:
        """Read the state again while a server is starting, so the card shows it come up."""
        for _ in range(SETTLE_POLLS):
            if not any(r.state == "starting" for r in self.rows) or self.editor is not None:
                return
            await self.sleep(SETTLE_DELAY)
            await self.load()
            refresh()

    # -- delete ------------------------------------------------------------------------------

    def confirm_delete(self, name: str, page: ft.Page | ft.BasePage | None) -> ft.AlertDialog:
        return ask_first(page, title=t("Delete MCP server {name}?", name=name),
                         action=t("Delete"),
                         body=t("It is stopped, its tools leave the assistant, and its stored "
                                "secrets are deleted."), on_confirm=lambda e: self.delete(name))

    async def _delete(self, name: str) -> list[FieldError]:
        return list(await self.plane.delete_mcp_server(name))

    def _deleted(self, name: str) -> str:
        return t("MCP server {name} deleted.", name=name)

    async def _on_refresh(self, e: ft.Event[ft.Control]) -> None:
        await self.load()
        e.page.update()
