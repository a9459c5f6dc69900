"""The Logs view's Person filter against a fake control plane: hidden without people (or on a
gateway that cannot list them), and picking one shows their traffic across channels."""

from __future__ import annotations

import time

from pyclaw_app.control import (
    AccountRow,
    ConversationRow,
    PersonDetail,
    PersonRow,
    TrafficRow,
)
from tests.ui.fake_admin_plane import FakeAdminPlane
from views.logs import LogsView
from views.person_filter import ANYONE, describe_person

NOW = time.time()
ANN = PersonRow(7, "Ann", (AccountRow("telegram", "1001", "Ann", "code", NOW),
                           AccountRow("slack", "U0001", "Ann S", "code", NOW)))


def row(id_: int, channel: str, text: str, direction: str = "in") -> TrafficRow:
    return TrafficRow(id_, NOW + id_, direction, channel, "c", "Ann", text, "replied")


class PeoplePlane(FakeAdminPlane):
    """The admin fake plus the people calls, recording what the view asked."""

    def __init__(self) -> None:
        super().__init__()
        self.person_rows: list[PersonRow] = []
        self.asked: list[tuple[int, int]] = []
        self.detail_traffic = [row(4, "slack", "Echo: hi", "out"), row(3, "slack", "hi"),
                               row(2, "telegram", "Echo: hello", "out"),
                               row(1, "telegram", "hello")]

    async def people(self) -> list[PersonRow]:
        return self.person_rows

    async def person_detail(self, person_id: int, limit: int = 200) -> PersonDetail | None:
        self.asked.append((person_id, limit))
        if person_id != ANN.id:
            return None
        return PersonDetail(ANN, (
            ConversationRow("slack", "D0001", None, False, 1, NOW + 3),
            ConversationRow("telegram", "1001", None, False, 1, NOW + 1),
            ConversationRow("telegram", "-100", "42", True, 2, NOW)),
            tuple(self.detail_traffic))


async def test_the_picker_is_hidden_without_people_and_on_a_plane_without_them() -> None:
    plane = PeoplePlane()
    view = LogsView(plane)
    await view.load()
    assert not view.person.root.visible and view.person.selected is None
    view = LogsView(FakeAdminPlane())  # no people() at all: an older gateway
    await view.load()
    assert not view.person.root.visible
    assert not view.notice.visible  # the rest of the view loaded


async def test_picking_a_person_shows_their_traffic_across_channels() -> None:
    plane = PeoplePlane()
    plane.person_rows = [ANN]
    plane.rows = [row(99, "telegram", "someone else's message")]
    view = LogsView(plane)
    await view.load()
    assert view.person.root.visible
    assert [o.key for o in view.person.dropdown.options] == [ANYONE, "7"]
    assert [t.text for t in view.traffic] == ["someone else's message"]

    await view.person.select(ANN.id)
    assert view.tabs.selected_index == 1
    assert [t.text for t in view.traffic] == ["Echo: hi", "hi", "Echo: hello", "hello"]
    assert len(view.messages.controls) == 4
    assert view.person.summary.visible
    assert view.person.summary.value == (
        "Ann: telegram 1001, slack U0001 · 3 conversations: slack D0001 (1), telegram 1001 "
        "(1), telegram group -100 thread 42 (2)")

    await view.set_filter(channel="telegram")  # the channel filter narrows the person's
    assert [t.text for t in view.traffic] == ["Echo: hello", "hello"]
    plane.detail_traffic.insert(0, row(5, "telegram", "new one"))
    await view.load_messages()  # a refresh reads afresh
    assert view.traffic[0].text == "new one"

    await view.person.select(None)
    assert [t.text for t in view.traffic] == ["someone else's message"]
    assert not view.person.summary.visible


async def test_a_person_unlinked_meanwhile_drops_out_of_the_filter() -> None:
    plane = PeoplePlane()
    plane.person_rows = [ANN]
    view = LogsView(plane)
    await view.load()
    await view.person.select(ANN.id)
    plane.person_rows = []
    await view.load()
    assert view.person.selected is None and not view.person.root.visible
    assert view.person.dropdown.value == ANYONE


def test_describe_person_shortens_long_lists() -> None:
    many = tuple(ConversationRow("slack", f"D{i}", None, False, 1, NOW) for i in range(9))
    text = describe_person(PersonDetail(ANN, many, ()))
    assert text.endswith("and 3 more") and "9 conversations" in text
    one = describe_person(PersonDetail(ANN, many[:1], ()))
    assert "1 conversation:" in one
