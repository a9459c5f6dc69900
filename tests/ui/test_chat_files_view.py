"""The Chat view shows the files the assistant sends, in the conversation beside their reply:
a picture as a thumbnail, any other file as a chip (name, kind, size) with a save button;
loaded with the history, and live when a reply is done. Control-level against a fake plane
that also keeps files, and once against a real gateway whose model calls ``send_file``
(``test_browser_chat_files.py`` is the browser test).
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flet as ft
import pytest

from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.types import CHAT_FILE_LIMIT, ChatFile, ChatFileContent
from pyclaw_app.model import Event
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.test_chat_files_plane import NOTES, picture_after, png, writes_notes
from tests.ui.fake_plane import FakeControlPlane
from tests.ui.test_chat_view import NOON, Page, button, of_type, shown, walk
from views.chat import ChatView
from views.chat_files import PREVIEW_LIMIT, THUMBNAIL, thumbnail_size
from views.state import ChatState

PICTURE = png(480, 320)
CSV = b"day,cups\nmon,3\n" * 80


class FilesPlane(FakeControlPlane):
    """The fake plane with files: each one a part of a reply row, its bytes kept here."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.files: list[ChatFile] = []
        self.blobs: dict[tuple[int, int], bytes] = {}
        self.fetched: list[tuple[int, int]] = []

    def add_file(self, reply: Event, name: str, data: bytes, *, kind: str = "file",
                 mime: str = "application/octet-stream", before_text: bool = True,
                 size: int | None = None, status: str = "sent") -> ChatFile:
        """A file sent as part of the reply ``reply`` (a REPLY_SENT event)."""
        reply_id = int(reply.data["id"])
        idx = sum(f.reply_id == reply_id for f in self.files)
        file = ChatFile(reply_id, idx, int(reply.data["reply_to_id"]), name, mime, kind,
                        len(data) if size is None else size, reply.ts, before_text,
                        status=status)
        self.files.append(file)
        self.blobs[(reply_id, idx)] = data
        return file

    async def chat_files(self, chat: str = "app", limit: int = 100) -> list[ChatFile]:
        return list(self.files)

    async def chat_file(self, reply_id: int, idx: int, chat: str = "app") -> ChatFileContent:
        self.fetched.append((reply_id, idx))
        data = self.blobs.get((reply_id, idx))
        file = next((f for f in self.files if (f.reply_id, f.idx) == (reply_id, idx)), None)
        if data is None or file is None:
            raise ValueError(f"reply {reply_id} has no file part {idx}")
        return ChatFileContent(file.name, file.mime, len(data),
                               base64.b64encode(data).decode("ascii"))


class SaveRecorder:
    """A FilePicker stand-in that keeps what it was asked to save."""

    def __init__(self, path: str | None = "/home/me/notes.csv") -> None:
        self.saved: list[tuple[str | None, bytes | None]] = []
        self.path = path

    async def save_file(self, dialog_title: str | None = None, file_name: str | None = None,
                        *, src_bytes: bytes | None = None) -> str | None:
        self.saved.append((file_name, src_bytes))
        return self.path


def exchange(plane: FilesPlane, question: str, answer: str) -> tuple[Event, Event]:
    inbound = plane.receive("local", "app", "you", question, ts=NOON)
    return inbound, plane.answer(inbound, answer)


UNSHOWABLE = "The picture cannot be shown"
"""The thumbnail's error content: only read when Flutter cannot decode the picture."""


def read(control: object) -> list[str]:
    return [text for text in shown(control) if text != UNSHOWABLE]


def rows(view: ChatView) -> list[tuple[str, str]]:
    """Each line of the chat: "file" or its speaker, and its first text."""
    return [("file" if any(getattr(c, "data", None) == "file" for c in walk(r)) else r.data,
             read(r)[0]) for r in view.messages.controls]


async def test_history_shows_a_picture_inline_and_a_file_as_a_chip_beside_their_reply(
        ) -> None:
    plane = FilesPlane()
    _, reply = exchange(plane, "chart and data please", "Here they are.")
    plane.add_file(reply, "chart.png", PICTURE, kind="image", mime="image/png")
    plane.add_file(reply, "cups.csv", CSV, mime="text/csv", before_text=False)
    view = ChatView(plane, clock=lambda: NOON)
    await view.load()

    assert rows(view) == [("user", "chart and data please"), ("file", "chart.png"),
                          ("assistant", "Here they are."), ("file", "cups.csv")]
    [image] = of_type(view.messages.controls[1], ft.Image)
    assert image.src == PICTURE and (image.width, image.height) == (THUMBNAIL, 160)
    assert image.fit == ft.BoxFit.CONTAIN
    chip = view.messages.controls[3]
    assert of_type(chip, ft.Image) == []
    assert read(chip)[:2] == ["cups.csv", "File (CSV) · 1.2 KB"]
    assert button(chip, "Save cups.csv") is not None
    assert plane.fetched == [(reply.data["id"], 0)]  # only the picture, for its thumbnail
    assert len(view.messages.controls) == len(view.state.lines)


