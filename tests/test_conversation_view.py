"""The Conversation view and the Messages table against the real control plane of a gateway
run: two local chat channels (one person on both), the fake OpenAI API answering with a
calculator call when asked, real SQLite. The views' controls are read, no page is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flet as ft
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.control.chat import ask
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Event, EventKind
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import GatewayFactory, provider_section
from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.test_conversation import responder
from tests.ui.fake_admin_plane import FakeAdminPlane
from views.conversation import (
    ROUTE,
    ConversationView,
    Selection,
    conversation_route,
    parse_route,
)
from views.logs import LogsView
from views.shell import Shell

WAIT = 20.0


def texts(control: object) -> list[str]:
    """Every visible Text value under a control, depth first."""
    found: list[str] = []

    def walk(c: object) -> None:
        if isinstance(c, ft.Control) and not c.visible:
            return
        if isinstance(c, ft.Text):
            found.append(c.value)
        for name in ("content", "controls"):
            child = getattr(c, name, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ft.Control):
                    walk(item)

    walk(control)
    return found


def find(control: object, kind: type, where: Any = lambda c: True) -> list[Any]:
    found: list[Any] = []

    def walk(c: object) -> None:
        if isinstance(c, kind) and where(c):
            found.append(c)
        for name in ("content", "controls"):
            child = getattr(c, name, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ft.Control):
                    walk(item)

    walk(control)
    return found


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, fake_llm: FakeOpenAI) -> Gateway:
    fake_llm.responder = responder
    return await make_gateway({"providers": [provider_section(fake_llm)],
                               "channels": {"local": {"type": "local"},
                                            "desk": {"type": "local"}}})


@pytest.fixture
def plane(gateway: Gateway, tmp_path: Path) -> LocalControlPlane:
    return LocalControlPlane(gateway, FileSecretStore(tmp_path / "data" / "secrets.json"))


async def say(gateway: Gateway, text: str, channel: str = "local") -> str:
    return await ask(gateway, text, channel=channel, chat="ann", sender="ann", timeout=WAIT)


async def first_message(plane: LocalControlPlane, channel: str = "local") -> int:
    rows = [t for t in await plane.recent_traffic(100, channel=channel) if t.direction == "in"]
    return rows[-1].id


async def test_a_chat_reads_as_bubbles_with_the_turn_collapsed_between(
        gateway: Gateway, plane: LocalControlPlane) -> None:
    await say(gateway, "hello")
    await say(gateway, "calc 6*7")
    view = ConversationView(plane)
    await view.open(conversation_route(message_id=await first_message(plane)))

    assert view.title.value == "ann" and view.subtitle.value == "local ann"
    assert [e.message.text for e in view.exchanges] == ["hello", "calc 6*7"]
    calc_control, hello_control, top = view.list.controls  # reversed: the newest first
    assert top is view._top and not view.older_button.visible and view.start_note.visible
    question, turn, answer = calc_control.controls
    assert question.data == "in" and question.alignment == ft.MainAxisAlignment.END
    assert answer.data == "out" and answer.alignment == ft.MainAxisAlignment.START
    assert "calc 6*7" in texts(question) and "The answer is 42" in texts(answer)
    assert not any(t in ("local",) for t in texts(question))  # one channel: no badge

    details = view.details[view.exchanges[1].message.id]
    assert not details.expanded  # collapsed by default
    summary = texts(turn)
    assert summary[0].startswith("2 LLM calls · 1 tool call · ") and "tokens" in summary[0]
    details.toggle()
    shown = " ".join(texts(turn))
    assert "LLM call  fake · fake-model" in shown and "Tool calculate" in shown
    assert '{"expression": "6*7"} → 42' in shown
    details.toggle()
    assert not details.expanded
    assert texts(hello_control)[-1] == "Echo: hello"


async def test_right_to_left_messages_run_right_to_left_in_their_bubbles(
        gateway: Gateway, plane: LocalControlPlane) -> None:
    hebrew = "שלום, מה שלומך היום?"
    await say(gateway, hebrew)
    view = ConversationView(plane)
    await view.open(conversation_route(message_id=await first_message(plane)))
    (question,) = find(view.list, ft.Text, lambda t: t.value == hebrew)
    (answer,) = find(view.list, ft.Text, lambda t: t.value == f"Echo: {hebrew}")
    assert question.rtl and not answer.rtl  # "Echo:" starts it left to right


async def test_a_long_chat_loads_older_pages_on_demand(
        gateway: Gateway, plane: LocalControlPlane) -> None:
    for n in range(5):
        await say(gateway, f"message {n}")
    view = ConversationView(plane, page_size=2)
    await view.open(conversation_route(message_id=await first_message(plane)))
    assert [e.message.text for e in view.exchanges] == ["message 3", "message 4"]
    assert view.older_button.visible and not view.start_note.visible
    assert await view.load_older() == 2
    assert await view.load_older() == 1
    assert [e.message.text for e in view.exchanges] == [f"message {n}" for n in range(5)]
    assert len(view.list.controls) == 6 and view.list.controls[-1] is view._top
    assert not view.older_button.visible and view.start_note.visible
    assert await view.load_older() == 0


async def test_a_person_on_two_channels_reads_as_one_chat_with_channel_badges(
        gateway: Gateway, plane: LocalControlPlane) -> None:
    await say(gateway, "from the app")
    await say(gateway, "from the desk", channel="desk")
    person = await plane.link_accounts("local", "ann", "desk", "ann")

    logs = LogsView(plane)
    await logs.load()
    assert not logs.person.open_button.visible
    await logs.person.select(person.id)  # the Person filter offers her conversation
    assert logs.person.open_button.visible

    view = ConversationView(plane)
    await view.open(conversation_route(message_id=await first_message(plane)))
    links = [b.content for b in find(view.links, ft.TextButton)]
    assert links == ["All of ann's direct chats"]  # a linked account's chat offers the rest

    await view.open(conversation_route(person_id=person.id))
    assert view.title.value == "ann" and view.spans_channels
    assert view.subtitle.value.startswith("Direct chats with ann on 2 channels: ")
    assert [(e.message.channel, e.message.text) for e in view.exchanges] == [
        ("local", "from the app"), ("desk", "from the desk")]
    newest = view.list.controls[0]
    assert "desk" in texts(newest.controls[0]) and "desk" in texts(newest.controls[-1])

    # traffic in a chat on screen offers a refresh; another chat's does not
    view.apply([Event(EventKind.MESSAGE_RECEIVED, "local", {"chat": "elsewhere"})], 0)
    assert not view.fresh_button.visible
    await say(gateway, "one more", channel="desk")
    view.apply([Event(EventKind.MESSAGE_RECEIVED, "desk", {"chat": "ann", "text": "x"})], 0)
    assert view.fresh_button.visible
    await view.load()
    assert view.exchanges[-1].message.text == "one more" and not view.fresh_button.visible


async def test_nothing_chosen_nothing_found_or_an_older_gateway_is_said_not_raised(
        plane: LocalControlPlane) -> None:
    view = ConversationView(plane)
    await view.open(ROUTE)
    assert view.notice.visible and "Open a conversation from Logs" in view.notice.value
    await view.open(conversation_route(message_id=424242))
    assert "no such conversation" in view.notice.value
    assert view.notice.color == ft.Colors.ERROR and view.list.controls == []

    older = ConversationView(FakeAdminPlane())  # a plane without conversation()
    await older.open(conversation_route(person_id=1))
    assert older.notice.visible and "Could not read the conversation" in older.notice.value


async def test_the_shell_shows_a_conversation_with_logs_selected(
        gateway: Gateway, plane: LocalControlPlane) -> None:
    await say(gateway, "hello")
    shell = Shell(plane)
    logs = [d.route for d in shell.destinations].index("/logs")
    route = conversation_route(message_id=await first_message(plane))
    assert shell.show(route) == route
    assert shell.rail.selected_index == logs and shell.bar.selected_index == logs
    assert shell.current is shell.conversation and shell.conversation.root.visible
    assert not any(p.root.visible for p in shell.panels.values())
    assert await shell.load_route() and not await shell.load_route()  # loaded once
    assert [e.message.text for e in shell.conversation.exchanges] == ["hello"]
    assert shell.show("/logs") == "/logs"
    assert not shell.conversation.root.visible and shell.panels["/logs"].root.visible
    assert len(shell.destinations) == 7  # no eighth destination on the phone's bar


async def test_a_failed_message_shows_its_text_and_its_error_apart(
        gateway: Gateway, plane: LocalControlPlane, fake_llm: FakeOpenAI) -> None:
    fake_llm.faults.append(Fault(status=500))
    await say(gateway, "will this fail?")
    view = LogsView(plane)
    await view.load()
    failed = next(t for t in view.traffic if t.direction == "in")
    assert failed.status == "failed" and failed.error
    row = view.messages.controls[view.traffic.index(failed)]
    shown = texts(row)
    assert "will this fail?" in shown
    (error,) = find(row, ft.Text, lambda t: t.value == failed.error.replace("\n", " "))
    assert error.color == ft.Colors.ERROR
    assert not any("will this fail?" in t and failed.error in t for t in shown)  # not joined
    assert not view.detail.conversation_button.visible
    await view.open_message(failed.id)  # the row's detail offers its conversation
    assert view.detail.conversation_button.visible


def test_routes_name_what_they_show() -> None:
    assert parse_route(conversation_route(person_id=7)) == Selection("person", "7")
    assert parse_route(conversation_route(message_id=42)) == Selection("message", "42")
    assert parse_route("/conversation/person/x") is None
    assert parse_route("/conversation") is None and parse_route("/conversation/") is None
    assert parse_route("/conversation/nonsense/1") is None
    assert Selection("chat", "a|b").query() == {"conv": "a|b"}


@given(st.text(min_size=1))
def test_any_conversation_key_survives_its_route(conv: str) -> None:
    route = conversation_route(conv=conv)
    assert "|" not in route and route.count("/") == 3
    assert parse_route(route) == Selection("chat", conv)


@given(st.text())
def test_any_route_parses_or_names_nothing(tail: str) -> None:
    for route in (tail, f"{ROUTE}/{tail}", f"{ROUTE}/person/{tail}", f"{ROUTE}/message/{tail}"):
        parsed = parse_route(route)
        if parsed is not None:
            parsed.query()  # what it names, the plane can be asked for

