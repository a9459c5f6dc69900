"""The owner's side of scheduled jobs: list, create, pause, resume and delete.

Shared by the control plane (the panel and the monitor) and the ``pyclaw schedules``
command, which works on the database beside a running gateway (that gateway notices a
change within its scheduler's poll). Jobs are checked by the same rules as the
assistant's tool (``pyclaw_app.schedules``); a bad value raises ScheduleError (a
ValueError, which the control API answers as 422) naming the field.
"""

from __future__ import annotations

from pyclaw_app.config import Config
from pyclaw_app.control.types import ScheduleRow
from pyclaw_app.model import Address
from pyclaw_app.schedules import (
    OWNER,
    ScheduleError,
    action_of,
    check_body,
    format_time,
    missed_of,
    when_of,
)
from pyclaw_app.store.schedules import Job, ScheduleStore

__all__ = ["OWNER", "create_job", "explain", "row_of", "set_enabled"]

def row_of(job: Job) -> ScheduleRow:
    a = job.address
    return ScheduleRow(
        id=job.id, channel=a.channel, chat=a.chat, thread=a.thread,
        created_by=job.creator_name or job.created_by, action=job.action, body=job.body,
        timing=job.when.describe(), cron=job.when.cron, at=job.when.at, timezone=job.when.tz,
        missed=job.missed, enabled=job.enabled, next_run=job.next_run, last_run=job.last_run,
        created_at=job.created_at, paused_reason=job.paused_reason or "")


def explain(now: float, *, at: str | None = None, cron: str | None = None,
            timezone: str | None = None) -> str:
    """A timing in words, checked by the rules a new job must pass, so the panel's Add form
    can say what a cron expression means (and when it first fires) while it is typed; the
    words come from cronsim, which the monitor cannot import, hence a plane call."""
    when = when_of(at=at, cron=cron, timezone=timezone, now=now)
    words = when.describe()
    first = when.first(now)
    if when.recurring and first is not None:
        return f"{words}; next run {format_time(first, when.tz)}"
    return words


async def create_job(store: ScheduleStore, config: Config | None, now: float, *, channel: str,
                     chat: str, text: str, kind: str = "text", at: str | None = None,
                     in_minutes: float | None = None, cron: str | None = None,
                     timezone: str | None = None, missed: str = "run_once",
                     thread: str | None = None) -> Job:
    """A job of the owner's for ``channel`` (a configured channel's name) and ``chat``."""
    if config is not None and channel not in config.channels:
        known = ", ".join(sorted(config.channels)) or "none"
        raise ScheduleError("channel", f"there is no channel named {channel!r} in the config "
                            f"(configured: {known})")
    if not isinstance(chat, str) or not chat.strip():
        raise ScheduleError("chat", "the chat is empty: give the chat's id as Logs shows it")
    action = action_of(kind)
    body = check_body(text)
    policy = missed_of(missed)
    when = when_of(at=at, in_minutes=in_minutes, cron=cron, timezone=timezone, now=now)
    chat, thread = chat.strip(), (thread.strip() or None) if thread else None
    account, is_group = await store.conversation_of(channel, chat, thread)
    return await store.add(Address(channel, chat, account, thread), created_by=OWNER,
                           creator_name=OWNER, is_group=is_group, action=action,
                           body=body, when=when, missed=policy, now=now)


async def set_enabled(store: ScheduleStore, job_id: int, enabled: bool, now: float
                      ) -> Job | None:
    """Pause a job, or resume it from its next occurrence after ``now`` (runs that fell in
    the pause are not sent). None when there is no such job; resuming a one-off whose time
    passed during the pause sends it once if its missed policy is ``run_once``."""
    job = await store.get(job_id)
    if job is None:
        return None
    next_run: float | None = None
    if enabled:
        if job.when.recurring:
            next_run = job.when.next_after(now)
        elif job.last_run is None:
            assert job.when.at is not None
            if job.when.at <= now and job.missed == "skip":
                raise ScheduleError("enabled", f"job {job_id}'s time has passed while it was "
                                    "paused, and it skips missed runs: nothing to resume")
            next_run = job.when.at
        else:
            raise ScheduleError("enabled", f"job {job_id} ran already; nothing to resume")
    await store.set_enabled(job_id, enabled, next_run, now)
    return await store.get(job_id)