@pytest.mark.parametrize(("name", "kind", "size", "status", "details", "saves"), [
    ("report.pdf", "file", 2 * 1024 * 1024, "sent", "File (PDF) · 2 MB", True),
    ("hello.ogg", "voice", 500, "sent", "Voice message · 500 bytes", True),
    ("notes.txt", "file", -1, "sent", "File (TXT) · no longer stored", False),
    ("huge.zip", "file", CHAT_FILE_LIMIT + 1, "sent",
     "File (ZIP) · 8 MB · too large to open here", False),
    ("photo.jpg", "image", PREVIEW_LIMIT + 1, "sent", "Picture · 2 MB", True),
    ("late.md", "file", 10, "uncertain", "File (MD) · 10 bytes · may not have arrived", True),
    ("lost.md", "file", 10, "failed", "File (MD) · 10 bytes · not delivered", True),
])
async def test_a_chip_says_what_the_file_is_and_saves_only_what_can_be_handed_over(
        name: str, kind: str, size: int, status: str, details: str, saves: bool) -> None:
    plane = FilesPlane()
    _, reply = exchange(plane, "send it", "Sent.")
    plane.add_file(reply, name, b"bytes", kind=kind, size=size, status=status)
    view = ChatView(plane, clock=lambda: NOON)
    await view.load()
    chip = view.messages.controls[1]
    assert read(chip)[:2] == [name, details]
    assert of_type(chip, ft.Image) == []  # no thumbnail: not a picture, or too big for one
    assert plane.fetched == []
    saving = [c for c in of_type(chip, ft.IconButton) if c.tooltip == f"Save {name}"]
    assert len(saving) == (1 if saves else 0)


JFIF = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
"""A JPEG's start and its JFIF APP0 segment (16 bytes long), before its frame header."""


@pytest.mark.parametrize(("picture", "size"), [
    (png(320, 200), (240, 150)),
    (png(100, 400), (60, 240)),
    (png(4, 3), (4, 3)),  # a small picture is not enlarged
    (b"GIF89a\x90\x01\xc8\x00" + bytes(8), (240, 120)),  # 400 x 200, little-endian
    # SOF0 after APP0 (ITU T.81 B.2.2): length 17, precision 8, height 600, width 300
    (JFIF + b"\xff\xc0\x00\x11\x08\x02\x58\x01\x2c" + bytes(12), (120, 240)),
    (JFIF + b"\xff\xc4\x00\x02" + b"\xff\xc2\x00\x11\x08\x00\x10\x00\x20" + bytes(12),
     (32, 16)),  # a Huffman table first, then a progressive frame
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", (THUMBNAIL, THUMBNAIL)),  # unread: the square box
])
def test_a_thumbnail_keeps_the_pictures_proportions(picture: bytes, size: tuple[int, int]
                                                    ) -> None:
    assert thumbnail_size(picture) == size


async def test_a_picture_whose_bytes_cannot_be_fetched_is_shown_as_its_chip() -> None:
    plane = FilesPlane()
    _, reply = exchange(plane, "picture?", "Here.")
    plane.add_file(reply, "gone.png", PICTURE, kind="image")
    plane.blobs.clear()  # the gateway refuses it (removed meanwhile)
    view = ChatView(plane, clock=lambda: NOON)
    await view.load()
    assert rows(view)[1] == ("file", "gone.png")
    assert of_type(view.messages.controls[1], ft.Image) == []


async def test_a_file_arrives_live_before_the_reply_it_came_with() -> None:
    plane = FilesPlane(reply=None)
    view = ChatView(plane, clock=lambda: NOON)
    await view.load()
    inbound = plane.receive("local", "app", "you", "draw me a chart", ts=NOON)
    view.apply([inbound, plane.delta(inbound, "Drawing")], NOON)  # a reply starts streaming
    assert rows(view) == [("user", "draw me a chart"), ("assistant", "Drawing")]
    reply = plane.answer(inbound, "Here is your chart.")
    plane.add_file(reply, "chart.png", PICTURE, kind="image", mime="image/png")
    view.apply([reply], NOON)
    assert view.files_task is not None
    await view.files_task
    assert rows(view) == [("user", "draw me a chart"), ("file", "chart.png"),
                          ("assistant", "Here is your chart.")]
    assert of_type(view.messages.controls[1], ft.Image)[0].src == PICTURE

    # a second reply's file goes beside that reply, and the first is not shown twice
    second, again = exchange(plane, "and the data?", "The data.")
    plane.add_file(again, "cups.csv", CSV, before_text=False)
    view.apply([second, again], NOON)
    assert view.files_task is not None
    await view.files_task
    assert [r[1] for r in rows(view)] == ["draw me a chart", "chart.png", "Here is your chart.",
                                         "and the data?", "The data.", "cups.csv"]
    assert len(view.messages.controls) == len(view.state.lines)


