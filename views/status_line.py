"""An outcome in words with an icon: the result line of Settings' forms and sections."""

from __future__ import annotations

import flet as ft

__all__ = ["StatusLine"]


class StatusLine:
    """An outcome in words with an icon (a glyph like ✓ may be missing from the client's fonts)."""

    def __init__(self, *, wrap: bool = False) -> None:
        """``wrap``: the line takes the row's width and a long message wraps in it (a
        form's result); otherwise it is as wide as its words (a notice beside a button)."""
        self.icon = ft.Icon(ft.Icons.CHECK_CIRCLE, size=18)
        self.text = ft.Text(weight=ft.FontWeight.W_500, expand=wrap)
        self.ok = False
        self.root = ft.Row([self.icon, self.text], spacing=6, tight=not wrap, visible=False,
                           vertical_alignment=ft.CrossAxisAlignment.CENTER)

    def show(self, ok: bool, message: str) -> None:
        color = ft.Colors.GREEN_700 if ok else ft.Colors.ERROR
        self.icon.icon = ft.Icons.CHECK_CIRCLE if ok else ft.Icons.ERROR_OUTLINE
        self.icon.color = self.text.color = color
        self.text.value = message
        self.ok = ok
        self.root.visible = True

    def hide(self) -> None:
        self.root.visible = False

    @property
    def visible(self) -> bool:
        return bool(self.root.visible)

    @property
    def message(self) -> str:
        return str(self.text.value or "")
