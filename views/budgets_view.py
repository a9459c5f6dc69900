"""Usage → Budgets: the spending caps as a list to add to, edit and remove from.

Each cap is one row of the plane's budget form (``budgets.CapRow``: whose spending,
daily or monthly, a limit in dollars or tokens); the add/edit form is generated from the
row's schema like every other form (``views.forms``). A change sends the whole list back
(``save_budgets``): the gateway checks it, writes ``budgets:`` to its YAML and checks the
next LLM call against it. A read-only (monitor) token sees the caps but no buttons.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import flet as ft

from pyclaw_app.control import ControlPlane, FieldError
from views.confirm import ask_first
from views.forms import SchemaForm
from views.i18n import t
from views.status_line import StatusLine

__all__ = ["BudgetsSection", "CapEditor", "cap_words"]

_log = logging.getLogger(__name__)

Refresh = Callable[[], None]
Saved = Callable[[], Awaitable[None]]


def _nothing() -> None:
    """The default refresh: control-level tests have no page to update."""


async def _no_reload() -> None:
    """The default after a save: nothing else to refresh."""


def cap_words(values: dict[str, Any]) -> str:
    """One cap in words, as its line in the list reads."""
    scope, channel = values.get("scope"), values.get("channel", "")
    who = {"overall": t("Everything together"),
           "channel": t("Channel {name}", name=channel),
           "each_person": t("Every person on their own")}.get(
        str(scope), t("{sender} on {channel}", sender=values.get("sender", ""), channel=channel))
    period = t("daily") if values.get("period") == "daily" else t("monthly")
    limit = float(values.get("limit") or 0)
    amount = (t("{count} tokens", count=f"{int(limit):,}") if values.get("unit") == "tokens"
              else f"${limit:,.2f}")
    return f"{who} · {period} · {amount}"


class CapEditor:
    """Add or edit one cap: the generated form, Save, Cancel."""

    def __init__(self, section: BudgetsSection, index: int | None) -> None:
        self.section = section
        self.index = index
        values = section.caps[index] if index is not None else {}
        self.form = SchemaForm(section.schema, values)
        self.form_error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.save_button = ft.FilledButton(t("Save cap"), icon=ft.Icons.SAVE_OUTLINED,
                                           on_click=self._on_save)
        self.root = ft.Column(spacing=12, controls=[
            ft.Text(t("Edit cap") if index is not None else t("Add a cap"),
                    theme_style=ft.TextThemeStyle.TITLE_SMALL, weight=ft.FontWeight.W_600),
            self.form.root,
            self.form_error,
            ft.Row(spacing=12, controls=[
                self.save_button, ft.TextButton(t("Cancel"), on_click=self._on_cancel)]),
        ])

    def show_errors(self, errors: Sequence[FieldError]) -> None:
        rest = self.form.show_errors(errors)
        self.form_error.value = "\n".join(rest)
        self.form_error.visible = bool(rest)

    async def save(self, refresh: Refresh = _nothing) -> bool:
        """Send the list with this cap in it; errors of this cap go under its fields."""
        caps = list(self.section.caps)
        position = self.index if self.index is not None else len(caps)
        if self.index is None:
            caps.append(self.form.values())
        else:
            caps[position] = self.form.values()
        self.save_button.disabled = True
        refresh()
        try:
            errors = await self.section.send(caps)
        finally:
            self.save_button.disabled = False
        prefix = f"caps.{position}."
        self.show_errors([FieldError(e.field.removeprefix(prefix), e.message)
                          if e.field.startswith(prefix) else e for e in errors])
        if errors:
            return False
        await self.section.close_editor(t("Budgets saved: the next message is checked "
                                          "against them."))
        return True

    async def _on_save(self, e: ft.Event[ft.Control]) -> None:
        await self.save(e.page.update)
        e.page.update()

    async def _on_cancel(self, e: ft.Event[ft.Control]) -> None:
        await self.section.close_editor()
        e.page.update()


class BudgetsSection:
    """The caps in the Budgets card: one line each, Add, Edit and Remove for the admin."""

    def __init__(self, plane: ControlPlane, *, after_save: Saved = _no_reload) -> None:
        self.plane = plane
        self.read_only = bool(getattr(plane, "read_only", False))
        self.after_save = after_save
        self.available = False
        """Whether the plane serves the form (a gateway from before it does not)."""
        self.caps: list[dict[str, Any]] = []
        self.schema: dict[str, Any] = {}
        self.editor: CapEditor | None = None
        self.notice = StatusLine(wrap=True)
        self.lines = ft.Column(spacing=4)
        self.add_button = ft.FilledTonalButton(t("Add cap"), icon=ft.Icons.ADD,
                                               on_click=self._on_add, visible=not self.read_only)
        self.list_page = ft.Column(spacing=10, controls=[
            ft.Text(t("Caps"), theme_style=ft.TextThemeStyle.TITLE_SMALL,
                    weight=ft.FontWeight.W_600),
            self.lines,
            ft.Text(t("This token may only watch: budgets are changed with the admin token."),
                    size=12, visible=self.read_only, color=ft.Colors.ON_SURFACE_VARIANT),
            ft.Row(spacing=8, controls=[self.add_button]),
        ])
        self.root = ft.Column(spacing=10, visible=False,
                              controls=[self.notice.root, self.list_page])

    async def load(self) -> None:
        try:
            form = await self.plane.budget_form()
        except Exception as exc:  # noqa: BLE001 - an older gateway: the bars still show
            _log.debug("no budget form from the plane: %s", exc)
            self.available = self.root.visible = False
            return
        self.available = self.root.visible = True
        self.caps = [dict(c) for c in form.caps]
        self.schema = form.schema
        self._show_lines()

    def _show_lines(self) -> None:
        lines: list[ft.Control] = []
        for index, values in enumerate(self.caps):
            words = cap_words(values)
            buttons: list[ft.Control] = [] if self.read_only else [
                ft.IconButton(ft.Icons.EDIT_OUTLINED, tooltip=t("Edit cap {cap}", cap=words),
                              on_click=lambda e, i=index: self._on_edit(e, i)),
                ft.IconButton(ft.Icons.DELETE_OUTLINE, icon_color=ft.Colors.ERROR,
                              tooltip=t("Remove cap {cap}", cap=words),
                              on_click=lambda e, i=index: self.confirm_remove(i, e.page))]
            lines.append(ft.Row(vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                ft.Icon(ft.Icons.SAVINGS_OUTLINED, size=18, color=ft.Colors.PRIMARY),
                ft.Text(words, expand=True), *buttons]))
        if not lines:
            lines.append(ft.Text(t("No cap yet: the assistant may spend without a limit."),
                                 color=ft.Colors.ON_SURFACE_VARIANT))
        self.lines.controls = lines

    async def send(self, caps: list[dict[str, Any]]) -> list[FieldError]:
        """Save the whole list; what went wrong comes back as field errors."""
        try:
            return await self.plane.save_budgets(caps)
        except Exception as exc:  # noqa: BLE001 - shown where the change was made
            _log.warning("save_budgets failed: %s", exc)
            return [FieldError("", t("could not save: {error}", error=exc))]

    # -- editor ------------------------------------------------------------------------------

    def open_editor(self, index: int | None) -> CapEditor:
        self.editor = CapEditor(self, index)
        self.notice.hide()
        self.root.controls = [self.notice.root, self.editor.root]
        return self.editor

    async def close_editor(self, message: str = "") -> None:
        saved = bool(message)
        self.editor = None
        await self.load()
        self.root.controls = [self.notice.root, self.list_page]
        if saved:
            self.notice.show(True, message)
            await self.after_save()

    # -- remove ------------------------------------------------------------------------------

    def confirm_remove(self, index: int, page: ft.Page | ft.BasePage | None) -> ft.AlertDialog:
        return ask_first(page, title=t("Remove this cap?"), action=t("Remove"),
                         body=cap_words(self.caps[index]),
                         on_confirm=lambda e: self.remove(index))

    async def remove(self, index: int) -> bool:
        words = cap_words(self.caps[index])
        errors = await self.send([c for i, c in enumerate(self.caps) if i != index])
        await self.load()
        if errors:
            self.notice.show(False, t("The cap was not removed: {errors}",
                                      errors="; ".join(e.message for e in errors)))
            return False
        self.notice.show(True, t("Cap removed: {cap}", cap=words))
        await self.after_save()
        return True

    # -- handlers ----------------------------------------------------------------------------

    def _on_add(self, e: ft.Event[ft.Control]) -> None:
        self.open_editor(None)
        e.page.update()

    def _on_edit(self, e: ft.Event[ft.Control], index: int) -> None:
        self.open_editor(index)
        e.page.update()
