"""Health at a glance in the views, against the fake plane: badges and banner in the frame,
the per-state controls of a channel card, and a channel's day as a strip."""

from __future__ import annotations

from types import SimpleNamespace

import flet as ft
import pytest

from pyclaw_app.control import ChannelStatus, StateSpan
from pyclaw_app.control.health import HOUR
from pyclaw_app.model import Event, EventKind
from tests.ui.fake_admin_plane import FakeAdminPlane
from views.channels import ChannelCard, ChannelsView, card_actions
from views.health import HealthState, health_summary, hour_text
from views.logs import LogsView
from views.shell import Shell

T0 = 1_700_000_000.0 // HOUR * HOUR + 1800  # half past an hour


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def texts(node: object) -> list[str]:
    """Visible Text values under a control."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, ft.Control) and not value.visible:
            return
        if isinstance(value, ft.Text) and value.value:
            out.append(value.value)
        for name in ("content", "controls"):
            child = getattr(value, name, None)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ft.Control):
                    walk(item)

    walk(node)
    return out


def controls(node: object) -> list[ft.Control]:
    found: list[ft.Control] = []

    def walk(value: object) -> None:
        if isinstance(value, ft.Control):
            found.append(value)
            for name in ("content", "controls"):
                child = getattr(value, name, None)
                for item in child if isinstance(child, list) else [child]:
                    walk(item)

    walk(node)
    return found


def button(root: ft.Control, tooltip: str) -> ft.Control:
    return next(c for c in controls(root) if getattr(c, "tooltip", None) == tooltip)


def badges(shell: Shell) -> dict[str, tuple[str | None, str | None]]:
    """Route -> (rail badge, bar badge) labels (the bar's entry for a route under "More" is
    "More")."""
    def label(entry: ft.NavigationRailDestination | ft.NavigationBarDestination) -> str | None:
        counts = set()
        for icon in (entry.icon, entry.selected_icon):  # selected or not, the same count
            assert isinstance(icon, ft.Icon)
            badge = icon.badge
            counts.add(badge.label.value if isinstance(badge, ft.Badge)
                       and isinstance(badge.label, ft.Text) else None)
        (count,) = counts
        return count

    return {d.route: (label(shell.rail.destinations[i]),
                      label(shell.bar.destinations[shell.bar_index(d.route) or 0]))
            for i, d in enumerate(shell.destinations)}


@pytest.fixture
def plane() -> FakeAdminPlane:
    fake = FakeAdminPlane()
    fake.clock = Clock(T0)
    fake.configure("telegram", "telegram", {"token": "1:secret"})
    fake.configure("local", "local", {})
    return fake


class FakePage:
    """What the banner's buttons use of a page."""

    def __init__(self) -> None:
        self.routes: list[str] = []
        self.updates = 0

    async def push_route(self, route: str) -> None:
        self.routes.append(route)

    def update(self) -> None:
        self.updates += 1


# -- the state alone -----------------------------------------------------------------------

def test_failures_are_counted_per_route_and_a_dismissed_alert_waits_for_a_new_cause() -> None:
    state = HealthState()
    state.reset([ChannelStatus("tg", "telegram", "Telegram", "send", "online"),
                 ChannelStatus("irc", "irc", "IRC", "tag", "stopped")], [])
    assert state.badges() == {"/channels": 0, "/settings": 0} and state.alerts() == []
    state.apply([Event(EventKind.CHANNEL_STATE, "tg", {"state": "offline",
                                                       "reason": "token refused"}),
                 Event(EventKind.LLM_CALL, "tg", {"provider": "fake", "error": "HTTP 500"})])
    assert state.badges() == {"/channels": 1, "/settings": 1}
    assert [(a.title, a.cause) for a in state.alerts()] == [
        ("Channel tg is offline", "token refused"), ("Provider fake is failing", "HTTP 500")]
    state.dismiss("channel:tg")
    assert [a.key for a in state.alerts()] == ["provider:fake"]
    assert state.badges()["/channels"] == 1  # dismissed from the banner, still counted
    state.apply([Event(EventKind.CHANNEL_STATE, "tg", {"state": "offline",
                                                       "reason": "network unreachable"})])
    assert next(a.cause for a in state.alerts()) == "network unreachable"
    state.apply([Event(EventKind.CHANNEL_STATE, "tg", {"state": "online", "reason": ""}),
                 Event(EventKind.LLM_CALL, "tg", {"provider": "fake", "error": None})])
    assert state.badges() == {"/channels": 0, "/settings": 0} and state.alerts() == []


