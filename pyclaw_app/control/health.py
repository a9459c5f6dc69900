"""Health at a glance: a channel's last day hour by hour, and whether each provider works.

A channel's state changes are kept in the channel log itself, as ``info`` lines whose data
is ``{"kind": "state", "state": ..., "reason": ...}`` (``Gateway.set_state`` writes one per
change), so the history needs no table of its own and ages out with the log's retention.
The hour buckets are computed here from those lines and from the log's errors and warnings.

The bucketing functions are pure and import only the row types: the views (the Android
monitor included) use the same ones to move a snapshot forward with live events, so a
strip drawn from events matches one loaded afresh. The queries take the store's database
as an argument and run on the gateway only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from pyclaw_app.control.types import ChannelHealth, HealthHour, ProviderHealth, StateSpan

__all__ = ["DAY_HOURS", "HOUR", "MAX_HOURS", "PROBLEM_STATES", "STATE_KIND", "advance",
           "build_health", "channel_health", "hour_states", "provider_health", "record_log",
           "record_state", "shown_state", "window_start"]

HOUR = 3600.0
DAY_HOURS = 24
MAX_HOURS = 24 * 7
"""The longest window a caller may ask for (a remote caller must not ask for a year)."""
STATE_KIND = "state"
PROBLEM_STATES = ("offline", "degraded")
"""Worst first: an hour with any time in one of these is shown in that state."""
_STATE_PREFIX = '{"kind": "state"'
"""How a state line's data starts (json.dumps of the dict the gateway writes)."""


class _Db(Protocol):
    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...


# ---- pure: shared with the views ----------------------------------------------------------

