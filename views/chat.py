"""Chat: talk to the assistant through the built-in local channel, the path every channel takes."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import flet as ft

from pyclaw_app.control import ControlPlane
from pyclaw_app.model import Event
from views.state import CHAT_WINDOW, ChatLine, ChatState
from views.text_direction import is_rtl

__all__ = ["ChatView", "chat_bubble"]

_log = logging.getLogger(__name__)


def chat_bubble(line: ChatLine) -> ft.Control:
    """User lines on the right, assistant lines on the left (Markdown if marked up), errors red.

    Short plain lines size to their text; Markdown and long lines take four
    fifths of the width (Flet has no max-width, and Markdown needs a bounded one).
    A reply still streaming with nothing (left) to show reads "…". Arabic or
    Hebrew text is laid out right to left; the bubble stays on its speaker's side.
    """
    markdown = line.role == "assistant" and _MARKDOWN.search(line.text) is not None
    rtl = is_rtl(line.text)
    if markdown:
        body: ft.Control = ft.Markdown(line.text, rtl=rtl,
                                       extension_set=ft.MarkdownExtensionSet.GITHUB_WEB)
        bgcolor = ft.Colors.SURFACE_CONTAINER_HIGHEST
    elif line.role == "assistant":
        body = ft.Text(line.text or ("…" if line.streaming else ""), rtl=rtl)
        bgcolor = ft.Colors.SURFACE_CONTAINER_HIGHEST
    elif line.role == "error":
        body = ft.Text(line.text, color=ft.Colors.ON_ERROR_CONTAINER, rtl=rtl)
        bgcolor = ft.Colors.ERROR_CONTAINER
    else:
        body = ft.Text(line.text, color=ft.Colors.ON_PRIMARY_CONTAINER, rtl=rtl)
        bgcolor = ft.Colors.PRIMARY_CONTAINER
    mine = line.role == "user"
    radius = ft.BorderRadius.only(top_left=16, top_right=16, bottom_left=16 if mine else 4,
                                  bottom_right=4 if mine else 16)
    bubble = ft.Container(content=body, bgcolor=bgcolor, border_radius=radius,
                          padding=ft.Padding.symmetric(horizontal=14, vertical=10))
    short = not markdown and len(line.text) <= _SHORT and "\n" not in line.text
    if short:
        align = ft.MainAxisAlignment.END if mine else ft.MainAxisAlignment.START
        return ft.Row([bubble], alignment=align, data=line.role)
    bubble.expand = 4
    spacer = ft.Container(expand=1)
    return ft.Row([spacer, bubble] if mine else [bubble, spacer], data=line.role)


_SHORT = 60
_MARKDOWN = re.compile(r"[*_`#\[|>~]|^\s*([-+]|\d+\.)\s", re.MULTILINE)


class ChatView:
    def __init__(self, plane: ControlPlane, *, window: int = CHAT_WINDOW) -> None:
        self.plane = plane
        self.state = ChatState(maxlen=window)
        self._dropped = 0  # state.dropped the bubbles last matched
        self.messages = ft.ListView(expand=True, spacing=10, auto_scroll=True,
                                    padding=ft.Padding.symmetric(vertical=8))
        self.empty = ft.Text("Say hello: your messages go through the gateway like any channel's.",
                             color=ft.Colors.ON_SURFACE_VARIANT)
        self.progress = ft.ProgressRing(width=20, height=20, stroke_width=2.5, visible=False,
                                        semantics_label="Waiting for the reply")
        self.field = ft.TextField(label="Message", hint_text="Ask the assistant…", expand=True,
                                  on_submit=self._on_submit, shift_enter=True, min_lines=1,
                                  max_lines=5, border_radius=12, autofocus=True)
        self.send_button = ft.IconButton(ft.Icons.SEND_ROUNDED, tooltip="Send",
                                         on_click=self._on_submit, icon_size=22,
                                         style=ft.ButtonStyle(bgcolor=ft.Colors.PRIMARY,
                                                              color=ft.Colors.ON_PRIMARY))
        self.reset_button = ft.TextButton("Reset conversation", icon=ft.Icons.RESTART_ALT,
                                          tooltip="Reset conversation",
                                          on_click=self._on_reset)
        self._root = ft.Column(
            expand=True,
            spacing=10,
            controls=[
                ft.Row(
                    alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
                    controls=[ft.Text("Chat", theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
                              self.reset_button],
                ),
                ft.Container(
                    expand=True,
                    border_radius=12,
                    padding=ft.Padding.symmetric(horizontal=12),
                    border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                    content=ft.Column([self.empty, self.messages], expand=True),
                ),
                ft.Row([self.field, self.progress, self.send_button],
                       vertical_alignment=ft.CrossAxisAlignment.CENTER),
            ],
        )

    @property
    def root(self) -> ft.Control:
        return self._root

    async def load(self) -> None:
        try:
            history = await self.plane.chat_history()
        except Exception as exc:  # noqa: BLE001 - a gateway without a local channel still gets its panel
            _log.warning("chat unavailable: %s", exc)
            self.empty.value = (f"Chat is unavailable: {exc}. This view talks to the assistant "
                                "through the gateway's local chat channel: add or start one in "
                                "Channels.")
            for control in (self.field, self.send_button, self.reset_button):
                control.disabled = True
            return
        self.state.load(history)
        self.messages.controls = [chat_bubble(line) for line in self.state.lines]
        self._dropped = self.state.dropped
        self._show_waiting()

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Redraw the bubbles that changed (a streamed reply grows in place), append new ones.

        A batch redraws a growing bubble once, however many deltas it held.
        """
        controls = self.messages.controls
        touched = self.state.apply(events)
        self._drop_front()
        for index in touched:
            bubble = chat_bubble(self.state.lines[index])
            if index < len(controls):
                controls[index] = bubble
            else:
                controls.append(bubble)
        self._show_waiting()

    async def send(self, text: str) -> None:
        """Show the line, hand it to the gateway; the reply comes back as an event."""
        if self.begin_send(text):
            await self.finish_send(text.strip())

    def begin_send(self, text: str) -> bool:
        """Show the user's line and the progress ring; False when there is nothing to send."""
        text = text.strip()
        if not text:
            return False
        bubble = chat_bubble(self.state.sent(text))
        self._drop_front()
        self.messages.controls.append(bubble)
        self._show_waiting()
        return True

    async def finish_send(self, text: str) -> None:
        try:
            await self.plane.chat_send(text)
        except Exception as exc:  # noqa: BLE001 - any failure is shown to the user, not raised into Flet
            _log.warning("chat_send failed: %s", exc)
            bubble = chat_bubble(self.state.send_failed(f"Not sent: {exc}"))
            self._drop_front()
            self.messages.controls.append(bubble)
            self._show_waiting()

    async def reset(self) -> None:
        await self.plane.chat_reset()
        self.state.clear()
        self._dropped = self.state.dropped
        self.messages.controls.clear()
        self._show_waiting()

    async def _on_submit(self, e: ft.Event[ft.Control]) -> None:
        text = self.field.value
        if not self.begin_send(text):
            return
        self.field.value = ""
        e.page.update()  # show the line and the ring now, not after the gateway has answered
        await self.finish_send(text.strip())
        await self.field.focus()

    async def _on_reset(self, e: ft.Event[ft.Control]) -> None:
        await self.reset()

    def _drop_front(self) -> None:
        """Cut the oldest bubbles the state has let go of since the last call."""
        cut = self.state.dropped - self._dropped
        self._dropped = self.state.dropped
        if cut > 0:
            del self.messages.controls[:cut]

    def _show_waiting(self) -> None:
        self.progress.visible = self.state.waiting > 0
        self.empty.visible = not self.messages.controls
