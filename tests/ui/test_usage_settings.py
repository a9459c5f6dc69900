"""Usage and Settings views against a fake plane: sums, charts, table, filters, forms, theme.

The settings schemas are the real ones (pydantic's JSON Schema of the config
models, taken here in the test only: views never import pydantic).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import flet as ft
import flet_charts as fch
import pytest

from pyclaw_app.config import AgentConfig, ProviderConfig
from pyclaw_app.control import FieldError, ProbeOutcome, SettingsForm, UsageRow
from pyclaw_app.model import Event, EventKind
from tests.ui.fake_plane import FakeControlPlane
from views.forms import SAVED_SECRET_HINT
from views.settings_view import SettingsView
from views.usage import (
    UsageView,
    day_span,
    latency_by_model,
    nice_scale,
    per_day,
    range_since,
    totals,
)

NOW = datetime(2026, 3, 10, 15, 30).timestamp()
TODAY = "2026-03-10"
YESTERDAY = "2026-03-09"


def row(day: str = TODAY, provider: str = "openai", model: str = "gpt-4o",
        channel: str = "telegram", calls: int = 10, errors: int = 0, tin: int = 1000,
        tout: int = 200, cost: float = 0.01, p50: float = 300.0, p95: float = 900.0
        ) -> UsageRow:
    return UsageRow(day, provider, model, channel, calls, errors, tin, tout, cost, p50, p95)


class UsagePlane(FakeControlPlane):
    """Usage rows filtered like the real plane; every query is recorded."""

    def __init__(self, rows: list[UsageRow]) -> None:
        super().__init__()
        self.usage_rows = rows
        self.queries: list[tuple[float | None, str | None]] = []

    async def usage(self, *, since: float | None = None, until: float | None = None,
                    channel: str | None = None) -> list[UsageRow]:
        self.queries.append((since, channel))
        since_day = datetime.fromtimestamp(since).date().isoformat() if since else ""
        return [r for r in self.usage_rows
                if r.day >= since_day and (channel is None or r.channel == channel)]


# -- usage: sums --------------------------------------------------------------------------


def test_totals_and_groupings() -> None:
    rows = [row(), row(provider="anthropic", model="claude", calls=4, errors=1, cost=0.5),
            row(day=YESTERDAY, tin=10, tout=5, cost=0.25)]
    t = totals(rows)
    assert (t.calls, t.errors, t.input_tokens, t.output_tokens) == (24, 1, 2010, 405)
    assert t.cost == pytest.approx(0.76)
    by_provider = per_day(rows, "provider")
    assert by_provider[TODAY]["anthropic"].cost == pytest.approx(0.5)
    assert by_provider[YESTERDAY]["openai"].input_tokens == 10


def test_latency_is_weighted_by_successful_calls() -> None:
    rows = [row(calls=3, p50=100, p95=200), row(channel="local", calls=1, p50=500, p95=1000),
            row(model="only-errors", calls=2, errors=2)]
    latency = latency_by_model(rows)
    assert latency["openai/gpt-4o"] == pytest.approx((200.0, 400.0))
    assert "openai/only-errors" not in latency  # no successful call: no latency to draw


def test_axis_scale_uses_round_steps() -> None:
    assert nice_scale(10_600) == (15_000, 5000)
    assert nice_scale(0.039) == (0.04, 0.01)
    assert nice_scale(1580) == (2000, 500)
    assert nice_scale(0) == (1.0, 0.25)


def test_ranges_start_at_local_midnight_and_span_every_day() -> None:
    assert range_since("today", NOW) == datetime(2026, 3, 10).timestamp()
    assert range_since("7d", NOW) == datetime(2026, 3, 4).timestamp()
    days = day_span("30d", NOW)
    assert len(days) == 30 and days[-1] == TODAY
    assert days[0] == (datetime(2026, 3, 10) - timedelta(days=29)).date().isoformat()


# -- usage: the view ---------------------------------------------------------------------------


async def test_usage_view_totals_charts_and_table() -> None:
    plane = UsagePlane([row(), row(day=YESTERDAY, provider="anthropic", model="claude",
                                   channel="local", calls=2, errors=1, cost=1.5)])
    view = UsageView(plane, wall_clock=lambda: NOW)
    await view.load()
    assert plane.queries == [(range_since("7d", NOW), None)]
    assert view.cards["calls"].value.value == "12"
    assert view.cards["cost"].value.value == "$1.51"
    assert view.cards["errors"].value.value == "1"
    assert view.cards["input_tokens"].value.value == "2,000"
    charts = [c.content.controls[-1] for c in view.charts.controls]
    assert all(isinstance(c, fch.BarChart) for c in charts)
    tokens_chart, cost_chart, latency_chart = charts
    assert len(tokens_chart.groups) == 7  # one slot per day of the range, quiet days too
    today_rod = tokens_chart.groups[-1].rods[0]
    assert today_rod.to_y == 1200 and [s.to_y for s in today_rod.stack_items] == [1000, 1200]
    assert cost_chart.groups[-2].rods[0].to_y == pytest.approx(1.5)
    assert len(latency_chart.groups) == 2
    # newest day first in the table; the errors cell of a failing row is red
    assert [r.cells[0].content.value for r in view.table.rows] == [TODAY, YESTERDAY]
    assert view.table.rows[1].cells[5].content.color == ft.Colors.ERROR
    assert not view.empty.visible


async def test_usage_range_and_channel_filter_reload() -> None:
    plane = UsagePlane([row(), row(day="2026-03-01", channel="local", cost=2.0)])
    view = UsageView(plane, wall_clock=lambda: NOW)
    await view.load()
    assert len(view.rows) == 1  # 1 March is outside the last 7 days
    assert {o.key for o in view.channel_picker.options} >= {"*", "telegram"}
    view.select_range("30d")
    await view.reload()
    assert len(view.rows) == 2 and len(view.charts.controls[0].content.controls[-1].groups) == 30
    view.channel = "local"
    await view.reload()
    assert plane.queries[-1] == (range_since("30d", NOW), "local")
    assert [r.channel for r in view.rows] == ["local"]
    view.select_range("today")
    await view.reload()
    assert view.rows == [] and view.empty.visible and not view.details.visible
    assert view.cards["calls"].value.value == "0"
    with pytest.raises(ValueError):
        view.select_range("year")


async def test_usage_follows_llm_calls_in_the_background() -> None:
    plane = UsagePlane([])
    view = UsageView(plane, wall_clock=lambda: NOW)
    await view.load()
    plane.usage_rows = [row()]
    call = Event(EventKind.LLM_CALL, "telegram", {})
    view.apply([call], NOW + 1)  # too soon after the load: only marked stale
    assert view.rows == [] and view._reload is None
    view.root.visible = False  # the shell shows another view: no queries meanwhile
    view.apply([], NOW + 10)
    assert view._reload is None and len(plane.queries) == 1
    view.root.visible = True
    view.apply([], NOW + 10)  # a tick later: the reload starts in the background
    assert view._reload is not None
    await asyncio.sleep(0)
    view.apply([], NOW + 11)  # and the next batch shows it
    assert len(view.rows) == 1 and view.cards["calls"].value.value == "10"


async def test_usage_load_failure_is_shown() -> None:
    class Broken(UsagePlane):
        async def usage(self, **kwargs: Any) -> list[UsageRow]:
            raise OSError("database is locked")

    view = UsageView(Broken([]), wall_clock=lambda: NOW)
    await view.load()
    assert view.error.visible and "database is locked" in str(view.error.value)


# -- settings ------------------------------------------------------------------------------------


class SettingsPlane(FakeControlPlane):
    """Settings kept in memory, validated by the real config models like the real plane."""

    def __init__(self) -> None:
        super().__init__()
        self.providers = [{"name": "main", "kind": "openai", "base_url": "http://127.0.0.1:1/v1",
                           "model": "gpt-4o"}]
        self.keys = {"main": "sk-stored"}
        self.agent = AgentConfig().model_dump(mode="json")
        self.saves: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        self.models = ["gpt-4o", "gpt-4o-mini"]

    def settings_form(self) -> SettingsForm:
        return SettingsForm(tuple(dict(p) for p in self.providers), tuple(self.keys),
                            dict(self.agent), ProviderConfig.model_json_schema(),
                            AgentConfig.model_json_schema())

    def validate_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                          ) -> list[FieldError]:
        from pydantic import ValidationError

        errors = []
        for i, p in enumerate(providers):
            try:
                ProviderConfig.model_validate({k: v for k, v in p.items() if v is not None})
            except ValidationError as exc:
                errors += [FieldError(f"providers.{i}.{e['loc'][0]}", e["msg"])
                           for e in exc.errors()]
        try:
            AgentConfig.model_validate(agent)
        except ValidationError as exc:
            errors += [FieldError(f"agent.{e['loc'][0]}", e["msg"]) for e in exc.errors()]
        names = [p.get("name") for p in providers]
        if agent.get("provider") and agent["provider"] not in names:
            errors.append(FieldError("agent.provider", f"no provider is called "
                                                       f"{agent['provider']!r}"))
        return errors

    async def save_settings(self, providers: list[dict[str, Any]], agent: dict[str, Any]
                            ) -> list[FieldError]:
        errors = self.validate_settings(providers, agent)
        if errors:
            return errors
        self.saves.append((providers, agent))
        for p in providers:
            key = p.pop("api_key", None)
            if key:
                self.keys[p["name"]] = key
        self.keys = {n: k for n, k in self.keys.items() if n in {p["name"] for p in providers}}
        self.providers = providers
        self.agent = AgentConfig.model_validate(agent).model_dump(mode="json")
        return []

    async def list_models(self, provider: dict[str, Any]) -> tuple[list[str], ProbeOutcome]:
        if "bad" in str(provider.get("base_url")):
            return [], ProbeOutcome(False, "connection refused")
        return self.models, ProbeOutcome(True, f"{len(self.models)} models available")


class MemoryThemeStore:
    def __init__(self, value: str | None = None) -> None:
        self.value = value

    async def get(self) -> str | None:
        return self.value

    async def set(self, mode: str) -> None:
        self.value = mode


async def _settings(theme: str | None = None) -> tuple[SettingsView, SettingsPlane]:
    plane = SettingsPlane()
    view = SettingsView(plane, theme_store=MemoryThemeStore(theme))
    await view.load()
    return view, plane


async def test_settings_forms_come_from_the_real_schemas() -> None:
    view, _ = await _settings()
    assert len(view.provider_list.controls) == 1
    assert set(view.agent_form.fields) == {"system_prompt", "history_tokens",
                                           "max_concurrent_llm", "compaction"}
    # everything else in AgentConfig lands in Advanced, so a new field is never lost
    assert {"tools", "retry_base", "breaker_cooldown"} <= set(view.advanced_form.fields)
    prompt = view.agent_form["system_prompt"].input
    assert isinstance(prompt, ft.TextField) and prompt.multiline
    assert view.agent_form.cells["system_prompt"].col == 12  # full width
    assert view.default_provider.value == ""  # unset: the first provider
    editor = view.open_editor(0)
    assert {"name", "kind", "base_url", "model", "api_key", "prices"} <= set(editor.form.fields)
    kind = editor.form["kind"].input
    assert isinstance(kind, ft.Dropdown) and [o.key for o in kind.options] == ["openai",
                                                                                "anthropic"]


async def test_api_key_is_masked_and_saved_hint_shown() -> None:
    view, plane = await _settings()
    editor = view.open_editor(0)
    key = editor.form["api_key"].input
    assert isinstance(key, ft.TextField)
    assert key.password and key.can_reveal_password and key.value == ""
    assert key.hint_text == SAVED_SECRET_HINT
    assert editor.form["name"].input.read_only  # the key is filed under the name
    assert await editor.save()
    assert "api_key" not in plane.saves[-1][0][0]  # blank: the plane keeps the stored key
    assert plane.keys == {"main": "sk-stored"}
    new = view.open_editor(None)
    assert new.form["api_key"].input.hint_text != SAVED_SECRET_HINT


async def test_add_provider_with_test_connection_and_model_picker() -> None:
    view, plane = await _settings()
    editor = view.open_editor(None)
    editor.form["name"].input.value = "local-llm"
    editor.form["base_url"].input.value = "http://127.0.0.1:11434/v1"
    editor.form["api_key"].input.value = "sk-new"
    refreshed: list[bool] = []
    assert await editor.test_connection(lambda: refreshed.append(editor.progress.visible))
    assert refreshed == [True] and not editor.progress.visible  # ring while it ran
    assert editor.probe_result.message == "2 models available" and editor.probe_result.ok
    assert [o.key for o in editor.models.options] == plane.models and editor.models_row.visible
    editor.pick_model("gpt-4o-mini")
    assert await editor.save()
    view.close_editor("saved")
    saved = plane.saves[-1][0]
    assert saved[1]["name"] == "local-llm" and saved[1]["model"] == "gpt-4o-mini"
    assert plane.keys["local-llm"] == "sk-new"
    assert len(view.provider_list.controls) == 2  # the list re-read from the plane


async def test_failed_connection_test_is_said_in_words() -> None:
    view, _ = await _settings()
    editor = view.open_editor(None)
    editor.form["name"].input.value = "x"
    editor.form["model"].input.value = "m"
    editor.form["base_url"].input.value = "http://bad.invalid"
    assert not await editor.test_connection()
    assert editor.probe_result.message == "connection refused" and not editor.probe_result.ok
    assert editor.probe_result.text.color == ft.Colors.ERROR and not editor.models_row.visible
    assert editor.models.visible  # the row hides, never the labelled dropdown (red box)


async def test_provider_validation_errors_show_under_fields() -> None:
    view, plane = await _settings()
    editor = view.open_editor(None)
    editor.form["name"].input.value = "x"
    editor.form["timeout"].input.value = "-1"
    assert not await editor.save()
    assert editor.form["model"].error  # required
    assert editor.form["timeout"].error and editor.advanced.expanded
    assert plane.saves == []


async def test_remove_provider_saves_without_it() -> None:
    view, plane = await _settings()
    page = SimpleNamespace(dialogs=[], show_dialog=lambda d: page.dialogs.append(d))
    dialog = view.confirm_remove(0, page)  # type: ignore[arg-type]
    assert page.dialogs == [dialog]
    assert await view.remove_provider(0)
    assert plane.providers == [] and plane.keys == {}
    assert "removed" in view.notice.message


async def test_agent_settings_prompts_fallbacks_and_errors() -> None:
    view, plane = await _settings()
    view.agent_form["history_tokens"].input.value = "50"  # below the minimum of 200
    view.default_provider.value = "ghost"
    assert not await view.save_agent()
    assert view.agent_form["history_tokens"].error
    assert "no provider is called" in str(view.default_provider.error_text)
    assert plane.saves == []

    view.agent_form["history_tokens"].input.value = "6000"
    view.default_provider.value = "main"
    prompt = view.add_prompt("telegram", "Be brief on {channel}, {user}.")
    view.add_prompt("slack", "   ")  # a blank prompt is not saved
    fallback = view.add_fallback("main", "gpt-4o-mini")
    assert prompt.channel.value == "telegram" and fallback.provider.value == "main"
    assert await view.save_agent()
    agent = plane.saves[-1][1]
    assert agent["history_tokens"] == 6000 and agent["provider"] == "main"
    assert agent["system_prompts"] == {"telegram": "Be brief on {channel}, {user}."}
    assert agent["fallbacks"] == [{"provider": "main", "model": "gpt-4o-mini"}]
    assert "tools" not in agent  # blank optional list: unset (all tools), not "none"
    assert "Saved" in view.agent_status.message
    # the reloaded form shows what was stored
    assert [r.channel.value for r in view.prompt_rows] == ["telegram"]
    assert len(view.fallback_rows) == 1


async def test_theme_applies_at_once_and_is_remembered_per_client() -> None:
    view, _ = await _settings(theme=None)
    assert view.theme_picker.selected == ["system"]
    updates: list[ft.ThemeMode] = []
    page = SimpleNamespace(theme_mode=ft.ThemeMode.SYSTEM)
    page.update = lambda: updates.append(page.theme_mode)
    await view.set_theme("dark", page)  # type: ignore[arg-type]
    assert page.theme_mode == ft.ThemeMode.DARK and updates == [ft.ThemeMode.DARK]
    assert view.theme_store.value == "dark"  # type: ignore[attr-defined]
    # another load for the same client (a reload, a new tab) restores it
    again = SettingsView(SettingsPlane(), theme_store=view.theme_store)
    fresh = SimpleNamespace(theme_mode=ft.ThemeMode.SYSTEM)
    await again.restore_theme(fresh)  # type: ignore[arg-type]
    assert fresh.theme_mode == ft.ThemeMode.DARK and again.theme_picker.selected == ["dark"]
    with pytest.raises(ValueError):
        await view.set_theme("sepia", page)  # type: ignore[arg-type]
