"""The Chat view's bubbles (Markdown for the assistant only, code blocks with copy buttons,
times, long ones collapsed) and its reset, on the fake plane and on a real gateway.

Control-level: no browser, the controls are inspected as data and their handlers called
with a stand-in page (``tests/ui/test_browser_chat.py`` is the one browser test).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flet as ft
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.bus import BusSubscription
from pyclaw_app.control import TrafficRow
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.ui.fake_plane import FakeControlPlane
from views.chat import COLLAPSE_AT, ChatView, bubble_time, chat_bubble
from views.chat_markdown import Block, blocks, code_fence, shorten, without_images
from views.state import ChatLine, ChatState

CODE = 'def greet(name):\n    if name:\n        return f"Hello, {name}!"\n    return "Hello!"'
REPLY = f"Here it is:\n\n```python\n{CODE}\n```\n\nCall it with `greet()`."
NOON = datetime(2026, 12, 2, 12, 0).timestamp()


# -- helpers --------------------------------------------------------------------------------


def walk(control: object) -> Iterator[ft.BaseControl]:
    """Every visible control under ``control``, depth first."""
    if not isinstance(control, ft.BaseControl):
        return
    if isinstance(control, ft.Control) and not control.visible:
        return
    yield control
    for f in dataclasses.fields(control):
        value = getattr(control, f.name, None)
        for item in value if isinstance(value, list) else [value]:
            yield from walk(item)


def shown(control: object) -> list[str]:
    """The texts a user reads: Text values and Markdown sources, in order."""
    return [c.value for c in walk(control) if isinstance(c, ft.Text | ft.Markdown)]


def of_type(control: object, kind: type) -> list[Any]:
    return [c for c in walk(control) if isinstance(c, kind)]


def button(control: object, name: str) -> Any:
    """A button by its text or tooltip (what a screen reader says)."""
    return next(c for c in walk(control)
                if isinstance(c, ft.IconButton | ft.TextButton | ft.FilledButton)
                and name in (getattr(c, "content", None), c.tooltip))


class Page(SimpleNamespace):
    """What the view uses of ft.Page: dialogs (and snack bars) shown and popped."""

    def __init__(self) -> None:
        super().__init__(dialogs=[], updates=0)

    def show_dialog(self, dialog: ft.DialogControl) -> None:
        self.dialogs.append(dialog)

    def pop_dialog(self) -> None:
        self.dialogs.pop()

    def update(self, *controls: ft.Control) -> None:
        self.updates += 1


async def click(control: Any, page: Page) -> None:
    result = control.on_click(SimpleNamespace(page=page, control=control))
    if result is not None:
        await result


class Recorder:
    """A clipboard that keeps what was put on it."""

    def __init__(self) -> None:
        self.values: list[str] = []

    async def set(self, value: str) -> None:
        self.values.append(value)


# -- Markdown: the assistant's only -------------------------------------------------------------


def test_assistant_markdown_is_rendered_and_code_blocks_are_cards_of_their_own() -> None:
    row = chat_bubble(ChatLine("assistant", REPLY, ts=NOON), now=NOON, on_copy=lambda e: None)
    markdown = of_type(row, ft.Markdown)
    assert [m.value for m in markdown] == ["Here it is:", f"```python\n{CODE}\n```",
                                           "Call it with `greet()`."]
    assert all(m.extension_set is ft.MarkdownExtensionSet.GITHUB_FLAVORED for m in markdown)
    copy_code = button(row, "Copy code")
    assert copy_code.data == CODE  # indentation kept, fences gone
    assert "python" in shown(row)  # the block's language, in its header
    assert button(row, "Copy").data == REPLY


def test_the_users_text_is_never_read_as_markdown() -> None:
    typed = "**not bold** `not code`\n```\nnot a block\n```"
    row = chat_bubble(ChatLine("user", typed), on_copy=lambda e: None)
    assert of_type(row, ft.Markdown) == []
    assert typed in shown(row)
    assert [b.tooltip for b in of_type(row, ft.IconButton)] == ["Copy"]


def test_plain_replies_stay_plain_text_and_images_become_links() -> None:
    assert of_type(chat_bubble(ChatLine("assistant", "just words")), ft.Markdown) == []
    row = chat_bubble(ChatLine("assistant", "see ![chart](http://127.0.0.1:9/c.png) now!"))
    assert shown(row)[0] == "see [chart](http://127.0.0.1:9/c.png) now!"
    assert without_images(r"!![a](u) \![b](u) \\![c](u) `![d](u)`") == \
        r"[a](u) \[b](u) \\[c](u) `[d](u)`"


def test_blocks_follow_commonmark_fences() -> None:
    text = ("intro\n  ~~~~ js extra\n  let a;\n    nested();\n  ~~~\n~~~~~\n"
            "prose ```not a fence```\n````\n```\n````")
    assert blocks(text) == [Block("text", "intro"), Block("code", "let a;\n  nested();\n~~~",
                                                          "js"),
                            Block("text", "prose ```not a fence```"), Block("code", "```")]
    assert blocks("```py\nstill being written") == [Block("code", "still being written", "py")]
    assert blocks("    ```\n    indented code") == [Block("text", "    ```\n    indented code")]
    assert code_fence(Block("code", "a ``` b", "md")) == "````md\na ``` b\n````"


fence_free_line = st.text(st.characters(blacklist_characters="\n`~\r"), max_size=30)
code_line = st.text(st.characters(blacklist_characters="\n\r"), max_size=30).filter(
    lambda line: not line.lstrip(" ").startswith(("```", "~~~")))


@given(st.lists(st.one_of(st.tuples(st.just("text"), st.lists(fence_free_line, min_size=1)),
                          st.tuples(st.just("code"), st.lists(code_line))), max_size=6))
def test_blocks_give_back_each_code_block_exactly(parts: list[tuple[str, list[str]]]) -> None:
    source = "\n".join("\n".join(lines) if kind == "text"
                        else "```x\n" + "".join(f"{line}\n" for line in lines) + "```"
                        for kind, lines in parts)
    found = blocks(source)
    assert [b.text for b in found if b.kind == "code"] == [
        "\n".join(lines) for kind, lines in parts if kind == "code"]
    prose = "\n".join("\n".join(lines) for kind, lines in parts if kind == "text")
    assert "\n".join(b.text for b in found if b.kind == "text").split() == prose.split()
    assert all(b.language == "x" for b in found if b.kind == "code")


@given(st.text(max_size=200))
def test_no_image_is_left(text: str) -> None:
    assert "![" not in without_images(text)


@given(st.text(max_size=400), st.integers(min_value=3, max_value=300))
def test_shorten_keeps_a_prefix_within_the_limit(text: str, limit: int) -> None:
    short = shorten(text, limit)
    if len(text) <= limit:
        assert short == text
    else:
        assert short.endswith("…") and len(short) <= limit + 1
        assert text.startswith(short[:-1])


# -- long bubbles, times ------------------------------------------------------------------------


async def test_a_long_bubble_is_collapsed_and_opens_and_closes() -> None:
    text = "\n".join(f"line {i}: " + "word " * 20 for i in range(30))
    assert len(text) > COLLAPSE_AT
    view = ChatView(FakeControlPlane(), clipboard=Recorder())
    row = view._bubble(ChatLine("assistant", text, ts=NOON))
    (body,) = [t for t in of_type(row, ft.Text) if t.value.startswith("line 0")]
    assert len(body.value) <= COLLAPSE_AT + 1 and body.value.endswith("…")
    page = Page()
    await click(button(row, "Show more"), page)
    assert text in shown(row)
    await click(button(row, "Show less"), page)
    assert text not in shown(row) and button(row, "Show more")
    await click(button(row, "Copy"), page)
    assert view._clipboard.values == [text]  # the whole text, even when collapsed


async def test_a_streamed_reply_grows_one_control_and_stays_open_when_done() -> None:
    plane = FakeControlPlane(reply=None)
    view = ChatView(plane)
    await view.load()
    sub = plane.subscribe()
    await view.send("write a lot")
    inbound = (await sub.get_batch())[0]
    view.apply([inbound, plane.delta(inbound, "A **long**")], NOON)
    growing = of_type(view.messages.controls[-1], ft.Markdown)[0]
    assert of_type(view.messages.controls[-1], ft.IconButton) == []  # no copy while writing
    long = " story" * 300
    view.apply([plane.delta(inbound, long)], NOON)
    assert of_type(view.messages.controls[-1], ft.Markdown)[0] is growing  # changed in place
    assert growing.value == "A **long**" + long
    view.apply([plane.answer(inbound, "A **long**" + long)], NOON)
    done = view.messages.controls[-1]
    assert "A **long**" + long in shown(done)  # not collapsed under the reader's eyes
    assert button(done, "Copy").data == "A **long**" + long

    await view.send("and another")  # a long reply that comes whole is open too
    view.apply([plane.answer((await sub.get_batch())[-1], "whole" + long)], NOON)
    assert "whole" + long in shown(view.messages.controls[-1])
    await view.load()  # shown again: both are collapsed
    assert ["Show more"] * 2 == [b.content for b in of_type(view.messages, ft.TextButton)]


def test_bubble_times_are_local_with_the_date_on_other_days() -> None:
    assert bubble_time(datetime(2026, 12, 2, 9, 5).timestamp(), NOON) == "09:05"
    assert bubble_time(datetime(2026, 11, 30, 23, 59).timestamp(), NOON) == "30 Nov 23:59"
    assert bubble_time(datetime(2025, 12, 2, 9, 5).timestamp(), NOON) == "2 Dec 2025 09:05"
    assert bubble_time(None, NOON) == ""


async def test_each_bubble_shows_when_it_was_written() -> None:
    plane = FakeControlPlane()
    plane.receive("local", "app", "terminal", "from yesterday",
                  ts=datetime(2026, 12, 1, 18, 30).timestamp())
    view = ChatView(plane, clock=lambda: NOON)
    await view.load()
    await view.send("now")
    assert "1 Dec 18:30" in shown(view.messages.controls[0])
    assert "12:00" in shown(view.messages.controls[1])  # the user's own line: the view's clock


# -- copy and reset ---------------------------------------------------------------------------


async def test_copy_puts_the_text_on_the_clipboard_and_says_so() -> None:
    clipboard = Recorder()
    view = ChatView(FakeControlPlane(), clipboard=clipboard)
    row = view._bubble(ChatLine("assistant", REPLY, ts=NOON))
    page = Page()
    await click(button(row, "Copy code"), page)
    await click(button(row, "Copy"), page)
    assert clipboard.values == [CODE, REPLY]
    assert [type(d) for d in page.dialogs] == [ft.SnackBar, ft.SnackBar]


async def test_reset_asks_first() -> None:
    plane = FakeControlPlane()
    await plane.chat_send("earlier")
    view = ChatView(plane)
    await view.load()
    page = Page()
    await click(view.reset_button, page)
    (dialog,) = page.dialogs
    assert isinstance(dialog, ft.AlertDialog) and dialog.modal
    assert "forgets" in dialog.content.value
    await click(button(dialog, "Cancel"), page)
    assert page.dialogs == [] and plane.resets == [] and len(view.messages.controls) == 2
    await click(view.reset_button, page)
    await click(button(page.dialogs[0], "Reset"), page)
    assert page.dialogs == [] and plane.resets == ["app"] and view.messages.controls == []


async def test_a_failed_reset_is_said_and_keeps_the_chat(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plane = FakeControlPlane()
    await plane.chat_send("earlier")

    async def refused(chat: str = "app") -> None:
        raise PermissionError("this token may only read")

    monkeypatch.setattr(plane, "chat_reset", refused)
    view = ChatView(plane)
    await view.load()
    page = Page()
    await click(view.reset_button, page)
    await click(button(page.dialogs[0], "Reset"), page)
    (snack,) = page.dialogs
    assert isinstance(snack, ft.SnackBar) and "this token may only read" in snack.content.value
    assert len(view.messages.controls) == 2


def test_a_failed_question_keeps_its_text_after_a_reload() -> None:
    """As the journal holds a failure: the question failed with its error, and the notice
    the user got instead is a reply row carrying the same error."""
    state = ChatState()
    state.load([
        TrafficRow(1, NOON, "in", "local", "app", "you", "will fail", "failed",
                   error="provider fake: 500"),
        TrafficRow(2, NOON, "out", "local", "app", "", "Sorry, that failed.", "sent",
                   reply_to_id=1, error="provider fake: 500"),
        TrafficRow(3, NOON, "out", "local", "app", "", "A notice of its own", "sent",
                   error="paused"),
    ])
    assert [(line.role, line.text) for line in state.lines] == [
        ("user", "will fail"), ("error", "provider fake: 500"), ("error", "paused")]


# -- against a real gateway -------------------------------------------------------------------


async def _answered(view: ChatView, sub: BusSubscription) -> None:
    while view.state.waiting:
        view.apply(await sub.get_batch(timeout=10), NOON)


async def _say(view: ChatView, sub: BusSubscription, text: str) -> None:
    await view.send(text)
    await _answered(view, sub)


def _asked(llm: FakeOpenAI) -> str:
    """Everything the model was shown in its last request."""
    return " ".join(str(m.get("content")) for m in llm.requests[-1]["messages"])


async def _fresh(plane: LocalControlPlane) -> list[tuple[str, str]]:
    view = ChatView(plane)
    await view.load()
    return [(r.data, shown(r)[0]) for r in view.messages.controls]


async def test_reset_really_starts_a_new_conversation(make_gateway: Any, fake_llm: FakeOpenAI,
                                                      tmp_path: Path) -> None:
    gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"),
                              gateway.config.path)
    view = ChatView(plane)
    await view.load()
    sub = plane.subscribe()
    try:
        await _say(view, sub, "the password is kiwi")
        await _say(view, sub, "and the colour is teal")
        assert "kiwi" in _asked(fake_llm)  # the agent remembers
        assert len(await _fresh(plane)) == 4  # and a reload shows it all

        page = Page()
        await click(view.reset_button, page)
        await click(button(page.dialogs[0], "Reset"), page)
        assert view.messages.controls == []
        assert await _fresh(plane) == []  # a reload brings nothing back

        await _say(view, sub, "what was the password?")
        assert "kiwi" not in _asked(fake_llm) and "teal" not in _asked(fake_llm)
        assert await _fresh(plane) == [("user", "what was the password?"),
                                       ("assistant", "Echo: what was the password?")]

        await _say(view, sub, "/reset")  # the chat command cuts the same way
        assert await _fresh(plane) == []
        await _say(view, sub, "hello again")
        assert "password" not in _asked(fake_llm)
        assert await _fresh(plane) == [("user", "hello again"),
                                       ("assistant", "Echo: hello again")]
    finally:
        sub.close()
