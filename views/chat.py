"""Chat: talk to the assistant through the built-in local channel, the path every channel takes.

The files the assistant sends there are lines of the conversation too (``chat_files``):
they are asked for when the view loads and again whenever a reply of this chat is done,
because a file is a part of its reply and is journaled by then.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import flet as ft

from pyclaw_app.control import ControlPlane
from pyclaw_app.control.types import ChatFile
from pyclaw_app.model import Event, EventKind
from views.chat_files import Saver, file_row, previewable
from views.chat_markdown import Block, blocks, code_fence, shorten, without_images
from views.confirm import ask_first
from views.i18n import t
from views.state import CHAT_WINDOW, ChatLine, ChatState, Clock
from views.text_direction import is_rtl

__all__ = ["COLLAPSE_AT", "ChatView", "Clipboard", "bubble_time", "chat_bubble"]

_log = logging.getLogger(__name__)

COLLAPSE_AT = 1200
"""A finished bubble longer than this (characters) shows its start and "Show more"."""

_SHORT = 60
_MARKDOWN = re.compile(r"[*_`#\[|>~]|^\s*([-+]|\d+\.)\s", re.MULTILINE)
_CODE_THEME = ft.MarkdownCodeTheme.ATOM_ONE_DARK  # one dark block reads in light and dark mode
_CODE_BACKGROUND = "#282c34"  # the theme's own background, under the block's header too
_CODE_HEADER = "#abb2bf"
_CODE_STYLE = ft.MarkdownStyleSheet(
    code_text_style=ft.TextStyle(color=_CODE_HEADER, font_family="monospace"),
    codeblock_decoration=ft.BoxDecoration(bgcolor=_CODE_BACKGROUND),
    codeblock_padding=ft.Padding.only(left=8, right=8, bottom=8))
"""Untokenised code in the theme's light grey (not the page's dark text on the dark block),
on the card's own background without Markdown's frame."""


CopyHandler = ft.ControlEventHandler[ft.IconButton] | None


class Clipboard(Protocol):
    """Where the copy buttons put text: Flet's clipboard service, or a test's recorder."""

    async def set(self, value: str) -> None: ...


def bubble_time(ts: float | None, now: float) -> str:
    """When a line was written, in local time: "14:05" today, with the date on other days."""
    if ts is None:
        return ""
    when, today = datetime.fromtimestamp(ts), datetime.fromtimestamp(now)
    if when.date() == today.date():
        return when.strftime("%H:%M")
    if when.year == today.year:
        return f"{when.day} {when:%b %H:%M}"
    return f"{when.day} {when:%b %Y %H:%M}"


def chat_bubble(line: ChatLine, *, now: float | None = None, on_copy: CopyHandler = None,
                expanded: bool = False) -> ft.Row:
    """User lines on the right, assistant lines on the left (Markdown if marked up), errors red,
    each with its time and a copy button below it.

    Only the assistant's text is read as Markdown: what the user typed is shown as
    typed. Short plain lines size to their text; Markdown and long lines take four
    fifths of the width (Flet has no max-width, and Markdown needs a bounded one).
    A finished bubble over ``COLLAPSE_AT`` characters is shown cut, with "Show
    more", unless ``expanded``. A reply still streaming is shown whole, as one
    control whose value grows (``ChatView.apply``), and gets its copy button when it
    is complete; with nothing (left) to show it reads "…". Arabic or Hebrew text is
    laid out right to left; the bubble stays on its speaker's side.
    """
    mine = line.role == "user"
    markdown = line.role == "assistant" and _MARKDOWN.search(line.text) is not None
    bubble = ft.Container(
        content=_body(line, markdown, expanded, on_copy),
        bgcolor=_BACKGROUNDS.get(line.role, ft.Colors.SURFACE_CONTAINER_HIGHEST),
        border_radius=ft.BorderRadius.only(top_left=16, top_right=16,
                                           bottom_left=16 if mine else 4,
                                           bottom_right=4 if mine else 16),
        padding=ft.Padding.symmetric(horizontal=14, vertical=10),
        data="streaming" if line.streaming else None)
    meta: list[ft.Control] = [
        ft.Text(bubble_time(line.ts, time.time() if now is None else now), size=11,
                color=ft.Colors.ON_SURFACE_VARIANT)]
    if on_copy is not None and not line.streaming and line.text:
        # "Copy", not "Copy message": the message field is found by its label "Message"
        meta.append(_copy_button(line.text, t("Copy"), on_copy, ft.Colors.ON_SURFACE_VARIANT))
    side = ft.CrossAxisAlignment.END if mine else ft.CrossAxisAlignment.START
    align = ft.MainAxisAlignment.END if mine else ft.MainAxisAlignment.START
    short = not markdown and len(line.text) <= _SHORT and "\n" not in line.text
    # the message is a node of its own for screen readers (and tests), apart from its time
    column = ft.Column([ft.Semantics(container=True, content=bubble),
                        ft.Row(meta, spacing=0, tight=short, alignment=align)], spacing=0,
                       horizontal_alignment=side if short else ft.CrossAxisAlignment.STRETCH)
    if short:
        return ft.Row([column], alignment=align, data=line.role)
    column.expand = 4
    spacer = ft.Container(expand=1)
    return ft.Row([spacer, column] if mine else [column, spacer], data=line.role,
                  vertical_alignment=ft.CrossAxisAlignment.START)


_BACKGROUNDS = {"user": ft.Colors.PRIMARY_CONTAINER, "error": ft.Colors.ERROR_CONTAINER}
_FOREGROUNDS = {"user": ft.Colors.ON_PRIMARY_CONTAINER, "error": ft.Colors.ON_ERROR_CONTAINER}


def _body(line: ChatLine, markdown: bool, expanded: bool, on_copy: CopyHandler) -> ft.Control:
    """What goes inside the bubble; a long finished line is cut, with a button to open it."""
    if line.streaming:
        return _streaming_body(line.text, markdown)
    if len(line.text) <= COLLAPSE_AT:
        return _content(line, line.text, markdown, on_copy)
    more = ft.TextButton()
    body = ft.Column([more], spacing=4)

    def show(whole: bool) -> None:
        text = line.text if whole else shorten(line.text, COLLAPSE_AT)
        body.controls = [_content(line, text, markdown, on_copy), more]
        more.content = t("Show less") if whole else t("Show more")
        more.icon = ft.Icons.EXPAND_LESS if whole else ft.Icons.EXPAND_MORE
        more.on_click = lambda e: show(not whole)

    show(expanded)
    return body


def _content(line: ChatLine, text: str, markdown: bool, on_copy: CopyHandler) -> ft.Control:
    if markdown:
        return _markdown_blocks(text, on_copy)
    return ft.Text(text, color=_FOREGROUNDS.get(line.role), rtl=is_rtl(line.text))


def _streaming_body(text: str, markdown: bool) -> ft.Text | ft.Markdown:
    """The growing reply as one control: a batch of deltas only changes its value."""
    if markdown:
        return _markdown(text)
    return ft.Text(text or "…", rtl=is_rtl(text))


def _markdown_blocks(text: str, on_copy: CopyHandler) -> ft.Control:
    """Prose as Markdown, each fenced code block as a dark card with a "Copy code" button."""
    parts = blocks(text)
    if len(parts) == 1 and parts[0].kind == "text":
        return _markdown(parts[0].text)
    return ft.Column([_code_card(part, on_copy) if part.kind == "code" else _markdown(part.text)
                      for part in parts], spacing=8)


def _markdown(text: str) -> ft.Markdown:
    return ft.Markdown(without_images(text), rtl=is_rtl(text), code_theme=_CODE_THEME,
                       extension_set=ft.MarkdownExtensionSet.GITHUB_FLAVORED,
                       auto_follow_links=True, auto_follow_links_target=ft.UrlTarget.BLANK)


def _code_card(block: Block, on_copy: CopyHandler) -> ft.Control:
    """A fenced block on its own: its language and a copy button above the highlighted code."""
    return ft.Container(
        bgcolor=_CODE_BACKGROUND,
        border_radius=8,
        padding=ft.Padding.only(left=4, right=4, bottom=4),
        content=ft.Column(spacing=0, controls=[
            ft.Row(alignment=ft.MainAxisAlignment.SPACE_BETWEEN, controls=[
                ft.Text(block.language or t("code"), size=12, color=_CODE_HEADER,
                        margin=ft.Margin.only(left=8)),
                *([_copy_button(block.text, t("Copy code"), on_copy, _CODE_HEADER)]
                  if on_copy is not None else []),
            ]),
            ft.Markdown(code_fence(block), code_theme=_CODE_THEME,
                        extension_set=ft.MarkdownExtensionSet.GITHUB_FLAVORED,
                        code_style_sheet=_CODE_STYLE, md_style_sheet=_CODE_STYLE),
        ]))


def _copy_button(text: str, label: str, on_copy: CopyHandler, color: str) -> ft.Semantics:
    """A small copy icon; the button's ``data`` is the text it copies. Its own node in the
    accessibility tree, or its tooltip (its name) would be read as part of the message."""
    return ft.Semantics(container=True, content=ft.IconButton(
        ft.Icons.CONTENT_COPY, icon_size=16, icon_color=color, tooltip=label, data=text,
        on_click=on_copy, style=ft.ButtonStyle(padding=ft.Padding.all(4))))


class ChatView:
    def __init__(self, plane: ControlPlane, *, window: int = CHAT_WINDOW,
                 clock: Clock = time.time, clipboard: Clipboard | None = None,
                 saver: Saver | None = None) -> None:
        self.plane = plane
        self.clock = clock
        self.state = ChatState(maxlen=window, clock=clock)
        self._clipboard = clipboard  # Flet's clipboard service, made at the first copy
        self._dropped = 0  # state.dropped the bubbles last matched
        self._previews: dict[tuple[int, int], bytes] = {}  # thumbnails' bytes, by file
        self._files_due = False  # a reply finished since the files were last asked for
        self._generation = 0  # bumped by load and reset: a file sync of an older chat stops
        self.files_task: asyncio.Task[None] | None = None
        """The running file sync (``sync_files``), kept so it is never lost unseen."""
        self._saver = saver  # Flet's FilePicker, made at the first save (and kept alive)
        self.messages = ft.ListView(expand=True, spacing=10, auto_scroll=True,
                                    padding=ft.Padding.symmetric(vertical=8))
        self.empty = ft.Text(t("Say hello: your messages go through the gateway like any "
                               "channel's."), color=ft.Colors.ON_SURFACE_VARIANT)
        self.progress = ft.ProgressRing(width=20, height=20, stroke_width=2.5, visible=False,
                                        semantics_label=t("Waiting for the reply"))
        self.field = ft.TextField(label=t("Message"), hint_text=t("Ask the assistant…"),
                                  expand=True,
                                  on_submit=self._on_submit, shift_enter=True, min_lines=1,
                                  max_lines=5, border_radius=12, autofocus=True)
        self.send_button = ft.IconButton(ft.Icons.SEND_ROUNDED, tooltip=t("Send"),
                                         on_click=self._on_submit, icon_size=22,
                                         style=ft.ButtonStyle(bgcolor=ft.Colors.PRIMARY,
                                                              color=ft.Colors.ON_PRIMARY))
        self.reset_button = ft.TextButton(t("Reset conversation"), icon=ft.Icons.RESTART_ALT,
                                          tooltip=t("Reset conversation"),
                                          on_click=self._on_reset)
        self._root = ft.Column(
            expand=True,
            spacing=10,
            controls=[
                ft.Row(
                    alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
                    controls=[ft.Text(t("Chat"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
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
            self.empty.value = t("Chat is unavailable: {error}. This view talks to the assistant "
                                 "through the gateway's local chat channel: add or start one in "
                                 "Channels.", error=exc)
            for control in (self.field, self.send_button, self.reset_button):
                control.disabled = True
            return
        self._generation += 1
        files = await self._sent_files()
        await self._fetch_previews(files)
        self.state.load(history, files)
        self.messages.controls = [self._bubble(line) for line in self.state.lines]
        self._dropped = self.state.dropped
        self._show_waiting()

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Redraw the bubbles that changed (a streamed reply grows in place), append new ones.

        A batch changes a growing bubble once, however many deltas it held, and only
        its value: the control stays, so Flutter does not rebuild it (no flicker).
        What arrives while the chat is open is shown whole, long or not: it is the
        answer being read (a streamed one does not shrink under the reader's eyes when
        it completes). Only history (``load``) and the user's own long lines collapse.
        """
        controls = self.messages.controls
        touched = self.state.apply(events)
        self._drop_front()
        for index in touched:
            line = self.state.lines[index]
            if index >= len(controls):
                controls.append(self._bubble(line, expanded=True))
                continue
            body = _growing(controls[index])
            if body is None or not _grow(body, line):
                controls[index] = self._bubble(line, expanded=True)
        self._show_waiting()
        if any(e.kind in (EventKind.REPLY_SENT, EventKind.MESSAGE_FAILED)
               and e.channel == self.state.channel and e.data.get("chat") == self.state.chat
               for e in events):
            self._want_files()

    async def sync_files(self) -> None:
        """Show the files sent since the last look, each beside its reply, until no reply
        has finished meanwhile; a file that cannot be listed now is tried at the next reply."""
        while self._files_due:
            self._files_due = False
            generation = self._generation
            files = await self._sent_files()
            if generation != self._generation:
                return  # the chat was loaded or reset meanwhile: these belong to the old one
            await self._fetch_previews(files)
            if generation != self._generation:
                return
            added = False
            for file in files:
                index = self.state.add_file(file)
                if index is None:
                    continue
                # the state may have cut its oldest lines already, the new one among them
                # when it went in among those: then a blank row holds its place until
                # _drop_front cuts the same lines here
                at = index - (self.state.dropped - self._dropped)
                line = self.state.lines[at] if at >= 0 else None
                self.messages.controls.insert(index, self._bubble(line) if line is not None
                                              else ft.Row(data="assistant"))
                self._drop_front()
                added = True
            if added:
                self._show_waiting()
                self._update()

    async def save_file(self, file: ChatFile, page: ft.Page | ft.BasePage | None) -> str:
        """Fetch a sent file's bytes and save them: a browser download in web mode, a save
        dialog on the desktop and phones. Returns what the page says (also on failure)."""
        try:
            content = await self.plane.chat_file(file.reply_id, file.idx)
            data = base64.b64decode(content.data)
            if self._saver is None:
                self._saver = ft.FilePicker()
            path = await self._saver.save_file(dialog_title=t("Save {name}", name=file.name),
                                                file_name=file.name, src_bytes=data)
        except Exception as exc:  # noqa: BLE001 - said on the page; the chat goes on
            _log.warning("saving %s failed: %s", file.name, exc)
            said = t("Not saved: {error}", error=exc)
        else:
            if page is not None and page.web:
                said = t("Saved {name} (see your browser's downloads).", name=file.name)
            elif path:
                said = t("Saved {name} to {path}.", name=file.name, path=path)
            else:
                said = t("Not saved: no place was chosen.")
        if page is not None:
            page.show_dialog(ft.SnackBar(ft.Text(said)))
        return said

    async def send(self, text: str) -> None:
        """Show the line, hand it to the gateway; the reply comes back as an event."""
        if self.begin_send(text):
            await self.finish_send(text.strip())

    def begin_send(self, text: str) -> bool:
        """Show the user's line and the progress ring; False when there is nothing to send."""
        text = text.strip()
        if not text:
            return False
        bubble = self._bubble(self.state.sent(text))
        self._drop_front()
        self.messages.controls.append(bubble)
        self._show_waiting()
        return True

    async def finish_send(self, text: str) -> None:
        try:
            await self.plane.chat_send(text)
        except Exception as exc:  # noqa: BLE001 - any failure is shown to the user, not raised into Flet
            _log.warning("chat_send failed: %s", exc)
            bubble = self._bubble(self.state.send_failed(t("Not sent: {error}", error=exc)))
            self._drop_front()
            self.messages.controls.append(bubble)
            self._show_waiting()

    def confirm_reset(self, page: ft.Page | ft.BasePage | None) -> ft.AlertDialog:
        """Ask first: the assistant forgets the conversation for good."""
        async def reset(e: ft.Event[ft.Control]) -> None:
            try:
                await self.reset()
            except Exception as exc:  # noqa: BLE001 - said on the page; the old chat stays
                _log.warning("chat_reset failed: %s", exc)
                e.page.show_dialog(ft.SnackBar(ft.Text(t("Not reset: {error}", error=exc))))

        return ask_first(page, title=t("Start a new conversation?"), action=t("Reset"),
                         body=t("The assistant forgets everything said here so far, and the "
                                "chat starts empty. The messages stay in Logs."), on_confirm=reset)

    async def reset(self) -> None:
        """A new conversation: the gateway forgets the old one, then the bubbles go."""
        await self.plane.chat_reset()
        self._generation += 1
        self._previews.clear()
        self.state.clear()
        self._dropped = self.state.dropped
        self.messages.controls.clear()
        self._show_waiting()

    async def copy(self, text: str, page: ft.Page | ft.BasePage | None) -> None:
        """Put ``text`` on the clipboard and say so."""
        if self._clipboard is None:
            self._clipboard = ft.Clipboard()
        await self._clipboard.set(text)
        if page is not None:
            page.show_dialog(ft.SnackBar(ft.Text(t("Copied to the clipboard")),
                                         duration=ft.Duration(milliseconds=1500)))

    def _bubble(self, line: ChatLine, *, expanded: bool = False) -> ft.Row:
        if line.file is not None:
            key = (line.file.reply_id, line.file.idx)
            return file_row(line.file, bubble_time(line.ts, self.clock()),
                            self._previews.get(key), self._on_save)
        return chat_bubble(line, now=self.clock(), on_copy=self._on_copy, expanded=expanded)

    async def _sent_files(self) -> list[ChatFile]:
        """The chat's files, or none when the gateway cannot list them (an older gateway
        without ``chat_files``): the text of the chat is still shown."""
        try:
            return await self.plane.chat_files()
        except Exception as exc:  # noqa: BLE001 - the files are missing, the chat is not
            _log.warning("chat_files failed: %s", exc)
            return []

    async def _fetch_previews(self, files: Sequence[ChatFile]) -> None:
        """The bytes of each new picture small enough for a thumbnail; one that cannot be
        fetched is shown as its chip."""
        for file in files:
            key = (file.reply_id, file.idx)
            if key in self._previews or not previewable(file):
                continue
            try:
                content = await self.plane.chat_file(file.reply_id, file.idx)
                self._previews[key] = base64.b64decode(content.data)
            except Exception as exc:  # noqa: BLE001 - the chip stands in for the picture
                _log.warning("no preview of %s: %s", file.name, exc)

    def _want_files(self) -> None:
        """A reply is done: ask for the files again, in the one sync task (started if idle)."""
        self._files_due = True
        if self.files_task is None or self.files_task.done():
            self.files_task = asyncio.get_running_loop().create_task(
                self._sync_logged(), name="chat:files")

    async def _sync_logged(self) -> None:
        try:
            await self.sync_files()
        except Exception:  # noqa: BLE001 - logged with its traceback; the next reply retries
            _log.exception("the chat's files could not be shown")

    def _update(self) -> None:
        """Show what a file sync changed: it runs outside the live batch that updates."""
        try:
            self.messages.update()
        except RuntimeError:  # not on a page (yet): the next page update shows it
            pass

    async def _on_save(self, file: ChatFile) -> None:
        page: ft.Page | ft.BasePage | None
        try:
            page = self.messages.page
        except RuntimeError:
            page = None
        await self.save_file(file, page)

    async def _on_submit(self, e: ft.Event[ft.Control]) -> None:
        text = self.field.value
        if not self.begin_send(text):
            return
        self.field.value = ""
        e.page.update()  # show the line and the ring now, not after the gateway has answered
        await self.finish_send(text.strip())
        await self.field.focus()

    def _on_reset(self, e: ft.Event[ft.Control]) -> None:
        self.confirm_reset(e.page)

    async def _on_copy(self, e: ft.Event[ft.IconButton]) -> None:
        await self.copy(str(e.control.data), e.page)

    def _drop_front(self) -> None:
        """Cut the oldest bubbles the state has let go of since the last call."""
        cut = self.state.dropped - self._dropped
        self._dropped = self.state.dropped
        if cut > 0:
            del self.messages.controls[:cut]
            if self._previews:  # a thumbnail cut from the window is not kept in memory
                shown = {(line.file.reply_id, line.file.idx) for line in self.state.lines
                         if line.file is not None}
                self._previews = {k: v for k, v in self._previews.items() if k in shown}

    def _show_waiting(self) -> None:
        self.progress.visible = self.state.waiting > 0
        self.empty.visible = not self.messages.controls


def _bubble_container(row: ft.Row) -> ft.Container:
    column = next(c for c in row.controls if isinstance(c, ft.Column))
    node = column.controls[0]
    assert isinstance(node, ft.Semantics) and isinstance(node.content, ft.Container)
    return node.content


def _growing(row: ft.Control) -> ft.Text | ft.Markdown | None:
    """The body of a bubble still being written, or None for any other bubble."""
    if not isinstance(row, ft.Row):
        return None
    container = _bubble_container(row)
    body = container.content
    return body if container.data == "streaming" and isinstance(body, ft.Text | ft.Markdown) \
        else None


def _grow(body: ft.Text | ft.Markdown, line: ChatLine) -> bool:
    """Show a streaming line's new text in its body; False when the bubble must be rebuilt
    (the reply is complete, or its text just became Markdown)."""
    if not line.streaming:
        return False
    markdown = _MARKDOWN.search(line.text) is not None
    if markdown != isinstance(body, ft.Markdown):
        return False
    if isinstance(body, ft.Markdown):
        body.value = without_images(line.text)
    else:
        body.value = line.text or "…"
    body.rtl = is_rtl(line.text)
    return True
