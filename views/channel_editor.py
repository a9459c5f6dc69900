"""The add/edit form of one channel: name, generated fields, Test connection, Save.

Everything channel-specific comes from the ChannelType's schema; this module
only knows the flow: validate on blur (errors under the touched fields),
probe with a progress ring, save through the plane (which applies it live).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import flet as ft

from pyclaw_app.control import ChannelForm, ChannelType, ControlPlane, FieldError, ProbeOutcome
from views.channel_icons import channel_badge
from views.forms import FormField, SchemaForm, labelled
from views.i18n import t

__all__ = ["NAME_FIELD", "ChannelEditor"]

_log = logging.getLogger(__name__)

NAME_FIELD = "name"
Refresh = Callable[[], None]


def _nothing() -> None:
    """The default refresh: control-level tests have no page to update."""


class ChannelEditor:
    """One form; ``existing`` is the stored channel when editing, None when adding."""

    def __init__(self, plane: ControlPlane, channel_type: ChannelType,
                 existing: ChannelForm | None = None, *, suggested_name: str = "",
                 types: Sequence[ChannelType] = (),
                 on_close: Callable[[bool], Awaitable[None]] | None = None) -> None:
        self.plane = plane
        self.type = channel_type
        self.existing = existing
        self.types = {k.type: k for k in types} or {channel_type.type: channel_type}
        self._on_close = on_close
        self._suggested = suggested_name
        self.touched: set[str] = set()
        self.type_picker = ft.Dropdown(
            label=t("Channel type"),
            value=channel_type.type,
            options=[ft.DropdownOption(key=k.type, text=k.title) for k in self.types.values()],
            visible=existing is None and len(self.types) > 1,
            on_select=self._type_picked,
            width=320,
        )
        self.name = ft.TextField(
            label=t("Name"),
            value=existing.name if existing else suggested_name,
            read_only=existing is not None,
            helper=t("How this channel is called in logs and the config file "
                     "(lowercase letters, digits, - or _)."),
            helper_max_lines=2,
            prefix_icon=ft.Icons.LABEL_OUTLINE,
            on_blur=self._name_blurred,
        )
        self.form = SchemaForm(channel_type.schema, existing.values if existing else None,
                               existing.secrets_set if existing else (),
                               on_blur=self._field_blurred)
        self.form_error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.progress = ft.ProgressRing(width=20, height=20, stroke_width=2.5, visible=False,
                                        semantics_label=t("Testing the connection"))
        self.probe_icon = ft.Icon(ft.Icons.CHECK_CIRCLE, size=20, visible=False)
        self.probe_result = ft.Text(visible=False, weight=ft.FontWeight.W_500)
        self.test_button = ft.OutlinedButton(t("Test connection"), icon=ft.Icons.WIFI_TETHERING,
                                             on_click=self._on_test)
        self.save_button = ft.FilledButton(t("Save"), icon=ft.Icons.SAVE_OUTLINED,
                                           on_click=self._on_save)
        self.cancel_button = ft.TextButton(t("Cancel"), on_click=self._on_cancel)
        self.title = ft.Text(theme_style=ft.TextThemeStyle.HEADLINE_SMALL)
        self.icon = ft.Container()  # the type's logo, swapped with the type
        self.intro = ft.Row(vertical_alignment=ft.CrossAxisAlignment.CENTER)
        self.form_slot = ft.Container(content=self.form.root)
        self._show_type()
        self.root = ft.Column(
            expand=True,
            scroll=ft.ScrollMode.AUTO,
            spacing=16,
            controls=[
                ft.Row([
                    ft.IconButton(ft.Icons.ARROW_BACK, tooltip=t("Back to channels"),
                                  on_click=self._on_cancel),
                    self.icon,
                    self.title,
                ], spacing=8),
                ft.Container(
                    padding=ft.Padding.symmetric(horizontal=20, vertical=16),
                    border_radius=12,
                    border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                    bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
                    width=1000,
                    content=ft.Column(
                        spacing=16,
                        horizontal_alignment=ft.CrossAxisAlignment.STRETCH,
                        controls=[
                            self.intro,
                            ft.Row([labelled(self.type_picker, t("Channel type"))],
                                   visible=self.type_picker.visible),
                            self.name,
                            self.form_slot,
                            self.form_error,
                            ft.Divider(height=1),
                            ft.Row(wrap=True, spacing=12, run_spacing=8,
                                   vertical_alignment=ft.CrossAxisAlignment.CENTER,
                                   controls=[self.test_button, self.progress,
                                             self.probe_icon, self.probe_result]),
                            ft.Row(spacing=12, controls=[self.save_button, self.cancel_button]),
                        ],
                    ),
                ),
            ],
        )

    def _show_type(self) -> None:
        """Title, icon, description and setup-guide link of the current type."""
        kind = self.type
        self.title.value = (t("Edit {name}", name=self.existing.name) if self.existing
                            else t("Add a {title} channel", title=kind.title))
        self.icon.content = channel_badge(kind, 36)
        parts: list[ft.Control] = []
        if kind.description:
            parts.append(ft.Text(kind.description, color=ft.Colors.ON_SURFACE_VARIANT,
                                 expand=True))
        if kind.docs_url:
            parts.append(ft.TextButton(t("Setup guide"), icon=ft.Icons.OPEN_IN_NEW,
                                       url=kind.docs_url,
                                       tooltip=t("{title} setup guide", title=kind.title)))
        self.intro.controls = parts
        self.intro.visible = bool(parts)

    def pick_type(self, type_name: str) -> None:
        """A new channel changes type: a fresh form for that type (name follows if untouched)."""
        if type_name == self.type.type or type_name not in self.types:
            return
        self.type = self.types[type_name]
        if self.channel_name == self._suggested:
            self._suggested = type_name
            self.name.value = type_name
        self.touched.clear()
        self.name.error = None
        self.form = SchemaForm(self.type.schema, on_blur=self._field_blurred)
        self.form_slot.content = self.form.root
        self.form_error.visible = False
        self.probe_result.visible = self.probe_icon.visible = False
        self.type_picker.value = type_name
        self._show_type()

    def _type_picked(self, e: ft.Event[ft.Dropdown]) -> None:
        self.pick_type(str(self.type_picker.value or ""))

    @property
    def channel_name(self) -> str:
        return (self.name.value or "").strip()

    def values(self) -> dict[str, Any]:
        return self.form.values()

    # -- validation --------------------------------------------------------------------------

    def validate(self, *, touched_only: bool = False) -> list[FieldError]:
        """Ask the plane; show the errors (only under touched fields when ``touched_only``)."""
        try:
            errors = self.plane.validate_channel(self.channel_name, self.type.type, self.values())
        except Exception as exc:  # noqa: BLE001 - shown on the form, the panel stays usable
            _log.warning("validate_channel failed: %s", exc)
            errors = [FieldError("", t("could not check the form: {error}", error=exc))]
        self.show_errors(errors, touched_only=touched_only)
        return errors

    def show_errors(self, errors: Sequence[FieldError], *, touched_only: bool = False) -> None:
        only = self.touched if touched_only else None
        name_errors = [e.message for e in errors if e.field == NAME_FIELD]
        if only is None or NAME_FIELD in only:
            self.name.error = "; ".join(name_errors) or None
        rest = self.form.show_errors([e for e in errors if e.field != NAME_FIELD], only)
        if touched_only:
            rest = []  # errors of the form as a whole wait for Save
        self.form_error.value = "\n".join(rest)
        self.form_error.visible = bool(rest)

    def _field_blurred(self, field: FormField) -> None:
        self.touched.add(field.spec.name)
        self.validate(touched_only=True)

    def _name_blurred(self, e: ft.Event[ft.TextField]) -> None:
        self.touched.add(NAME_FIELD)
        self.validate(touched_only=True)

    # -- actions -----------------------------------------------------------------------------

    async def test_connection(self, refresh: Refresh = _nothing) -> ProbeOutcome:
        """Run the connector's probe with the form's values; the ring turns while it runs."""
        self.progress.visible = True
        self.probe_result.visible = self.probe_icon.visible = False
        self.test_button.disabled = True
        refresh()
        try:
            outcome = await self.plane.probe_channel(self.channel_name, self.type.type,
                                                     self.values())
        except Exception as exc:  # noqa: BLE001 - the result line says what went wrong
            _log.warning("probe of %s failed: %s", self.channel_name, exc)
            outcome = ProbeOutcome(False, t("could not test: {error}", error=exc))
        finally:
            self.progress.visible = False
            self.test_button.disabled = False
        color = ft.Colors.GREEN_700 if outcome.ok else ft.Colors.ERROR
        self.probe_icon.icon = ft.Icons.CHECK_CIRCLE if outcome.ok else ft.Icons.ERROR
        self.probe_icon.color = self.probe_result.color = color
        self.probe_result.value = outcome.message
        self.probe_result.visible = self.probe_icon.visible = True
        return outcome

    async def save(self, refresh: Refresh = _nothing) -> bool:
        """Validate everything, then save; True when the plane took it (and applied it)."""
        self.touched.update([NAME_FIELD, *self.form.fields])
        if self.validate():
            return False
        self.save_button.disabled = True
        refresh()
        try:
            errors = await self.plane.save_channel(self.channel_name, self.type.type,
                                                   self.values())
        except Exception as exc:  # noqa: BLE001 - shown on the form
            _log.warning("save of %s failed: %s", self.channel_name, exc)
            errors = [FieldError("", t("could not save: {error}", error=exc))]
        finally:
            self.save_button.disabled = False
        self.show_errors(errors)
        return not errors

    async def _on_test(self, e: ft.Event[ft.Control]) -> None:
        await self.test_connection(e.page.update)
        e.page.update()

    async def _on_save(self, e: ft.Event[ft.Control]) -> None:
        saved = await self.save(e.page.update)
        if saved and self._on_close is not None:
            await self._on_close(True)
        e.page.update()

    async def _on_cancel(self, e: ft.Event[ft.Control]) -> None:
        if self._on_close is not None:
            await self._on_close(False)
        e.page.update()
