"""Text direction (first strong character) and the views that use it; the bundled fonts.

The rendering itself (glyphs instead of boxes, a bubble laid out right to left)
is checked in Chromium by ``test_browser_scripts``.
"""

from __future__ import annotations

import dataclasses
import time
import unicodedata

import flet as ft
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.control import LogRow, MessageDetail, TrafficRow
from pyclaw_app.model import Event, EventKind
from tests.ui.fake_admin_plane import FakeAdminPlane
from views.app import ASSETS_DIR
from views.chat import chat_bubble
from views.fonts import BASE_FONT, FALLBACK_FONTS, text_theme
from views.logs import LogsView
from views.message_detail import DetailPanel
from views.state import ChatLine, FeedRow
from views.text_direction import FSI, PDI, base_direction, is_rtl, isolate
from views.traffic import feed_row_control

ARABIC = "مرحبا، كيف حالك اليوم؟"
HEBREW = "שלום, מה שלומך?"
FONT_BUDGET = 8_000_000  # bytes: every fallback font together, the APK carries them


def _by_class() -> dict[str, list[str]]:
    """Every assigned, encodable character, by its Unicode bidi class."""
    found: dict[str, list[str]] = {}
    for code in range(0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(char) == "Cn":
            continue
        found.setdefault(unicodedata.bidirectional(char), []).append(char)
    return found


_CLASSES = _by_class()


def _of_class(*classes: str) -> st.SearchStrategy[str]:
    return st.sampled_from([c for name in classes for c in _CLASSES.get(name, [])])


strong_ltr = _of_class("L")
strong_rtl = _of_class("R", "AL")
# Characters that never decide a direction: neutrals, numbers, separators, marks.
weak = _of_class("EN", "ES", "ET", "AN", "CS", "NSM", "BN", "B", "S", "WS", "ON")
# Anything but an isolate's start or end.
isolate_free = _of_class(*(set(_CLASSES) - {"LRI", "RLI", "FSI", "PDI"}))


# -- the pure function -------------------------------------------------------------------------

def test_examples() -> None:
    assert base_direction(ARABIC) == "rtl" and base_direction(HEBREW) == "rtl"
    assert base_direction("hello مرحبا") == "ltr"
    assert base_direction("123, «שלום»") == "rtl"  # digits and quotes do not decide
    assert base_direction("中文 and English") == "ltr"  # Han is strong left to right
    assert base_direction("😀 👍 42 !") is None
    assert base_direction("") is None
    assert base_direction(f"{FSI}مرحبا{PDI} hello") == "ltr"  # an isolate's inside is skipped
    assert base_direction(f"{PDI}مرحبا") == "rtl"  # a stray PDI closes nothing
    assert is_rtl(ARABIC) and not is_rtl("hello") and not is_rtl("42")


@given(st.text(weak), strong_rtl, st.text(isolate_free))
def test_first_strong_rtl_character_decides(prefix: str, first: str, rest: str) -> None:
    assert base_direction(prefix + first + rest) == "rtl"


@given(st.text(weak), strong_ltr, st.text(isolate_free))
def test_first_strong_ltr_character_decides(prefix: str, first: str, rest: str) -> None:
    assert base_direction(prefix + first + rest) == "ltr"


@given(st.text(weak))
def test_text_without_strong_characters_has_no_direction(text: str) -> None:
    assert base_direction(text) is None


@given(st.text(isolate_free), st.text(isolate_free))
def test_isolated_text_does_not_decide(inside: str, after: str) -> None:
    assert base_direction(f"{FSI}{inside}{PDI}{after}") == base_direction(after)


@given(st.text())
def test_isolate_fences_exactly_the_text_with_rtl_characters(text: str) -> None:
    fenced = isolate(text)
    has_rtl = any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)
    assert fenced == (f"{FSI}{text}{PDI}" if has_rtl else text)


@given(strong_ltr, st.text(isolate_free))
def test_a_fenced_field_leaves_the_line_direction_alone(first: str, field: str) -> None:
    assert base_direction(f"{first} {isolate(field)}") == "ltr"


# -- the views ---------------------------------------------------------------------------------

def _texts(control: ft.Control) -> list[ft.Control]:
    """Every Text and Markdown in a control tree."""
    found: list[ft.Control] = []

    def walk(node: object) -> None:
        if isinstance(node, ft.Text | ft.Markdown):
            found.append(node)
        if isinstance(node, list | tuple):
            for item in node:
                walk(item)
        elif isinstance(node, ft.BaseControl):
            for name in ("content", "controls"):
                walk(getattr(node, name, None))

    walk(control)
    return found


def _showing(control: ft.Control, text: str) -> ft.Control:
    return next(t for t in _texts(control) if text in str(t.value))


