"""Settings → Profiles: one card per profile (where it is used, what answers there), and
the add/edit form generated from the plane's schema (``ProfileConfig`` plus its name).

A profile is what a channel, or one chat of it, gets instead of the assistant's
settings; blank fields inherit them. The editor opens in place of the list inside the
section's card, like the MCP servers' one; a save is applied to the next message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import flet as ft

from pyclaw_app.control import ControlPlane, FieldError, ProfileRow
from views.card_list import CardList
from views.confirm import ask_first
from views.forms import LIST, SchemaForm
from views.i18n import t

__all__ = ["ProfileEditor", "ProfilesSection", "card_lines"]

_log = logging.getLogger(__name__)

Refresh = Callable[[], None]


def _nothing() -> None:
    """The default refresh: control-level tests have no page to update."""


def card_lines(row: ProfileRow) -> list[str]:
    """What a profile's card says under its name."""
    used = ", ".join(row.used_on) if row.used_on else t("nowhere yet (add channels or chats)")
    lines = [t("Used on {places}", places=used), t("Answers with {model}", model=row.answers_with)]
    values = row.values
    extras = [t("in {language}", language=values["language"]) if values.get("language") else "",
              t("temperature {value}", value=f"{values['temperature']:g}")
              if isinstance(values.get("temperature"), int | float) else "",
              t("own system prompt") if values.get("system_prompt") else "",
              (t("no built-in tools") if values.get("tools") == []
               else t("tools: {names}", names=", ".join(values["tools"]))
               if values.get("tools") else ""),
              (t("no MCP tools") if values.get("mcp") == []
               else f"MCP: {', '.join(values['mcp'])}" if values.get("mcp") else "")]
    if any(extras):
        lines.append(" · ".join(e for e in extras if e))
    return lines


class ProfileEditor:
    """Add or edit one profile: the generated form, Save, Cancel."""

    def __init__(self, section: ProfilesSection, row: ProfileRow | None) -> None:
        self.section = section
        self.row = row
        self.original_name = row.name if row is not None else None
        self.stored: dict[str, Any] = dict(row.values) if row is not None else {}
        self.form = SchemaForm(section.schema, self.stored)
        if "system_prompt" in self.form.fields:
            field = self.form["system_prompt"]
            if isinstance(field.input, ft.TextField):
                field.input.multiline = True
                field.input.min_lines = 3
                field.input.max_lines = 12
            self.form.widen("system_prompt")
        self.form_error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.save_button = ft.FilledButton(t("Save profile"), icon=ft.Icons.SAVE_OUTLINED,
                                           on_click=self._on_save)
        title = t("Edit profile {name}", name=row.name) if row is not None else t("Add a profile")
        self.root = ft.Column(spacing=14, controls=[
            ft.Row([ft.IconButton(ft.Icons.ARROW_BACK, tooltip=t("Back to the profiles"),
                                  on_click=self._on_cancel),
                    ft.Text(title, theme_style=ft.TextThemeStyle.TITLE_MEDIUM,
                            weight=ft.FontWeight.W_600)], spacing=8),
            ft.Text(t("What these channels or chats get instead of the assistant's settings; "
                      "blank fields are the assistant's."), color=ft.Colors.ON_SURFACE_VARIANT),
            self.form.root,
            self.form_error,
            ft.Row(spacing=12, controls=[
                self.save_button, ft.TextButton(t("Cancel"), on_click=self._on_cancel)]),
        ])

    def values(self) -> dict[str, Any]:
        """The form's values; a list stored empty ("no tools") and left blank stays empty,
        since a blank list field otherwise means "the assistant's"."""
        values = self.form.values()
        for name, field in self.form.fields.items():
            if field.spec.kind == LIST and name not in values and self.stored.get(name) == []:
                values[name] = []
        return values

    def show_errors(self, errors: Sequence[FieldError]) -> None:
        rest = self.form.show_errors(errors)
        self.form_error.value = "\n".join(rest)
        self.form_error.visible = bool(rest)

    async def save(self, refresh: Refresh = _nothing) -> bool:
        self.save_button.disabled = True
        refresh()
        values = self.values()
        try:
            errors = await self.section.plane.save_profile(values, self.original_name)
        except Exception as exc:  # noqa: BLE001 - shown on the form, nothing is lost
            _log.warning("save_profile failed: %s", exc)
            errors = [FieldError("", t("could not save: {error}", error=exc))]
        finally:
            self.save_button.disabled = False
        self.show_errors(errors)
        if errors:
            return False
        await self.section.close_editor(t("Profile {name} saved: used from the next message.",
                                          name=values.get("name", "")))
        return True

    async def _on_save(self, e: ft.Event[ft.Control]) -> None:
        await self.save(e.page.update)
        e.page.update()

    async def _on_cancel(self, e: ft.Event[ft.Control]) -> None:
        await self.section.close_editor()
        e.page.update()


