"""The assistant's schedule tools: make, list and cancel jobs of the current conversation.

"Remind me at 9" becomes ``schedule_message`` with a time; "every Monday summarise the
week" becomes one with a cron expression and ``kind: task``. Each job speaks to the
conversation it was made in and nowhere else, and is listed and cancelled from there
only. Answers are in words, so the model can tell the user what will happen and when;
bad input is a ToolError saying what to send instead.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.agent.tools.registry import Tool, ToolContext, ToolError
from pyclaw_app.schedules import (
    ScheduleError,
    action_of,
    check_body,
    format_time,
    missed_of,
    when_of,
)
from pyclaw_app.store.schedules import Job, ScheduleStore

__all__ = ["MAX_JOBS_PER_CONVERSATION", "describe_job", "schedule_tools"]

MAX_JOBS_PER_CONVERSATION = 25


def _store(ctx: ToolContext) -> ScheduleStore:
    if ctx.schedules is None:
        raise ToolError("scheduling is not available in this gateway")
    return ctx.schedules


def describe_job(job: Job) -> str:
    """One job in words, as the user would want it read back."""
    what = (f"sends \"{job.body}\"" if job.action == "text"
            else f"runs the task \"{job.body}\" and sends the answer")
    state = "paused" if not job.enabled else (
        f"next {format_time(job.next_run, job.when.tz)}" if job.next_run is not None
        else "done")
    return f"job {job.id}: {what}, {job.when.describe()} ({state})"


async def _schedule(args: dict[str, Any], ctx: ToolContext) -> str:
    store = _store(ctx)
    inbound = ctx.inbound
    now = ctx.now().timestamp()
    try:
        action = action_of(args.get("kind", "text"))
        body = check_body(args["message"])
        missed = missed_of(args.get("missed", "run_once"))
        when = when_of(at=args.get("at"), in_minutes=args.get("in_minutes"),
                       cron=args.get("cron"), timezone=args.get("timezone"), now=now)
    except ScheduleError as exc:
        raise ToolError(str(exc)) from exc
    if await store.count(inbound.address.key) >= MAX_JOBS_PER_CONVERSATION:
        raise ToolError(f"this conversation already has {MAX_JOBS_PER_CONVERSATION} scheduled "
                        "jobs; cancel one first")
    job = await store.add(inbound.address, created_by=inbound.sender_id or "unknown",
                          creator_name=inbound.sender_name, is_group=inbound.is_group,
                          action=action, body=body, when=when, missed=missed, now=now)
    first = job.next_run
    assert first is not None
    return (f"Scheduled {describe_job(job)}. First run: {format_time(first, when.tz)}, in "
            f"{_duration(first - now)}. It can be cancelled with cancel_schedule id {job.id}.")


async def _list(args: dict[str, Any], ctx: ToolContext) -> str:
    jobs = [job for job in await _store(ctx).jobs(conv=ctx.inbound.address.key)
            if job.next_run is not None or not job.enabled]  # done one-offs are history
    if not jobs:
        return "no scheduled jobs in this conversation"
    return "\n".join(describe_job(job) for job in jobs)


async def _cancel(args: dict[str, Any], ctx: ToolContext) -> str:
    job_id = args["id"]
    if not await _store(ctx).delete(job_id, conv=ctx.inbound.address.key):
        raise ToolError(f"there is no job {job_id} in this conversation (list_schedules shows "
                        "its jobs)")
    return f"cancelled job {job_id}; it will not run again"


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    if hours < 48:
        return f"{hours} hours"
    return f"{round(hours / 24)} days"


_SCHEDULE_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "For kind 'text' the exact message to "
                    "send; for kind 'task' what you should do when it runs (e.g. 'summarise "
                    "the news about Mars')"},
        "kind": {"type": "string", "enum": ["text", "task"],
                 "description": "'text' (default) sends the message as written; 'task' runs "
                 "it through you and sends your answer"},
        "at": {"type": "string", "description": "One-off: an ISO 8601 time, e.g. "
               "'2026-12-07T09:00' with timezone, or with an offset '2026-12-07T09:00+01:00'"},
        "in_minutes": {"type": "number", "description": "One-off: this many minutes from now"},
        "cron": {"type": "string", "description": "Recurring: five cron fields, minute hour "
                 "day month weekday, e.g. '0 9 * * MON' for every Monday at 09:00"},
        "timezone": {"type": "string", "description": "The user's IANA time zone, e.g. "
                     "'Europe/Paris' (needed for cron and for 'at' without an offset)"},
        "missed": {"type": "string", "enum": ["run_once", "skip"],
                   "description": "If a run is missed (the gateway was down): 'run_once' "
                   "(default) sends it once when back, 'skip' leaves it out"},
    },
    "required": ["message"],
    "additionalProperties": False,
}


def schedule_tools() -> list[Tool]:
    return [
        Tool("schedule_message", "Schedule a message or a task for this conversation: once "
             "(at a time, or in some minutes) or recurring (cron). Use it for reminders and "
             "regular summaries; tell the user what was scheduled and when.",
             _SCHEDULE_PARAMETERS, _schedule),
        Tool("list_schedules", "The jobs scheduled in this conversation, with their ids and "
             "next runs.", {"type": "object", "properties": {}, "required": [],
                            "additionalProperties": False}, _list),
        Tool("cancel_schedule", "Cancel a scheduled job of this conversation by its id.",
             {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
              "additionalProperties": False}, _cancel),
    ]