def test_chat_bubbles_lay_rtl_text_out_right_to_left() -> None:
    for role in ("user", "assistant", "error"):
        assert _showing(chat_bubble(ChatLine(role, ARABIC)), ARABIC).rtl, role
        assert _showing(chat_bubble(ChatLine(role, HEBREW)), HEBREW).rtl, role
        assert not _showing(chat_bubble(ChatLine(role, "hello there")), "hello").rtl, role
    markdown = f"**{ARABIC}**\n\n- {HEBREW}"
    body = _showing(chat_bubble(ChatLine("assistant", markdown)), ARABIC)
    assert isinstance(body, ft.Markdown) and body.rtl


def test_a_rtl_bubble_stays_on_its_speakers_side() -> None:
    mine = chat_bubble(ChatLine("user", ARABIC))
    theirs = chat_bubble(ChatLine("assistant", ARABIC))
    assert isinstance(mine, ft.Row) and mine.alignment == ft.MainAxisAlignment.END
    assert isinstance(theirs, ft.Row) and theirs.alignment == ft.MainAxisAlignment.START


async def test_log_lines_and_messages_lay_rtl_text_out_right_to_left() -> None:
    plane = FakeAdminPlane()
    plane.add_log("tg", "info", f"message 1: {ARABIC}")
    plane.add_log("tg", "info", "started polling")
    inbound = plane.receive("tg", "1001", "نور", HEBREW)
    plane.answer(inbound, "Sure, here you go.")
    view = LogsView(plane)
    await view.load()
    assert not _showing(view.lines, "message 1").rtl  # it starts with Latin
    assert not _showing(view.lines, "started polling").rtl
    view.apply([Event(EventKind.LOG, "tg", {"level": "info", "message": ARABIC})], time.time())
    assert _showing(view.lines, ARABIC).rtl
    assert _showing(view.messages, HEBREW).rtl
    assert _showing(view.messages, "نور").rtl  # the sender column too
    assert not _showing(view.messages, "Sure, here you go.").rtl


def test_detail_panel_lays_rtl_text_out_right_to_left() -> None:
    panel = DetailPanel(FakeAdminPlane())
    record = TrafficRow(7, time.time(), "in", "tg", "1001", "אורי", HEBREW, "received")
    panel.show_message(MessageDetail(record, "9", None, ()), 7)
    assert _showing(panel.body, HEBREW).rtl
    assert _showing(panel.body, "אורי").rtl  # the Sender pair
    assert not _showing(panel.body, "1001").rtl
    panel.show_log(LogRow(3, time.time(), "tg", "warning", ARABIC, {}), None)
    assert _showing(panel.body, ARABIC).rtl


def test_feed_cells_run_their_own_way_and_the_phone_line_fences_rtl_fields() -> None:
    row = FeedRow("in:1", time.time(), "in", "telegram", "1001", "نور", ARABIC, 840.0)
    line = feed_row_control(row)
    assert isinstance(line, ft.Row)
    cells = {c.value: c.rtl for c in line.controls}
    assert cells[ARABIC] and cells["نور"]  # each in its own column, right to left
    assert not cells["telegram"] and not cells["received"]
    meta, message = feed_row_control(row, narrow=True).controls  # a phone's two lines
    assert message.value == ARABIC and message.rtl
    assert f"{FSI}نور{PDI}" in meta.value and not meta.rtl
    assert base_direction(meta.value) == "ltr"
    plain, _ = feed_row_control(FeedRow("in:2", time.time(), "in", "telegram", "1", "al", "hi"),
                                narrow=True).controls
    assert FSI not in plain.value and PDI not in plain.value


# -- the fonts ---------------------------------------------------------------------------------

def test_every_registered_font_is_bundled_with_its_licence() -> None:
    files = [ASSETS_DIR / path for path in FALLBACK_FONTS.values()]
    assert all(f.is_file() and f.stat().st_size > 10_000 for f in files), files
    assert sum(f.stat().st_size for f in files) <= FONT_BUDGET
    licence = (ASSETS_DIR / "fonts" / "OFL.txt").read_text(encoding="utf-8")
    sources = (ASSETS_DIR / "fonts" / "SOURCES.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence
    for f in files:
        assert f.name in licence and f.name in sources


def test_every_text_style_falls_back_to_the_bundled_fonts() -> None:
    theme = text_theme()
    styles = [getattr(theme, f.name) for f in dataclasses.fields(theme)
              if f.name.endswith(("_large", "_medium", "_small"))]
    assert len(styles) == 15
    assert all(s.font_family_fallback == list(FALLBACK_FONTS) for s in styles)
    assert all(s.font_family == BASE_FONT for s in styles)
