"""The one way the panel asks before something that cannot be undone.

Deleting a channel, a provider, a profile, an MCP server or a job, resetting a chat and
saving a provider that failed its test all ask the same modal question: the way back
first, the destructive action last and in the error colour, so a reflex click on the
right-hand button is never the harmless one by accident in one view and not another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import flet as ft

from views.i18n import t

__all__ = ["ask_first"]

Confirmed = Callable[[ft.Event[ft.Control]], Awaitable[object]]


def ask_first(page: ft.Page | ft.BasePage | None, *, title: str, body: str, action: str,
              on_confirm: Confirmed, cancel: str | None = None,
              selectable: bool = False) -> ft.AlertDialog:
    """Show (when ``page`` is given) and return the question; ``on_confirm`` runs after the
    dialog closed, then the page is updated. ``cancel`` names the way back (translated
    "Cancel" when None); the caller's texts come translated already."""
    def close(e: ft.Event[ft.Control]) -> None:
        e.page.pop_dialog()

    async def confirmed(e: ft.Event[ft.Control]) -> None:
        e.page.pop_dialog()
        await on_confirm(e)
        e.page.update()

    dialog = ft.AlertDialog(
        modal=True,
        title=ft.Text(title),
        content=ft.Text(body, selectable=selectable),
        actions=[ft.TextButton(t("Cancel") if cancel is None else cancel, on_click=close),
                 ft.FilledButton(action, on_click=confirmed,
                                 style=ft.ButtonStyle(bgcolor=ft.Colors.ERROR,
                                                      color=ft.Colors.ON_ERROR))],
    )
    if page is not None:
        page.show_dialog(dialog)
    return dialog