async def test_files_in_a_full_window_cut_the_oldest_lines_in_step() -> None:
    plane = FilesPlane()
    view = ChatView(plane, window=4, clock=lambda: NOON)
    await view.load()
    first = exchange(plane, "one", "first")
    view.apply(list(first), NOON)
    inbound, reply = exchange(plane, "two", "second")
    plane.add_file(reply, "a.txt", b"a")
    view.apply([inbound, reply], NOON)
    assert view.files_task is not None
    await view.files_task
    assert [r[1] for r in rows(view)] == ["first", "two", "a.txt", "second"]
    assert [line.text for line in view.state.lines] == ["first", "two", "a.txt", "second"]


async def test_a_file_older_than_the_window_is_cut_with_it() -> None:
    plane = FilesPlane()
    view = ChatView(plane, window=3, clock=lambda: NOON)
    await view.load()
    first, second = exchange(plane, "one", "first"), exchange(plane, "two", "second")
    plane.add_file(first[1], "old.txt", b"o")  # its reply is the oldest line left
    plane.add_file(second[1], "new.txt", b"n")
    view.apply([*first, *second], NOON)
    assert view.files_task is not None
    await view.files_task
    assert [r[1] for r in rows(view)] == ["two", "new.txt", "second"]
    assert [line.text for line in view.state.lines] == ["two", "new.txt", "second"]


async def test_save_hands_the_bytes_to_the_picker_and_says_where_they_went() -> None:
    plane = FilesPlane()
    _, reply = exchange(plane, "data?", "Here.")
    file = plane.add_file(reply, "cups.csv", CSV, mime="text/csv")
    saver = SaveRecorder()
    view = ChatView(plane, clock=lambda: NOON, saver=saver)
    await view.load()

    save = button(view.messages.controls[1], "Save cups.csv")
    await save.on_click(SimpleNamespace(control=save))  # off a page: no snack bar to show
    assert saver.saved == [("cups.csv", CSV)]

    web = Page()
    web.web = True
    assert await view.save_file(file, web) == "Saved cups.csv (see your browser's downloads)."
    desktop = Page()
    desktop.web = False
    assert await view.save_file(file, desktop) == "Saved cups.csv to /home/me/notes.csv."
    assert [d.content.value for d in web.dialogs + desktop.dialogs] == [
        "Saved cups.csv (see your browser's downloads).", "Saved cups.csv to /home/me/notes.csv."]

    plane.blobs.clear()
    said = await view.save_file(file, desktop)
    assert said == f"Not saved: reply {file.reply_id} has no file part 0"
    assert len(saver.saved) == 3  # nothing was saved for the refused one


async def test_a_gateway_that_lists_no_files_still_shows_the_chat() -> None:
    plane = FakeControlPlane()  # as an older gateway: no chat_files at all
    exchange(plane, "hi", "hello")  # type: ignore[arg-type]
    view = ChatView(plane, clock=lambda: NOON)  # type: ignore[arg-type]
    await view.load()
    assert [r.data for r in view.messages.controls] == ["user", "assistant"]
    assert not view.field.disabled


@pytest.mark.parametrize(("files", "order"), [
    ([("a", True), ("b", True)], ["q", "a", "b", "answer"]),
    ([("a", False), ("b", False)], ["q", "answer", "a", "b"]),
    ([("a", True), ("v", False), ("b", True)], ["q", "a", "b", "answer", "v"]),
])
def test_files_keep_their_order_around_the_reply_text(files: list[tuple[str, bool]],
                                                      order: list[str]) -> None:
    state = ChatState()
    plane = FilesPlane()
    _, reply = exchange(plane, "q", "answer")
    added = [dataclasses.replace(plane.add_file(reply, name, b"x"), before_text=before)
             for name, before in files]
    state.load(plane.rows, added)
    assert [line.text for line in state.lines] == order


async def test_a_real_gateway_shows_the_file_its_model_wrote(make_gateway: Any,
                                                           fake_llm: FakeOpenAI,
                                                           tmp_path: Path) -> None:
    fake_llm.responder = writes_notes
    gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"),
                              gateway.config.path)
    view = ChatView(plane, saver=(saver := SaveRecorder()))
    await view.load()
    sub = plane.subscribe()
    try:
        await view.send("put my list in a file")
        while view.state.waiting:
            view.apply(await sub.get_batch(timeout=10), NOON)
        assert view.files_task is not None
        await view.files_task
    finally:
        sub.close()
    assert rows(view) == [("user", "put my list in a file"), ("file", "shopping.md"),
                          ("assistant", "Here is your list.")]
    chip = view.messages.controls[1]
    assert read(chip)[:3] == ["shopping.md", "File (MD) · 27 bytes", "your list"]
    await view.save_file(view.state.lines[1].file, None)  # type: ignore[arg-type]
    assert saver.saved == [("shopping.md", NOTES.encode())]

    fresh = ChatView(plane)  # shown again (a new session): the same lines, in place
    await fresh.load()
    assert rows(fresh) == rows(view)

    # a picture sent after the text (as a voice reply goes) comes back as its thumbnail
    await picture_after(gateway, view.state.lines[1].file.reply_id,  # type: ignore[union-attr]
                        PICTURE)
    pictured = ChatView(plane)
    await pictured.load()
    assert rows(pictured) == [*rows(view), ("file", "chart.png")]
    assert of_type(pictured.messages.controls[3], ft.Image)[0].src == PICTURE
