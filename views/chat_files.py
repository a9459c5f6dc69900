"""The files the assistant sends, as the Chat view shows them: a picture as a thumbnail, any
other file as a chip with its name, kind and size, each with a save button.

Only what ``ChatFile`` says is shown (name, type, size, caption), never where the gateway
stores it. The bytes come through the ControlPlane (``chat_file``), on the desktop and on
the monitor alike; a file over ``CHAT_FILE_LIMIT`` keeps its chip, without a preview or a
save, because the control API would have to carry it to a phone in one answer.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Protocol

import flet as ft

from pyclaw_app.control.types import CHAT_FILE_LIMIT, ChatFile
from views.i18n import t
from views.text_direction import is_rtl

__all__ = ["PREVIEW_LIMIT", "THUMBNAIL", "Saver", "file_kind", "file_row", "file_size",
           "picture_size", "previewable", "thumbnail_size"]

PREVIEW_LIMIT = 2 * 1024 * 1024
"""The largest picture shown inline (bytes): a thumbnail of a bigger one would fetch and
decode megabytes for a 240-pixel square; it gets the chip (and its save button) instead."""
THUMBNAIL = 240
"""The thumbnail's box (logical pixels): big enough to recognise, small enough for a phone."""

SaveHandler = Callable[[ChatFile], Awaitable[None]]


class Saver(Protocol):
    """Where a save button puts a file: Flet's FilePicker (a browser download in web mode, a
    save dialog elsewhere), or a test's recorder. Returns the path chosen, if any."""

    async def save_file(self, dialog_title: str | None = None, file_name: str | None = None,
                        *, src_bytes: bytes | None = None) -> str | None: ...

_ICONS = {"image": ft.Icons.IMAGE_OUTLINED, "audio": ft.Icons.AUDIOTRACK,
          "voice": ft.Icons.MIC_NONE}


def file_kind(file: ChatFile) -> str:
    """What the file is, in words: its kind, with the name's extension for a document
    ("File (PDF)"), which people know better than a MIME type."""
    kind = {"image": t("Picture"), "audio": t("Audio"),
            "voice": t("Voice message")}.get(file.kind, t("File"))
    stem, dot, extension = file.name.rpartition(".")
    if file.kind == "file" and stem and dot and extension.isalnum() and len(extension) <= 5:
        return t("{kind} ({type})", kind=kind, type=extension.upper())
    return kind


def file_size(size: int) -> str:
    """A size a person reads: bytes, KB or MB (1024-based, as the gateway counts them)."""
    if size < 0:
        return t("no longer stored")
    if size >= 1024 * 1024:
        return t("{size} MB", size=f"{size / (1024 * 1024):.1f}".removesuffix(".0"))
    if size >= 1024:
        return t("{size} KB", size=f"{size / 1024:.1f}".removesuffix(".0"))
    return t("{size} bytes", size=size)


def previewable(file: ChatFile) -> bool:
    """A picture small enough to fetch for its thumbnail."""
    return file.kind == "image" and 0 <= file.size <= PREVIEW_LIMIT


_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                          0xCE, 0xCF})
"""The JPEG start-of-frame markers (ITU T.81 table B.1): they carry the picture's size."""


def picture_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF or JPEG header; None for anything else. Read here
    because the monitor has no imaging library, and the thumbnail needs its proportions."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"\xff\xd8"):
        at = 2
        while at + 9 <= len(data) and data[at] == 0xFF:
            marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
            if marker in _JPEG_FRAMES:
                height, width = struct.unpack(">HH", data[at + 5:at + 9])
                return width, height
            at += 2 + length
    return None


def thumbnail_size(data: bytes) -> tuple[int, int]:
    """The thumbnail's width and height: the picture's proportions within THUMBNAIL, never
    enlarged; a square box when its size cannot be read."""
    size = picture_size(data)
    if size is None or min(size) < 1:
        return THUMBNAIL, THUMBNAIL
    width, height = size
    scale = min(1.0, THUMBNAIL / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def file_row(file: ChatFile, when: str, preview: bytes | None,
             on_save: SaveHandler | None) -> ft.Row:
    """An assistant line that is a file: the thumbnail (when ``preview`` holds the picture's
    bytes) or the chip, its caption, and its time below, on the assistant's side."""
    body: list[ft.Control] = []
    if preview is not None:
        width, height = thumbnail_size(preview)
        body.append(ft.Semantics(label=t("Picture {name}", name=file.name), container=True,
                                 content=ft.Image(
                                     src=preview, width=width, height=height,
                                     fit=ft.BoxFit.CONTAIN, border_radius=8,
                                     cache_width=THUMBNAIL * 2, gapless_playback=True,
                                     error_content=ft.Text(t("The picture cannot be shown")))))
    body.append(_chip(file, on_save))
    if file.caption:
        body.append(ft.Text(file.caption, rtl=is_rtl(file.caption)))
    bubble = ft.Container(
        content=ft.Column(body, spacing=6, tight=True),
        bgcolor=ft.Colors.SURFACE_CONTAINER_HIGHEST,
        border_radius=ft.BorderRadius.only(top_left=16, top_right=16, bottom_left=4,
                                           bottom_right=16),
        padding=ft.Padding.all(10), data="file")
    column = ft.Column([ft.Semantics(container=True, content=bubble),
                        ft.Text(when, size=11, color=ft.Colors.ON_SURFACE_VARIANT)],
                       spacing=2, horizontal_alignment=ft.CrossAxisAlignment.START)
    return ft.Row([column], alignment=ft.MainAxisAlignment.START, data="assistant")


def _chip(file: ChatFile, on_save: SaveHandler | None) -> ft.Control:
    """Name, kind and size, and a save button while the file can be handed over."""
    details = [file_kind(file), file_size(file.size)]
    if file.status == "failed":
        details.append(t("not delivered"))
    elif file.status == "uncertain":
        details.append(t("may not have arrived"))
    if file.size > CHAT_FILE_LIMIT:
        details.append(t("too large to open here"))
    controls: list[ft.Control] = [
        ft.Icon(_ICONS.get(file.kind, ft.Icons.INSERT_DRIVE_FILE_OUTLINED), size=28,
                color=ft.Colors.PRIMARY),
        ft.Column([ft.Text(file.name, weight=ft.FontWeight.W_500),
                   ft.Text(" · ".join(details), size=12, color=ft.Colors.ON_SURFACE_VARIANT)],
                  spacing=0, tight=True)]
    if on_save is not None and 0 <= file.size <= CHAT_FILE_LIMIT:
        async def save(e: ft.Event[ft.IconButton]) -> None:
            await on_save(file)

        # its own node for screen readers, or its name would be read as part of the file's
        controls.append(ft.Semantics(container=True, content=ft.IconButton(
            ft.Icons.DOWNLOAD, tooltip=t("Save {name}", name=file.name), on_click=save,
            data=file)))
    return ft.Row(controls, spacing=10, tight=True,
                  vertical_alignment=ft.CrossAxisAlignment.CENTER)