def window_start(now: float, hours: int) -> float:
    """Start of the oldest of ``hours`` clock hours ending with the current one."""
    return (now // HOUR - (hours - 1)) * HOUR


def hour_states(spans: Iterable[StateSpan], start: float, end: float) -> dict[str, float]:
    """Seconds spent in each state between ``start`` and ``end``. A state entered just now
    is listed with 0 seconds, so the hour shows it before any time has passed."""
    out: dict[str, float] = {}
    for span in spans:
        overlap = min(span.end, end) - max(span.start, start)
        if overlap > 0 or (span.start == span.end and start <= span.start <= end):
            out[span.state] = out.get(span.state, 0.0) + max(overlap, 0.0)
    return out


def shown_state(states: Mapping[str, float]) -> str:
    """The state an hour is drawn in: a problem if there was one, else where it spent most
    time; "" when nothing is known about the hour."""
    for state in PROBLEM_STATES:
        if state in states:
            return state
    return max(states, key=lambda s: states[s]) if states else ""


def build_health(channel: str, now: float, hours: int, spans: Sequence[StateSpan],
                 counts: Mapping[float, tuple[int, int]], changes: int) -> ChannelHealth:
    """The window of ``hours`` clock hours ending now; ``counts`` maps an hour's start to its
    (errors, warnings). Spans are clipped to the window."""
    since = window_start(now, hours)
    kept = tuple(dataclasses.replace(s, start=max(s.start, since), end=min(s.end, now))
                 for s in spans if s.end > since or s is spans[-1])
    rows = []
    for index in range(hours):
        start = since + index * HOUR
        errors, warnings = counts.get(start, (0, 0))
        rows.append(HealthHour(start, errors, warnings,
                               hour_states(kept, start, min(start + HOUR, now))))
    return ChannelHealth(channel, since, now, tuple(rows), kept, changes)


def _counts(health: ChannelHealth) -> dict[float, tuple[int, int]]:
    return {h.start: (h.errors, h.warnings) for h in health.hours}


def advance(health: ChannelHealth, now: float) -> ChannelHealth:
    """The same history seen at ``now``: the current state lasts until now and hours that
    left the window are gone."""
    if now <= health.until:
        return health
    spans = list(health.spans)
    if spans:
        spans[-1] = dataclasses.replace(spans[-1], end=now)
    return build_health(health.channel, now, len(health.hours) or DAY_HOURS, spans,
                        _counts(health), health.changes)


def record_state(health: ChannelHealth, ts: float, state: str, reason: str = ""
                 ) -> ChannelHealth:
    """A state change at ``ts`` (a repeat of the current state only updates its reason)."""
    health = advance(health, ts)
    spans = list(health.spans)
    changes = health.changes
    if spans and spans[-1].state == state:
        spans[-1] = dataclasses.replace(spans[-1], reason=reason)
    else:
        if spans:
            spans[-1] = dataclasses.replace(spans[-1], end=ts)
        spans.append(StateSpan(ts, ts, state, reason))
        changes += 1
    until = max(health.until, ts)
    return build_health(health.channel, until, len(health.hours) or DAY_HOURS, spans,
                        _counts(health), changes)


def record_log(health: ChannelHealth, ts: float, level: str) -> ChannelHealth:
    """A log line at ``ts``: errors and warnings are counted in their hour."""
    if level not in ("error", "critical", "warning"):
        return health
    health = advance(health, ts)
    hours = list(health.hours)
    for index, hour in enumerate(hours):
        if hour.start <= ts < hour.start + HOUR:
            if level == "warning":
                hours[index] = dataclasses.replace(hour, warnings=hour.warnings + 1)
            else:
                hours[index] = dataclasses.replace(hour, errors=hour.errors + 1)
            return dataclasses.replace(health, hours=tuple(hours))
    return health  # older than the window


# ---- the queries (gateway side) ------------------------------------------------------------

def _state_of(data: str | None) -> tuple[str, str] | None:
    """(state, reason) of a state line's data, None for any other line."""
    if not data or not data.startswith(_STATE_PREFIX):
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("kind") != STATE_KIND:
        return None
    return str(value.get("state", "")), str(value.get("reason", ""))


async def channel_health(db: _Db, channels: Sequence[str], now: float,
                         hours: int = DAY_HOURS) -> list[ChannelHealth]:
    """Each channel's last ``hours`` clock hours from the channel log."""
    hours = max(1, min(hours, MAX_HOURS))
    since = window_start(now, hours)
    wanted = set(channels)
    counts: dict[str, dict[float, list[int]]] = {}
    for row in await db.fetchall(
            "SELECT channel, CAST((ts - ?) / 3600 AS INTEGER) AS slot, level, COUNT(*) AS n"
            " FROM channel_log WHERE ts >= ? AND ts <= ?"
            " AND level IN ('error', 'critical', 'warning') GROUP BY channel, slot, level",
            (since, since, now)):
        if row["channel"] in wanted:
            hour = counts.setdefault(row["channel"], {}).setdefault(
                since + row["slot"] * HOUR, [0, 0])
            hour[1 if row["level"] == "warning" else 0] += int(row["n"])
    spans: dict[str, list[StateSpan]] = {name: [] for name in channels}
    for row in await db.fetchall(  # the state each channel was in when the window opened
            "SELECT channel, data FROM channel_log WHERE id IN (SELECT MAX(id) FROM channel_log"
            " WHERE ts < ? AND level = 'info' AND data LIKE ? GROUP BY channel)",
            (since, _STATE_PREFIX + "%")):
        state = _state_of(row["data"])
        if state is not None and row["channel"] in wanted:
            spans[row["channel"]].append(StateSpan(since, since, *state))
    changes = dict.fromkeys(channels, 0)
    for row in await db.fetchall(
            "SELECT channel, ts, data FROM channel_log WHERE ts >= ? AND ts <= ?"
            " AND level = 'info' AND data LIKE ? ORDER BY id", (since, now, _STATE_PREFIX + "%")):
        state = _state_of(row["data"])
        if state is None or row["channel"] not in wanted:
            continue
        own = spans[row["channel"]]
        if own:
            own[-1] = dataclasses.replace(own[-1], end=row["ts"])
        own.append(StateSpan(row["ts"], row["ts"], *state))
        changes[row["channel"]] += 1
    out = []
    for name in channels:
        own = spans[name]
        if own:
            own[-1] = dataclasses.replace(own[-1], end=now)
        hour_counts = {start: (n[0], n[1]) for start, n in counts.get(name, {}).items()}
        out.append(build_health(name, now, hours, own, hour_counts, changes[name]))
    return out


async def provider_health(db: _Db, providers: Sequence[str], now: float,
                          resting: Mapping[str, str], window: float = DAY_HOURS * HOUR
                          ) -> list[ProviderHealth]:
    """Each provider by its latest real call in the window; ``resting`` names providers
    whose circuit breaker holds a model back (with the reason), which counts as failing."""
    since = now - window
    totals = {row["provider"]: (int(row["calls"]), int(row["errors"] or 0))
              for row in await db.fetchall(
                  "SELECT provider, COUNT(*) AS calls, COUNT(error) AS errors"
                  " FROM llm_calls WHERE ts >= ? GROUP BY provider", (since,))}
    latest = {row["provider"]: row for row in await db.fetchall(
        "SELECT provider, ts, error FROM llm_calls WHERE id IN (SELECT MAX(id) FROM llm_calls"
        " WHERE ts >= ? GROUP BY provider)", (since,))}
    out = []
    for name in providers:
        calls, errors = totals.get(name, (0, 0))
        last = latest.get(name)
        if name in resting:
            state, reason = "failing", resting[name]
        elif last is None:
            state, reason = "idle", ""
        elif last["error"]:
            state, reason = "failing", str(last["error"])
        else:
            state, reason = "ok", ""
        out.append(ProviderHealth(name, state, reason, last["ts"] if last else None,
                                  calls, errors))
    return out
