"""When a scheduled job fires: one-off times and cron expressions, each in a time zone.

The rules every entry point shares (the assistant's tool, the control plane, the CLI),
so a job is checked the same way wherever it is made: a one-off time is an ISO 8601
time with an offset, or a local time with an IANA zone, and must lie in the future; a
recurring job is a five-field cron expression (cronsim: Debian cron's syntax and its
DST behaviour) evaluated in an IANA zone. Every failure is a :class:`ScheduleError`
whose message says what to write instead.

Occurrences are epoch seconds. After a firing the next run is the first occurrence
*after now*, not after the occurrence fired: a clock that jumped forward fires what
became due once (its latest occurrence), not every occurrence it jumped over, and a
clock that jumped back waits for the next one instead of firing again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = ["MAX_BODY_CHARS", "OWNER", "Action", "Missed", "ScheduleError", "When", "action_of",
           "check_body", "format_time", "missed_of", "one_off", "recurring", "when_of", "zone"]

Action = Literal["text", "task"]
"""``text``: send the body as it is; ``task``: the assistant answers the body, the answer
is sent."""
Missed = Literal["run_once", "skip"]
"""What a job does with an occurrence it comes to late (the gateway was down, the machine
slept): ``run_once`` sends it once, ``skip`` leaves it out."""
OWNER = "owner"
"""``created_by`` of the jobs the owner makes (panel, CLI); the assistant's carry the
sender's id. The owner's jobs are not re-checked against the access policy when they fire."""
MAX_BODY_CHARS = 4000
MAX_MINUTES = 366 * 24 * 60


class ScheduleError(ValueError):
    """A job that cannot be scheduled as given; ``field`` names the value at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``), or a ScheduleError saying so."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError("timezone", "a time zone is needed: an IANA name such as "
                            "'Europe/Paris' or 'UTC'")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleError("timezone", f"unknown time zone {name!r}: use an IANA name such "
                            "as 'Europe/Paris', 'America/New_York' or 'UTC'") from exc


def action_of(value: str) -> Action:
    if value not in get_args(Action):
        raise ScheduleError("action", f"unknown action {value!r}: 'text' sends the message "
                            "as written, 'task' has the assistant answer it")
    return value  # type: ignore[return-value]


def missed_of(value: str) -> Missed:
    if value not in get_args(Missed):
        raise ScheduleError("missed", f"unknown missed policy {value!r}: 'run_once' sends a "
                            "late occurrence once, 'skip' leaves it out")
    return value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class When:
    """A job's timing: ``at`` (one-off) or ``cron`` (recurring), shown in ``tz``."""

    at: float | None
    cron: str | None
    tz: str

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    def first(self, now: float) -> float | None:
        """The first run of a job made (or resumed) at ``now``."""
        if self.at is not None:
            return self.at
        return self.next_after(now)

    def next_after(self, t: float) -> float | None:
        """The first occurrence strictly after ``t``; None when there is none (a one-off)."""
        if self.cron is None:
            return None
        try:
            return next(CronSim(self.cron, self._local(t))).timestamp()
        except StopIteration:
            return None

    def latest_due(self, next_run: float, now: float) -> float:
        """The occurrence to fire at ``now`` for a job whose stored next run is ``next_run``
        (at or before ``now``): the latest one that is due, never one before ``next_run``."""
        if self.cron is None:
            return next_run
        try:
            # Reverse iteration excludes its start: a microsecond on includes ``now`` itself.
            latest = next(CronSim(self.cron, self._local(now) + timedelta(microseconds=1),
                                  reverse=True)).timestamp()
        except StopIteration:
            return next_run
        return max(latest, next_run)

    def describe(self) -> str:
        """The timing in words: ``once at 2026-12-07 09:00 CET`` or ``at 09:00 on Monday
        (Europe/Paris)``."""
        if self.at is not None:
            return f"once at {format_time(self.at, self.tz)}"
        assert self.cron is not None
        try:
            explained = CronSim(self.cron, datetime.now(UTC)).explain()
            words = explained[:1].lower() + explained[1:]
        except (CronSimError, ValueError, KeyError, IndexError):
            words = f"cron '{self.cron}'"
        return f"{words} ({self.tz})"

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, zone(self.tz))


def format_time(t: float, tz: str) -> str:
    return datetime.fromtimestamp(t, zone(tz)).strftime("%Y-%m-%d %H:%M %Z").strip()


def one_off(at: str, timezone: str | None, now: float) -> When:
    """A one-off time: ISO 8601 with an offset (``2026-12-07T09:00+01:00``, ``...Z``), or a
    local ISO time with ``timezone``; it must lie after ``now``."""
    if not isinstance(at, str) or not at.strip():
        raise ScheduleError("at", "the time is empty: give an ISO time such as "
                            "'2026-12-07T09:00' with a time zone")
    try:
        moment = datetime.fromisoformat(at.strip())
    except ValueError as exc:
        raise ScheduleError("at", f"{at!r} is not an ISO 8601 time; write it like "
                            "'2026-12-07T09:00' (with a time zone) or "
                            "'2026-12-07T09:00+01:00'") from exc
    tz = zone(timezone) if timezone else None
    if moment.tzinfo is None:
        if tz is None:
            raise ScheduleError("timezone", f"{at!r} has no offset: say which time zone it "
                                "is in (an IANA name such as 'Europe/Paris')")
        moment = moment.replace(tzinfo=tz)
    instant = moment.timestamp()
    shown = timezone.strip() if timezone else "UTC"
    if instant <= now:
        raise ScheduleError("at", f"{format_time(instant, shown)} is in the past (it is now "
                            f"{format_time(now, shown)}); give a time in the future")
    return When(instant, None, shown)


def recurring(cron: str, timezone: str, now: float) -> When:
    """A recurring job: five cron fields (minute hour day month weekday) in ``timezone``."""
    tz = zone(timezone)
    if not isinstance(cron, str) or not cron.strip():
        raise ScheduleError("cron", "the cron expression is empty: five fields, e.g. "
                            "'0 9 * * MON' for every Monday at 09:00")
    expression = " ".join(cron.split())
    try:
        next(CronSim(expression, datetime.fromtimestamp(now, tz)))
    except CronSimError as exc:
        raise ScheduleError("cron", f"{cron!r} is not a cron expression ({exc}); it needs five "
                            "fields, minute hour day month weekday, e.g. '0 9 * * MON' for "
                            "every Monday at 09:00") from exc
    except StopIteration as exc:
        raise ScheduleError("cron", f"{cron!r} never matches a date in the next 50 years"
                            ) from exc
    return When(None, expression, timezone.strip())


def check_body(body: str) -> str:
    if not isinstance(body, str) or not body.strip():
        raise ScheduleError("text", "the message is empty: say what to send (or, for a task, "
                            "what the assistant should do)")
    if len(body) > MAX_BODY_CHARS:
        raise ScheduleError("text", f"the message is {len(body):,} characters; at most "
                            f"{MAX_BODY_CHARS:,} can be scheduled")
    return body.strip()


def when_of(*, at: str | None = None, in_minutes: float | None = None,
            cron: str | None = None, timezone: str | None = None, now: float) -> When:
    """Exactly one of ``at`` (an ISO time), ``in_minutes`` (from ``now``) or ``cron``, with
    the IANA ``timezone`` it is read in (needed for cron and for a time without offset;
    for the others it is how the time is shown)."""
    given = [name for name, value in (("at", at), ("in_minutes", in_minutes), ("cron", cron))
             if value is not None]
    if len(given) != 1:
        raise ScheduleError("at", "give exactly one of 'at' (an ISO time), 'in_minutes' or "
                            f"'cron' (got {', '.join(given) or 'none'})")
    if timezone is not None:
        zone(timezone)
    if in_minutes is not None:
        if isinstance(in_minutes, bool) or not isinstance(in_minutes, int | float) \
                or not 0 < in_minutes <= MAX_MINUTES:
            raise ScheduleError("in_minutes", "in_minutes must be a number of minutes above 0 "
                                f"and at most {MAX_MINUTES:,} (a year)")
        return When(now + in_minutes * 60, None, timezone.strip() if timezone else "UTC")
    if at is not None:
        return one_off(at, timezone, now)
    assert cron is not None
    if not timezone:
        raise ScheduleError("timezone", "a recurring job needs the user's time zone (an IANA "
                            "name such as 'Europe/Paris'): ask the user if you do not know it")
    return recurring(cron, timezone, now)