# -- the frame -----------------------------------------------------------------------------

async def test_a_failed_channel_shows_in_the_frame_and_its_link_opens_its_logs(
        plane: FakeAdminPlane) -> None:
    plane.add_log("telegram", "error", "failed to start: Telegram rejected the bot token")
    plane.add_log("local", "info", "started")
    shell = Shell(plane)
    for panel in shell.live_panels:
        await panel.load()
    assert not shell.health.root.visible
    assert badges(shell)["/channels"] == (None, None)

    plane.set_state("telegram", "offline", "failed to start: Telegram rejected the bot token")
    for panel in shell.live_panels:
        panel.apply([Event(EventKind.CHANNEL_STATE, "telegram",
                           {"state": "offline", "reason": "failed to start: Telegram rejected "
                                                          "the bot token"})], T0)
    assert badges(shell)["/channels"] == ("1", "1")  # rail and phone bar alike
    assert shell.badge("/channels") == "1" and shell.badge("/chat") is None
    assert badges(shell)["/settings"] == (None, None)
    shown = texts(shell.health.root)
    assert "Channel telegram is offline" in shown
    assert "failed to start: Telegram rejected the bot token" in shown
    card = shell.panels["/channels"].cards["telegram"]  # type: ignore[attr-defined]
    assert card.offered == ("start", "disable")

    page = FakePage()
    link = button(shell.health.root, "Open the logs of telegram")
    await link.on_click(SimpleNamespace(page=page))  # type: ignore[attr-defined]
    logs = shell.panels["/logs"]
    assert isinstance(logs, LogsView)
    assert page.routes == ["/logs"] and shell.route == "/logs" and logs.root.visible
    assert logs.filter.channel == "telegram"
    assert [r.message for r in logs.rows] == ["failed to start: Telegram rejected the bot token"]

    await plane.start_channel("telegram")  # recovers
    for panel in shell.live_panels:
        panel.apply([Event(EventKind.CHANNEL_STATE, "telegram",
                           {"state": "online", "reason": "polling"})], T0 + 1)
    assert badges(shell)["/channels"] == (None, None)
    assert not shell.health.root.visible
    assert card.offered == ("stop", "restart", "disable")


async def test_a_failing_provider_is_counted_on_settings_and_links_to_its_log_lines(
        plane: FakeAdminPlane) -> None:
    plane.llm_call("fake")
    plane.add_log("local", "warning", "message 3: fake/fake-model failed (HTTP 500); retry")
    shell = Shell(plane)
    for panel in shell.live_panels:
        await panel.load()
    assert badges(shell)["/settings"] == (None, None)
    event = plane.llm_call("fake", "HTTP 500 Internal Server Error")
    shell.health.apply([event], T0)
    assert badges(shell)["/settings"] == ("1", "1")
    assert "Provider fake is failing" in texts(shell.health.root)
    route = await shell.health.open_logs(shell.health.state.alerts()[0])
    logs = shell.panels["/logs"]
    assert isinstance(logs, LogsView)
    assert route == "/logs" and logs.filter.search == "fake" and logs.filter.channel is None

    dismiss = button(shell.health.root, "Dismiss the fake alert")
    dismiss.on_click(SimpleNamespace(page=FakePage()))  # type: ignore[attr-defined]
    assert not shell.health.root.visible and badges(shell)["/settings"] == ("1", "1")


async def test_a_provider_failing_at_load_is_in_the_banner_at_once(
        plane: FakeAdminPlane) -> None:
    plane.llm_call("fake", "401 invalid api key")
    shell = Shell(plane)
    await shell.health.load()
    assert shell.health.root.visible and "401 invalid api key" in texts(shell.health.root)


async def test_many_failures_show_three_and_count_the_rest(plane: FakeAdminPlane) -> None:
    for n in range(5):
        plane.configure(f"tg{n}", "telegram", {"token": "1:x"}, state="offline")
    shell = Shell(plane)
    await shell.health.load()
    assert len(shell.health.list.controls) == 3
    assert "and 2 more: see Channels and Settings" in texts(shell.health.root)
    assert badges(shell)["/channels"] == ("5", "5")


# -- one control model per state -----------------------------------------------------------

