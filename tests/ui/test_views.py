"""Control-level tests: views built against FakeControlPlane, asserted on their control trees.

No page and no browser: Flet 1.0 controls are plain dataclasses until mounted,
and the views only change them (the live loop does the one page update).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import flet as ft
import pytest

from pyclaw_app.control import ChannelStatus, TrafficRow
from pyclaw_app.errors import ConnectorError
from pyclaw_app.model import Event, EventKind
from tests.ui.fake_plane import FakeControlPlane
from views.chat import ChatView, chat_bubble
from views.dashboard import CHART_HISTORY, FEED_BATCH_ROWS, DashboardView
from views.live import LiveSession
from views.settings import AppSettings, SettingsError, load_settings
from views.shell import DESTINATIONS, Shell
from views.state import (
    ChatLine,
    ChatState,
    LiveBatcher,
    MessageRate,
    TrafficWindow,
    feed_row_from_event,
)
from views.traffic import FEED_COLUMNS


def texts(control: object) -> list[str]:
    """Every Text value (and Markdown source) under a control, depth first, visible ones only."""
    found: list[str] = []

    def walk(c: object) -> None:
        if isinstance(c, ft.Control) and not c.visible:
            return
        if isinstance(c, ft.Text):
            found.append(c.value + "".join(span.text or "" for span in c.spans or []))
        elif isinstance(c, ft.Markdown):
            found.append(c.value)
        for name in ("content", "controls", "leading"):
            child = getattr(c, name, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ft.Control):
                    walk(item)

    walk(control)
    return found


def line(control: object) -> str:
    """All the text under a control as one string (a feed row is one Text of spans)."""
    return " ".join(texts(control))


CHANNELS = [
    ChannelStatus("telegram", "telegram", "Telegram", "send", "online", reason="polling"),
    ChannelStatus("work-slack", "slack", "Slack", "workspaces", "degraded",
                  last_error="429 Too Many Requests"),
    ChannelStatus("matrix", "matrix", "Matrix", "no_such_icon", "stopped"),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plane() -> FakeControlPlane:
    return FakeControlPlane(CHANNELS)


# -- dashboard -----------------------------------------------------------------------------


async def test_dashboard_has_a_tile_per_channel_with_state(plane: FakeControlPlane) -> None:
    view = DashboardView(plane)
    await view.load()
    assert list(view.tiles) == ["telegram", "work-slack", "matrix"]
    tile = view.tiles["work-slack"]
    assert tile.state.value == "degraded"
    assert tile.state.color == ft.Colors.ORANGE_700
    assert "429 Too Many Requests" in texts(tile.root)
    assert view.tiles["telegram"].state.color == ft.Colors.GREEN_600
    assert "no messages yet" in texts(view.tiles["matrix"].root)
    assert view.tiles["matrix"].icon.content.src == "icons/channels/matrix.svg"


async def test_channel_state_event_recolours_the_tile_and_ticks_the_age(
        plane: FakeControlPlane) -> None:
    view = DashboardView(plane)
    await view.load()
    now = time.time()
    view.apply([Event(EventKind.CHANNEL_STATE, "telegram",
                      {"state": "offline", "reason": "network unreachable"}, ts=now)], now)
    tile = view.tiles["telegram"]
    assert (tile.state.value, tile.state.color) == ("offline", ft.Colors.RED_600)
    assert tile.reason.value == "network unreachable"

    inbound = plane.receive("telegram", "1", "alice", "hi", ts=now)
    view.apply([inbound], now + 5)
    assert tile.last.value == "last message 5 s ago"
    view.apply([], now + 12)  # a bare tick
    assert tile.last.value == "last message 12 s ago"


async def test_feed_shows_snapshot_then_live_rows_newest_first(plane: FakeControlPlane) -> None:
    first = plane.receive("telegram", "42", "alice", "from before the app opened")
    view = DashboardView(plane)
    await view.load()
    assert len(view.feed.controls) == 1

    inbound = plane.receive("telegram", "42", "alice", "hello there\nsecond line")
    reply = plane.answer(inbound, "hi alice", latency_ms=321)
    failed = plane.fail(plane.receive("work-slack", "C1", "bob", "status?"), "provider down")
    view.apply([first, inbound, reply], time.time())  # `first` is already shown: not doubled
    view.apply([failed], time.time())

    assert len(view.feed.controls) == 4
    newest = line(view.feed.controls[0])
    assert "provider down" in newest and "work-slack" in newest
    assert "failed" in newest and "received" in line(view.feed.controls[2])
    # aligned columns under the header: a Row of one plain Text per column
    assert texts(view.feed_header) == [label for label, _ in FEED_COLUMNS]
    for row in view.feed.controls:
        assert isinstance(row, ft.Row) and all(isinstance(c, ft.Text) for c in row.controls)
        assert [c.width for c in row.controls] == [w for _, w in FEED_COLUMNS]
    reply_row = texts(view.feed.controls[1])
    assert reply_row[1:] == ["telegram", "sent", "to 42", "hi alice", "321 ms"]
    assert texts(view.feed.controls[2])[1:5] == ["telegram", "received", "alice",
                                                 "hello there second line"]  # one line
    assert "from before the app opened" in line(view.feed.controls[3])
    message = FEED_COLUMNS.index(("Message", None))
    assert view.feed.controls[0].controls[message].color == ft.Colors.ERROR  # failed: red
    assert view.feed.controls[2].controls[message].color is None


async def test_feed_on_a_phone_shows_two_lines_with_the_whole_message(
        plane: FakeControlPlane) -> None:
    view = DashboardView(plane)
    await view.load()
    inbound = plane.receive("telegram", "42", "alice", "a message long enough to need a line")
    view.apply([inbound, plane.answer(inbound, "hi alice", latency_ms=321)], time.time())
    view.fit_width(390)
    assert view.narrow and not view.feed_header.visible
    reply, received = view.feed.controls
    assert isinstance(received, ft.Column) and len(received.controls) == 2
    meta, message = received.controls
    assert message.value == "a message long enough to need a line" and message.max_lines == 2
    assert "received" in meta.value and "telegram" in meta.value and "alice" in meta.value
    assert "321 ms" in texts(reply)[0] and texts(reply)[1] == "hi alice"
    view.apply([plane.receive("telegram", "42", "alice", "new on the phone")], time.time())
    assert isinstance(view.feed.controls[0], ft.Column)  # new rows follow the layout
    view.fit_width(1280)
    assert not view.narrow and view.feed_header.visible
    assert all(isinstance(row, ft.Row) for row in view.feed.controls)
    assert len(view.feed.controls) == 3


async def test_counters_start_from_plane_and_follow_events(plane: FakeControlPlane) -> None:
    inbound = plane.receive("telegram", "1", "a", "x")
    plane.answer(inbound, "y")
    view = DashboardView(plane)
    await view.load()
    assert [c.value.value for c in view.counters.values()] == ["1", "1", "0"]
    more = plane.receive("telegram", "1", "a", "again")
    view.apply([more, plane.fail(more, "boom"), more], time.time())  # a repeat counts once
    assert [c.value.value for c in view.counters.values()] == ["2", "1", "1"]


async def test_feed_window_stays_bounded_after_1000_events(plane: FakeControlPlane) -> None:
    view = DashboardView(plane, window=300)
    await view.load()
    events = [plane.receive("telegram", "1", "a", f"message {i}") for i in range(1000)]
    for start in range(0, 1000, 17):  # batches under the cap: every line is listed
        view.apply(events[start:start + 17], time.time())
    assert len(view.window) == 300
    assert len(view.feed.controls) == 300
    assert "message 999" in line(view.feed.controls[0])
    assert "message 700" in line(view.feed.controls[-1])


async def test_feed_lists_at_most_a_batch_cap_of_new_lines(plane: FakeControlPlane) -> None:
    view = DashboardView(plane)
    await view.load()
    events = [plane.receive("telegram", "1", "a", f"message {i}")
              for i in range(FEED_BATCH_ROWS + 70)]
    view.apply(events, time.time())
    assert len(view.feed.controls) == FEED_BATCH_ROWS
    assert f"message {FEED_BATCH_ROWS + 69}" in line(view.feed.controls[0])
    assert view.feed_skipped.visible and "70 more lines" in view.feed_skipped.value
    assert view.counters["inbound"].value.value == str(len(events))  # all of them counted
    view.apply([plane.receive("telegram", "1", "a", "calm again")], time.time())
    assert not view.feed_skipped.visible
    assert len(view.feed.controls) == FEED_BATCH_ROWS + 1


def test_traffic_window_reports_added_and_evicted() -> None:
    window = TrafficWindow(3)
    rows = [feed_row_from_event(Event(EventKind.MESSAGE_RECEIVED, "t",
                                      {"id": i, "chat": "c", "sender": "s", "text": str(i)}))
            for i in range(5)]
    assert window.push(rows[:2]) == (rows[:2], 0)
    assert window.push(rows[2:]) == (rows[2:], 2)
    assert [r.text for r in window.rows] == ["2", "3", "4"]
    assert window.push(rows[4:]) == ([], 0)  # already shown


# -- messages per minute ---------------------------------------------------------------------


class WallClock:
    """A settable wall clock starting at a whole minute (12:00 UTC on some day)."""

    def __init__(self) -> None:
        self.now = 1_700_000_400.0  # divisible by 60

    def __call__(self) -> float:
        return self.now


def test_rate_counts_per_channel_and_minute() -> None:
    clock = WallClock()
    rate = MessageRate(60, clock=clock)
    t = clock.now
    for ts in (t - 60, t - 1, t + 1, t + 59):
        rate.add("telegram", ts)
    rate.add("slack", t + 30)
    clock.now += 30
    series = rate.series()
    assert sorted(series) == ["slack", "telegram"]
    assert len(series["telegram"]) == 60
    assert series["telegram"][-1] == 2 and series["telegram"][-2] == 2
    assert sum(series["telegram"]) == 4
    assert series["slack"][-1] == 1 and sum(series["slack"]) == 1


def test_rate_window_drops_minutes_older_than_an_hour() -> None:
    clock = WallClock()
    rate = MessageRate(60, clock=clock)
    assert not rate.add("telegram", clock.now - 3600)  # 60 minutes ago: just outside
    assert rate.add("telegram", clock.now - 3540)  # 59 minutes ago: the oldest bucket
    assert rate.add("slack", clock.now + 120)  # sender clock ahead: counted as now
    assert rate.series()["telegram"][0] == 1
    assert rate.series()["slack"][-1] == 1
    clock.now += 60  # the telegram minute leaves the window, and the channel with it
    assert list(rate.series()) == ["slack"]
    assert rate.series()["slack"][-2] == 1
    clock.now += 3600
    assert rate.series() == {}


def test_rate_from_events_and_history() -> None:
    clock = WallClock()
    rate = MessageRate(60, clock=clock)
    rows = [TrafficRow(id=i, ts=clock.now - 600 * i, direction="in" if i % 2 else "out",
                       channel="telegram", chat="1", sender="a", text="x", status="sent")
            for i in range(1, 9)]  # 10, 20, ... 80 minutes ago: five inside the hour
    rate.reset(rows)
    assert sum(rate.series()["telegram"]) == 5 and rate.partial_before is None
    rate.reset(rows[:3], complete=False)  # newest three read, older ones exist
    assert rate.partial_before == rows[2].ts
    events = [Event(EventKind.MESSAGE_RECEIVED, "local", {"id": 1, "chat": "app"}, ts=clock.now),
              Event(EventKind.REPLY_SENT, "local", {"id": 2, "chat": "app"}, ts=clock.now),
              Event(EventKind.REPLY_DELTA, "local", {"id": 1, "chat": "app", "delta": "x"}),
              Event(EventKind.MESSAGE_FAILED, "local", {"id": 1, "chat": "app"}),
              Event(EventKind.LOG, "local", {"line": "x"})]
    assert rate.apply(events)
    assert rate.series()["local"][-1] == 2
    assert not rate.apply(events[2:])


def chart_series(view: DashboardView) -> dict[str, list[float]]:
    return {line.data: [p.y for p in line.points] for line in view.rate_chart.chart.data_series}


async def test_dashboard_chart_has_a_line_per_channel_from_history_and_events(
        plane: FakeControlPlane) -> None:
    clock = WallClock()
    plane.receive("telegram", "1", "alice", "old", ts=clock.now - 7200)  # outside the hour
    for minutes_ago in (3, 3, 1):
        plane.receive("telegram", "1", "alice", "hi", ts=clock.now - 60 * minutes_ago)
    view = DashboardView(plane, clock=clock)
    await view.load()
    series = chart_series(view)
    assert list(series) == ["telegram"] and len(series["telegram"]) == 60
    assert series["telegram"][-4] == 2 and series["telegram"][-2] == 1
    assert "3 in the last hour" in texts(view.rate_chart.legend)
    assert view.rate_chart.chart.max_y == 5
    first_line = view.rate_chart.chart.data_series[0]

    inbound = plane.receive("work-slack", "C1", "bob", "status?", ts=clock.now + 5)
    reply = plane.answer(inbound, "all green")
    events = [inbound, reply] + [plane.receive("telegram", "1", "alice", f"m{i}", ts=clock.now)
                                 for i in range(9)]
    view.apply([*events, inbound], clock.now)  # the repeated event is counted once
    series = chart_series(view)
    assert list(series) == ["telegram", "work-slack"]
    assert series["work-slack"][-1] == 2 and series["telegram"][-1] == 9
    assert view.rate_chart.chart.data_series[0] is first_line  # edited in place, not rebuilt
    assert view.rate_chart.chart.max_y == 10
    colors = {line.data: line.color for line in view.rate_chart.chart.data_series}
    assert colors["telegram"] != colors["work-slack"]

    clock.now += 60  # the minute turns: a bare tick shifts the lines
    view.apply([], clock.now)
    assert chart_series(view)["telegram"][-2] == 9 and chart_series(view)["telegram"][-1] == 0


async def test_dashboard_chart_empty_and_partial_history() -> None:
    clock = WallClock()
    view = DashboardView(FakeControlPlane(CHANNELS), clock=clock)
    await view.load()
    assert view.rate_chart.chart.data_series == []
    assert "No messages in the last hour." in texts(view.rate_chart.root)

    busy = FakeControlPlane(CHANNELS)
    for i in range(CHART_HISTORY + 5):
        busy.receive("telegram", "1", "a", str(i), ts=clock.now - 1800 + i)
    view = DashboardView(busy, clock=clock)
    await view.load()
    assert len(view.feed.controls) == 200  # the feed still shows only the newest rows
    assert any("only the newest" in t for t in texts(view.rate_chart.root))


# -- live batching -------------------------------------------------------------------------


def test_batcher_releases_at_most_once_per_interval() -> None:
    clock = FakeClock()
    batcher = LiveBatcher(min_interval=0.1, tick_interval=1.0, clock=clock)
    released = []
    for step in range(100):  # 1 s of events every 10 ms
        batcher.add([Event(EventKind.LOG, "x", {"n": step})])
        batch = batcher.take()
        if batch is not None:
            released.append((clock.now, len(batch)))
        clock.now += 0.01
    times = [t for t, _ in released]
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(times))
    assert len(released) <= 11
    assert sum(n for _, n in released) + batcher.pending == 100


def test_batcher_ticks_each_second_without_events() -> None:
    clock = FakeClock()
    batcher = LiveBatcher(clock=clock)
    assert batcher.take() is None
    assert batcher.next_wait() == pytest.approx(1.0)
    clock.now += 1.0
    assert batcher.take() == []
    assert batcher.take() is None


async def test_live_session_applies_batches_and_stops_cleanly(plane: FakeControlPlane) -> None:
    view = DashboardView(plane)
    refreshes: list[int] = []
    live = LiveSession(plane, [view], lambda: refreshes.append(len(view.feed.controls)),
                       min_interval=0.01)
    await live.start()
    assert len(plane.subscriptions) == 1
    for i in range(FEED_BATCH_ROWS):
        plane.receive("telegram", "1", "a", f"m{i}")
    for _ in range(200):
        if refreshes and refreshes[-1] == FEED_BATCH_ROWS:
            break
        await asyncio.sleep(0.01)
    assert refreshes[-1] == FEED_BATCH_ROWS
    assert len(refreshes) < FEED_BATCH_ROWS  # batched, not one update per event
    await live.stop()
    await live.stop()  # twice is fine
    assert plane.subscriptions == []
    assert not live.running


async def test_subscription_is_bounded_and_counts_drops(plane: FakeControlPlane) -> None:
    sub = plane.subscribe(maxsize=10)
    for i in range(25):
        plane.receive("telegram", "1", "a", f"m{i}")
    batch = await sub.get_batch()
    assert len(batch) == 10 and sub.dropped == 15
    assert batch[0].data["text"] == "m15"
    sub.close()


# -- chat ----------------------------------------------------------------------------------


def bubbles(view: ChatView) -> list[tuple[str, str]]:
    return [(row.data, texts(row)[0]) for row in view.messages.controls]


def bubble_of(row: ft.Row) -> ft.Container:
    """The coloured bubble of a chat row (above its time and copy button)."""
    column = next(c for c in row.controls if isinstance(c, ft.Column))
    return column.controls[0].content  # inside its own semantics node


async def test_chat_send_calls_the_plane_and_shows_the_reply(plane: FakeControlPlane) -> None:
    view = ChatView(plane)
    await view.load()
    sub = plane.subscribe()
    await view.send("  hello **world**  ")
    assert plane.sent == [("app", "hello **world**")]
    assert view.progress.visible  # the reply has not been applied yet
    view.apply(await sub.get_batch(), time.time())
    assert bubbles(view) == [("user", "hello **world**"), ("assistant", "echo: hello **world**")]
    assert isinstance(bubble_of(view.messages.controls[1]).content, ft.Markdown)
    assert not view.progress.visible
    await view.send("   ")
    assert len(plane.sent) == 1
    plain = chat_bubble(ChatLine("assistant", "just text"))
    assert isinstance(bubble_of(plain).content, ft.Text)
    assert len(plain.controls) == 1  # sized to its text, not 4/5 wide


async def test_chat_without_a_local_channel_says_so_instead_of_failing_the_panel(
        plane: FakeControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_local_channel(chat: str = "app", limit: int = 100) -> list[TrafficRow]:
        raise ConnectorError("the local chat channel is not running")

    monkeypatch.setattr(plane, "chat_history", no_local_channel)
    view = ChatView(plane)
    await view.load()
    assert view.empty.visible and "local chat channel is not running" in view.empty.value
    assert view.field.disabled and view.send_button.disabled and view.reset_button.disabled


async def test_chat_failure_is_shown_in_red() -> None:
    plane = FakeControlPlane(fail_with="provider fake: 500")
    view = ChatView(plane)
    await view.load()
    sub = plane.subscribe()
    await view.send("hi")
    view.apply(await sub.get_batch(), time.time())
    assert bubbles(view)[-1] == ("error", "provider fake: 500")
    assert bubble_of(view.messages.controls[-1]).bgcolor == ft.Colors.ERROR_CONTAINER


async def test_chat_deltas_grow_one_bubble_that_the_reply_replaces() -> None:
    plane = FakeControlPlane(reply=None)
    view = ChatView(plane)
    await view.load()
    sub = plane.subscribe()
    await view.send("tell me a story")
    inbound = (await sub.get_batch())[0]
    view.apply([inbound, plane.delta(inbound, "Once upon"), plane.delta(inbound, " a time")],
               time.time())
    assert bubbles(view) == [("user", "tell me a story"), ("assistant", "Once upon a time")]
    assert view.state.lines[-1].streaming and view.progress.visible
    view.apply([plane.delta(inbound, ", **there** was")], time.time())
    assert bubbles(view)[-1] == ("assistant", "Once upon a time, **there** was")
    assert isinstance(bubble_of(view.messages.controls[-1]).content, ft.Markdown)

    view.apply([plane.restart(inbound)], time.time())  # failover: start over
    assert bubbles(view)[-1] == ("assistant", "…")
    view.apply([plane.delta(inbound, "A new")], time.time())
    assert bubbles(view)[-1] == ("assistant", "A new")

    view.apply([plane.answer(inbound, "A new story, in full.")], time.time())
    assert bubbles(view) == [("user", "tell me a story"), ("assistant", "A new story, in full.")]
    assert not view.state.lines[-1].streaming and not view.progress.visible


async def test_chat_failure_replaces_the_partial_bubble() -> None:
    plane = FakeControlPlane(reply=None)
    view = ChatView(plane)
    await view.load()
    sub = plane.subscribe()
    await view.send("hi")
    inbound = (await sub.get_batch())[0]
    view.apply([inbound, plane.delta(inbound, "Hel")], time.time())
    view.apply([plane.fail(inbound, "provider fake: 500")], time.time())
    assert bubbles(view) == [("user", "hi"), ("error", "provider fake: 500")]
    assert bubble_of(view.messages.controls[-1]).bgcolor == ft.Colors.ERROR_CONTAINER
    assert not view.progress.visible


def test_chat_state_keeps_streams_of_two_replies_apart() -> None:
    state = ChatState()

    def event(kind: EventKind, **data: object) -> Event:
        return Event(kind, "local", {"chat": "app", **data})

    touched = state.apply([event(EventKind.REPLY_DELTA, id=1, delta="one"),
                           event(EventKind.REPLY_DELTA, id=2, delta="two"),
                           event(EventKind.REPLY_DELTA, id=1, delta="!"),
                           Event(EventKind.REPLY_DELTA, "telegram",
                                 {"chat": "app", "id": 1, "delta": "other channel"})])
    assert touched == [0, 1]
    assert [line.text for line in state.lines] == ["one!", "two"]
    assert state.apply([event(EventKind.REPLY_SENT, id=9, reply_to_id=2, text="TWO")]) == [1]
    assert state.apply([event(EventKind.REPLY_SENT, id=8, reply_to_id=1, text="ONE")]) == [0]
    assert [(line.text, line.reply_to) for line in state.lines] == [("ONE", 1), ("TWO", 2)]
    assert state.apply([event(EventKind.REPLY_SENT, id=7, reply_to_id=5, text="new")]) == [2]


async def test_chat_keeps_a_window_of_the_newest_bubbles() -> None:
    plane = FakeControlPlane(reply=None)
    view = ChatView(plane, window=5)
    await view.load()
    sub = plane.subscribe()
    await view.send("first")
    inbound = (await sub.get_batch())[0]
    view.apply([inbound, plane.delta(inbound, "streaming")], time.time())
    others = [plane.receive("local", "app", "terminal", f"line {i}") for i in range(12)]
    view.apply(others[:3], time.time())
    assert len(view.messages.controls) == 5  # at the window: nothing cut yet
    # a batch larger than the window, with a delta for a bubble it cuts
    view.apply([*others[3:10], plane.delta(inbound, " on")], time.time())
    assert bubbles(view) == [(line.role, line.text) for line in view.state.lines]
    view.apply(others[10:], time.time())
    await view.send("last")
    expected = [("user", f"line {i}") for i in range(8, 12)] + [("user", "last")]
    assert bubbles(view) == expected
    assert [(line.role, line.text) for line in view.state.lines] == expected
    assert view.state.dropped == 10


async def test_chat_loads_history_and_resets(plane: FakeControlPlane) -> None:
    await plane.chat_send("earlier")
    plane.receive("telegram", "1", "a", "not for the chat view")
    view = ChatView(plane)
    await view.load()
    assert bubbles(view) == [("user", "earlier"), ("assistant", "echo: earlier")]
    await view.reset()
    assert plane.resets == ["app"] and view.messages.controls == []
    assert view.empty.visible


# -- shell ---------------------------------------------------------------------------------


def test_shell_routes_and_responsive_navigation(plane: FakeControlPlane) -> None:
    shell = Shell(plane)
    labels = [d.label for d in DESTINATIONS]
    assert labels[0] == "Dashboard" and "Chat" in labels
    assert shell.show("/chat") == "/chat"
    assert shell.rail.selected_index == shell.bar.selected_index == labels.index("Chat")
    assert shell.current is shell.panels["/chat"] and shell.panels["/chat"].root.visible
    assert [p.root.visible for p in shell.panels.values()].count(True) == 1
    assert shell.show("/nowhere") == "/dashboard"

    body, bar = shell.layout(1200)
    assert bar is None and shell.rail in body.controls[1].controls
    body, bar = shell.layout(400)
    assert bar is shell.bar and shell.content in body.controls
    assert [d.label for d in bar.destinations] == [*labels[:4], "More"]  # test_phone_bar.py


def test_config_errors_banner() -> None:
    error = "config.yaml:7 providers.0.base_url: invalid URL"
    shell = Shell(FakeControlPlane(config_errors=[error]))
    assert shell.banner.visible and error in texts(shell.banner)
    assert not Shell(FakeControlPlane()).banner.visible


# -- settings ------------------------------------------------------------------------------


def test_settings_from_repo_file_and_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.mode in ("local", "monitor") and settings.web_port > 0
    assert load_settings(tmp_path / "missing.toml") == AppSettings()


@pytest.mark.parametrize("text, key", [
    ("[window]\nwidth = -1\n", "window.width"),
    ("[theme]\nmode = 'pink'\n", "theme.mode"),
    ("[app]\nmode = 'remote'\n", "app.mode"),
    ("[web\n", "flet.toml"),
])
def test_settings_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "flet.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        load_settings(path)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield
