"""A Settings section of named items shown as cards, each edited in place of the list.

The MCP servers and the profiles are both such a list: cards from the plane, Add, Edit,
Delete, and an editor that takes the list's place inside the section's card so the rest of
Settings stays where it was. What is alike lives here once; a section says what it lists,
how its cards and editor look, and its words.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import flet as ft

from pyclaw_app.control import FieldError
from views.i18n import t
from views.status_line import StatusLine

__all__ = ["CardList"]

_log = logging.getLogger(__name__)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Editor(Protocol):
    @property
    def root(self) -> ft.Control: ...


Row = TypeVar("Row", bound=_Named)
Editor = TypeVar("Editor", bound=_Editor)


class CardList(ABC, Generic[Row, Editor]):
    """The list, its notice line and the editor's place; ``list_page`` is the section's
    own layout (title, notice, cards, buttons), given to :meth:`_mount`."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.schema: dict[str, Any] = {}
        self.editor: Editor | None = None
        self.notice = StatusLine(wrap=True)
        self.cards = ft.Column(spacing=8)
        self.list_page = ft.Column(spacing=14)
        self.root = ft.Column(spacing=14)

    def _mount(self, list_page: ft.Column) -> None:
        self.list_page = list_page
        self.root.controls = [list_page]

    # -- what a section says -----------------------------------------------------------------

    @abstractmethod
    async def _listed(self) -> tuple[Sequence[Row], dict[str, Any]]:
        """The rows and the editor's schema, from the plane."""

    @abstractmethod
    def _load_failed(self, error: Exception) -> str: ...

    @abstractmethod
    def _show_cards(self) -> None: ...

    @abstractmethod
    def _editor(self, row: Row | None) -> Editor: ...

    @abstractmethod
    async def _delete(self, name: str) -> list[FieldError]:
        """Delete on the plane; the errors it answered with."""

    @abstractmethod
    def _deleted(self, name: str) -> str: ...

    # -- the list ----------------------------------------------------------------------------

    async def load(self) -> None:
        try:
            rows, schema = await self._listed()
        except Exception as exc:  # noqa: BLE001 - said in the section, Settings still works
            _log.warning("%s", self._load_failed(exc))
            self.notice.show(False, self._load_failed(exc))
            return
        self.rows = list(rows)
        self.schema = schema
        self._show_cards()

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)

    # -- editor ------------------------------------------------------------------------------

    def open_editor(self, name: str | None) -> Editor:
        self.editor = self._editor(self.row(name) if name is not None else None)
        self.notice.hide()
        self.root.controls = [self.editor.root]
        return self.editor

    async def close_editor(self, message: str = "") -> None:
        self.editor = None
        await self.load()
        self.root.controls = [self.list_page]
        if message:
            self.notice.show(True, message)

    # -- delete ------------------------------------------------------------------------------

    async def delete(self, name: str) -> bool:
        try:
            errors = await self._delete(name)
        except Exception as exc:  # noqa: BLE001 - said in the section
            _log.warning("delete %s failed: %s", name, exc)
            errors = [FieldError("", str(exc))]
        await self.load()
        if errors:
            self.notice.show(False, t("{name} was not deleted: {errors}", name=name,
                                      errors="; ".join(e.message for e in errors)))
            return False
        self.notice.show(True, self._deleted(name))
        return True

    # -- handlers ----------------------------------------------------------------------------

    def _on_add(self, e: ft.Event[ft.Control]) -> None:
        self.open_editor(None)
        e.page.update()

    def _on_edit(self, e: ft.Event[ft.Control], name: str) -> None:
        self.open_editor(name)
        e.page.update()
