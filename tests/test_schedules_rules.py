"""The timing rules and the store's once-only firing, without a gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyclaw_app.model import Address
from pyclaw_app.schedules import ScheduleError, When, one_off, recurring, when_of, zone
from pyclaw_app.store import Store

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC).timestamp()
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
         "Pacific/Chatham")
CRONS = ("* * * * *", "*/7 * * * *", "30 2 * * *", "0 9 * * MON-FRI", "15 1,13 1 * *",
         "0 0 29 2 *", "59 23 L * *", "0 12 * * SUN#2")


@given(text=st.text(max_size=40))
def test_any_text_as_a_time_is_a_time_or_a_schedule_error(text: str) -> None:
    try:
        when = one_off(text, "Europe/Paris", NOW)
    except ScheduleError as exc:
        assert exc.field in ("at", "timezone") and str(exc)
    else:
        assert when.at is not None and when.at > NOW and when.cron is None


_FIELD = st.text(alphabet="0123456789*/,-LW#?MONFRIJA", min_size=1, max_size=7)
CRON_LIKE = st.lists(_FIELD, min_size=4, max_size=6).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40) | CRON_LIKE,
       tz=st.sampled_from((*ZONES, "Mars/Olympus", "", "../x")))
def test_any_text_as_a_cron_is_a_job_or_a_schedule_error(text: str, tz: str) -> None:
    try:
        when = recurring(text, tz, NOW)
    except ScheduleError as exc:
        assert exc.field in ("cron", "timezone") and str(exc)
    else:
        upcoming = when.next_after(NOW)
        assert upcoming is None or upcoming > NOW


@settings(max_examples=60, deadline=None)
@given(cron=st.sampled_from(CRONS), tz=st.sampled_from(ZONES),
       start=st.floats(min_value=NOW, max_value=NOW + 3 * 365 * 86400),
       steps=st.lists(st.floats(min_value=-3 * 86400, max_value=3 * 86400), min_size=1,
                      max_size=25))
def test_a_clock_that_jumps_about_never_fires_an_occurrence_twice_or_one_not_due(
        cron: str, tz: str, start: float, steps: list[float]) -> None:
    """The scheduler's rule on a clock moving forwards and back: fire the latest due
    occurrence, move to the first one after now."""
    when = recurring(cron, tz, start)
    next_run = when.next_after(start)
    fired: list[float] = []
    now = start
    for step in steps:
        now += step
        if next_run is None or next_run > now:
            continue
        occurrence = when.latest_due(next_run, now)
        assert next_run <= occurrence <= now
        fired.append(occurrence)
        following = when.next_after(now)
        assert following is None or following > now
        next_run = following
    assert len(fired) == len(set(fired))
    assert fired == sorted(fired)


@settings(max_examples=40, deadline=None)
@given(cron=st.sampled_from(CRONS), tz=st.sampled_from(ZONES),
       start=st.floats(min_value=NOW, max_value=NOW + 2 * 365 * 86400))
def test_occurrences_only_move_forward_across_dst(cron: str, tz: str, start: float) -> None:
    when = recurring(cron, tz, start)
    t: float | None = start
    seen: list[float] = []
    for _ in range(30):
        assert t is not None
        following = when.next_after(t)
        if following is None:
            break
        assert following > t
        seen.append(following)
        t = following
    assert len(seen) == len(set(seen))


def test_a_daily_job_runs_once_on_the_days_the_clocks_change() -> None:
    paris = ZoneInfo("Europe/Paris")
    when = recurring("30 2 * * *", "Europe/Paris", NOW)
    t = datetime(2027, 3, 27, 12, 0, tzinfo=paris).timestamp()  # spring: 02:30 does not exist
    days = []
    for _ in range(3):
        following = when.next_after(t)
        assert following is not None
        days.append(datetime.fromtimestamp(following, paris).date().isoformat())
        t = following
    assert days == ["2027-03-28", "2027-03-29", "2027-03-30"]
    t = datetime(2027, 10, 30, 12, 0, tzinfo=paris).timestamp()  # autumn: 02:30 happens twice
    runs = []
    for _ in range(2):
        following = when.next_after(t)
        assert following is not None
        runs.append(following)
        t = following
    assert runs[1] - runs[0] >= 23 * 3600  # the repeated hour does not fire it again


def test_times_and_zones() -> None:
    assert one_off("2026-12-07T09:01", "Europe/Paris", NOW).at == NOW + 60  # CET is UTC+1
    assert one_off("2026-12-07T08:00:01Z", None, NOW).at == NOW + 1
    with pytest.raises(ScheduleError, match="in the past"):
        one_off("2026-12-07T08:00:00+00:00", None, NOW)
    with pytest.raises(ScheduleError, match="has no offset"):
        one_off("2026-12-07T09:00", None, NOW)
    with pytest.raises(ScheduleError, match="unknown time zone 'Europe/Pariss'"):
        zone("Europe/Pariss")
    assert when_of(in_minutes=1.5, now=NOW) == When(NOW + 90, None, "UTC")
    with pytest.raises(ScheduleError, match="exactly one of"):
        when_of(at="2027-01-01T00:00Z", in_minutes=5, now=NOW)
    with pytest.raises(ScheduleError, match="never matches"):
        recurring("* * */20 * 1L", "UTC", NOW)  # the 1st or 21st that is a last Monday
    assert When(NOW, None, "Asia/Kolkata").describe() == "once at 2026-12-07 13:30 IST"


# ---- the store -------------------------------------------------------------------------------
@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store(tmp_path / "data").open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_an_occurrence_is_journaled_once_even_when_fired_twice_at_once(
        store: Store) -> None:
    schedules = store.schedules
    job = await schedules.add(Address("local", "c"), created_by="u", creator_name="U",
                              is_group=False, action="text", body="hi",
                              when=recurring("0 * * * *", "UTC", NOW), missed="run_once",
                              now=NOW)
    assert job.next_run == NOW + 3600
    results = await asyncio.gather(*(
        schedules.fire(job, NOW + 3600, NOW + 7200, "t", {"action": "text", "body": "hi"},
                       NOW + 3601) for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    assert len(await schedules.open_firings()) == 1
    again = await schedules.get(job.id)
    assert again is not None and again.next_run == NOW + 7200
    # the stale copy of the job (read before the firing) cannot fire anything now
    assert await schedules.fire(job, NOW + 3600, NOW + 7200, "t", {}, NOW + 3700) is None
    assert await schedules.skip(job, NOW + 3600, NOW + 7200, NOW + 3700) is False
    (run,) = await schedules.runs(job.id)
    assert (run.scheduled_for, run.status) == (NOW + 3600, "fired")


async def test_a_paused_or_deleted_job_does_not_fire(store: Store) -> None:
    schedules = store.schedules
    job = await schedules.add(Address("local", "c"), created_by="u", creator_name="",
                              is_group=False, action="text", body="hi",
                              when=When(NOW + 60, None, "UTC"), missed="skip", now=NOW)
    await schedules.set_enabled(job.id, False, None, NOW)
    assert await schedules.due(NOW + 120) == []
    assert await schedules.fire(job, NOW + 60, None, "t", {}, NOW + 120) is None
    assert await schedules.delete(job.id, conv="another|conversation") is False
    assert await schedules.delete(job.id)
    assert await schedules.open_firings() == [] and await schedules.runs(job.id) == []