class ProfilesSection(CardList[ProfileRow, ProfileEditor]):
    """The Profiles part of Settings: cards, Add, Edit, Delete."""

    def __init__(self, plane: ControlPlane) -> None:
        super().__init__()
        self.plane = plane
        self.read_only = bool(getattr(plane, "read_only", False))
        self.add_button = ft.FilledTonalButton(t("Add profile"), icon=ft.Icons.ADD,
                                               on_click=self._on_add, visible=not self.read_only)
        self._mount(ft.Column(spacing=14, controls=[
            ft.Column(spacing=2, controls=[
                ft.Text(t("Profiles"), theme_style=ft.TextThemeStyle.TITLE_MEDIUM,
                        weight=ft.FontWeight.W_600),
                ft.Text(t("Other settings for some channels or chats: system prompt, "
                          "language, model and fallbacks, temperature, tools. A chat's own "
                          "profile wins over its channel's; everything else uses the "
                          "assistant's settings."),
                        size=13, color=ft.Colors.ON_SURFACE_VARIANT)]),
            self.notice.root,
            self.cards,
            ft.Text(t("This token may only watch: profiles are changed with the admin "
                      "token."), size=12, visible=self.read_only,
                    color=ft.Colors.ON_SURFACE_VARIANT),
            ft.Row(spacing=8, controls=[self.add_button]),
        ]))

    async def _listed(self) -> tuple[Sequence[ProfileRow], dict[str, Any]]:
        listed = await self.plane.profiles()
        return listed.profiles, listed.schema

    def _load_failed(self, error: Exception) -> str:
        return t("Could not load the profiles: {error}", error=error)

    def _show_cards(self) -> None:
        cards: list[ft.Control] = []
        for row in self.rows:
            details: list[ft.Control] = [ft.Text(row.name, weight=ft.FontWeight.W_600)]
            details += [ft.Text(line, size=12, color=ft.Colors.ON_SURFACE_VARIANT)
                        for line in card_lines(row)]
            details += [ft.Row(spacing=4, vertical_alignment=ft.CrossAxisAlignment.CENTER,
                               controls=[ft.Icon(ft.Icons.ERROR_OUTLINE, size=14,
                                                 color=ft.Colors.ERROR),
                                         ft.Text(problem, size=12, color=ft.Colors.ERROR,
                                                 expand=True)])
                        for problem in row.problems]
            buttons: list[ft.Control] = [] if self.read_only else [
                ft.IconButton(ft.Icons.EDIT_OUTLINED,
                              tooltip=t("Edit profile {name}", name=row.name),
                              on_click=lambda e, n=row.name: self._on_edit(e, n)),
                ft.IconButton(ft.Icons.DELETE_OUTLINE,
                              tooltip=t("Delete profile {name}", name=row.name),
                              icon_color=ft.Colors.ERROR,
                              on_click=lambda e, n=row.name: self.confirm_delete(n, e.page))]
            cards.append(ft.Container(
                padding=ft.Padding.symmetric(horizontal=12, vertical=8), border_radius=10,
                border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                content=ft.Row(vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                    ft.Icon(ft.Icons.TUNE, color=ft.Colors.PRIMARY),
                    ft.Column(expand=True, spacing=2, controls=details),
                    *buttons])))
        if not cards:
            cards.append(ft.Text(t("No profile yet: every channel uses the assistant's "
                                   "settings."), color=ft.Colors.ON_SURFACE_VARIANT))
        self.cards.controls = cards

    def _editor(self, row: ProfileRow | None) -> ProfileEditor:
        return ProfileEditor(self, row)

    # -- delete ------------------------------------------------------------------------------

    def confirm_delete(self, name: str, page: ft.Page | ft.BasePage | None) -> ft.AlertDialog:
        return ask_first(page, title=t("Delete profile {name}?", name=name), action=t("Delete"),
                         body=t("Its channels and chats go back to the assistant's settings "
                                "from the next message."), on_confirm=lambda e: self.delete(name))

    async def _delete(self, name: str) -> list[FieldError]:
        return list(await self.plane.delete_profile(name))

    def _deleted(self, name: str) -> str:
        return t("Profile {name} deleted.", name=name)