@pytest.mark.parametrize("state, enabled, offered", [
    ("online", True, ("stop", "restart", "disable")),
    ("connecting", True, ("stop", "restart", "disable")),
    ("degraded", True, ("stop", "restart", "disable")),
    ("stopped", True, ("start", "disable")),
    ("offline", True, ("start", "disable")),
    ("disabled", False, ("enable",)),
    ("stopped", False, ("enable",)),
])
def test_only_the_actions_of_the_state_are_offered(state: str, enabled: bool,
                                                   offered: tuple[str, ...]) -> None:
    status = ChannelStatus("tg", "telegram", "Telegram", "send", state, enabled=enabled)
    assert card_actions(status) == offered
    card = ChannelCard(status, ChannelsView(FakeAdminPlane()))
    assert card.offered == offered
    shown = [c.tooltip for c in card.actions.controls if c.visible]
    assert shown == [f"{a.title()} tg" for a in offered] + ["Edit tg", "Delete tg"]
    assert len(set(shown)) == len(shown)  # every action is named apart
    assert not any(isinstance(c, ft.Switch) for c in controls(card.root))


async def test_enable_and_disable_go_through_the_config(plane: FakeAdminPlane) -> None:
    view = ChannelsView(plane)
    await view.load()
    card = view.cards["telegram"]
    await button(card.root, "Disable telegram").on_click(  # type: ignore[attr-defined]
        SimpleNamespace(page=FakePage()))
    assert ("enabled", ("telegram", False)) in plane.calls
    assert card.offered == ("enable",) and card.state.value == "disabled"
    await button(card.root, "Enable telegram").on_click(  # type: ignore[attr-defined]
        SimpleNamespace(page=FakePage()))
    assert ("enabled", ("telegram", True)) in plane.calls
    assert card.offered == ("stop", "restart", "disable")


# -- a channel's day -----------------------------------------------------------------------

def _hour_labels(card: ChannelCard) -> list[str]:
    return [c.tooltip for c in controls(card.strip)
            if isinstance(c, ft.Container) and isinstance(c.tooltip, str)]


async def test_the_card_strip_shows_an_error_hour_and_follows_events(
        plane: FakeAdminPlane) -> None:
    error_hour = T0 // HOUR * HOUR - 3 * HOUR
    plane.seed_health("telegram", [
        StateSpan(T0 - 30 * HOUR, error_hour + 600, "online"),
        StateSpan(error_hour + 600, error_hour + 1800, "offline", "token refused"),
        StateSpan(error_hour + 1800, T0, "online", "polling")],
        {error_hour: (2, 1)}, changes=2)
    view = ChannelsView(plane)
    await view.load()
    card = view.cards["telegram"]
    labels = _hour_labels(card)
    assert len(labels) == 24
    flagged = [label for label in labels if "2 errors" in label]
    assert len(flagged) == 1 and "offline 20 min" in flagged[0] and "1 warning" in flagged[0]
    assert card.summary.value == "Last 24 h: 2 errors · 1 warning · 2 state changes"

    # live: an error line now, then the next hour starts
    view.apply([plane.log_line("telegram", "error", "poll failed", ts=T0 + 5)], T0 + 5)
    assert "1 error," in _hour_labels(card)[-1]
    assert card.summary.value == "Last 24 h: 3 errors · 1 warning · 2 state changes"
    view.apply([], T0 + HOUR)
    labels = _hour_labels(card)
    assert "0 errors" in labels[-1] and "1 error," in labels[-2]

    view.apply([plane.set_state("telegram", "degraded", "429", ts=T0 + HOUR + 1)],
               T0 + HOUR + 1)
    assert card.summary.value.endswith("3 state changes")
    assert "degraded" in _hour_labels(card)[-1]


def test_hour_text_names_the_hour_states_and_counts() -> None:
    from pyclaw_app.control import HealthHour

    text = hour_text(HealthHour(T0, 1, 0, {"online": 2400, "offline": 1200}))
    assert text.endswith(": online 40 min, offline 20 min; 1 error, 0 warnings")
    assert "no state recorded" in hour_text(HealthHour(T0))


def test_summary_counts_the_window(plane: FakeAdminPlane) -> None:
    health = plane.seed_health("local", [], {T0 // HOUR * HOUR: (0, 4)})
    assert health_summary(health) == "Last 24 h: 0 errors · 4 warnings · 0 state changes"
