"""Built-in tools that need no internet: time and date, a safe calculator, notes, channel info,
scheduled messages, files sent to the conversation."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyclaw_app.agent.tools.calculator import CalculatorError, calculate
from pyclaw_app.agent.tools.files import file_tools
from pyclaw_app.agent.tools.registry import Tool, ToolContext, ToolError, ToolRegistry
from pyclaw_app.agent.tools.schedule import schedule_tools

__all__ = ["builtin_tools"]


async def _current_time(args: dict[str, Any], ctx: ToolContext) -> str:
    now = ctx.now()
    zone_name = args.get("timezone")
    if zone_name:
        try:
            now = now.astimezone(ZoneInfo(zone_name))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ToolError(f"unknown time zone {zone_name!r}; use an IANA name such as "
                            "'Europe/Paris'") from exc
    else:
        now = now.astimezone()
    return json.dumps({"iso": now.isoformat(timespec="seconds"), "date": now.date().isoformat(),
                       "time": now.strftime("%H:%M:%S"), "weekday": now.strftime("%A"),
                       "timezone": str(now.tzinfo)})


async def _calculate(args: dict[str, Any], ctx: ToolContext) -> str:
    try:
        value = calculate(args["expression"])
    except CalculatorError as exc:
        raise ToolError(str(exc)) from exc
    return repr(value) if isinstance(value, float) else str(value)


def _known_sender(ctx: ToolContext) -> None:
    if not ctx.inbound.sender_id:
        raise ToolError("notes need a known sender, and this message has none")


async def _save_note(args: dict[str, Any], ctx: ToolContext) -> str:
    text = args["text"].strip()
    if not text:
        raise ToolError("the note is empty")
    _known_sender(ctx)
    note_id = await ctx.notes.add(text)
    return f"saved as note {note_id}"


async def _recall_notes(args: dict[str, Any], ctx: ToolContext) -> str:
    _known_sender(ctx)
    notes = await ctx.notes.find(args.get("query", ""))
    if not notes:
        return "no notes found"
    return json.dumps([{"id": n.id, "text": n.text,
                        "saved": datetime.fromtimestamp(n.created_at).astimezone()
                        .isoformat(timespec="minutes")} for n in notes], ensure_ascii=False)


async def _delete_note(args: dict[str, Any], ctx: ToolContext) -> str:
    _known_sender(ctx)
    if not await ctx.notes.delete(args["id"]):
        raise ToolError(f"there is no note {args['id']} here")
    return f"deleted note {args['id']}"


async def _channel_info(args: dict[str, Any], ctx: ToolContext) -> str:
    inbound = ctx.inbound
    address = inbound.address
    return json.dumps({"channel": address.channel, "chat": address.chat,
                       "thread": address.thread, "is_group": inbound.is_group,
                       "user_id": inbound.sender_id, "user_name": inbound.sender_name},
                      ensure_ascii=False)


def _schema(properties: dict[str, Any] | None = None,
            required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties or {}, "required": list(required),
            "additionalProperties": False}


def builtin_tools() -> ToolRegistry:
    return ToolRegistry([
        Tool("current_time", "The current date, time and weekday, in the server's time zone "
             "or a given IANA time zone.",
             _schema({"timezone": {"type": "string",
                                   "description": "IANA name, e.g. 'Asia/Tokyo'"}}),
             _current_time),
        Tool("calculate", "Evaluate an arithmetic expression exactly: + - * / // % ** and "
             "sqrt, log, sin, cos, tan, floor, ceil, round, abs, min, max, factorial, pi, e.",
             _schema({"expression": {"type": "string", "description": "e.g. '(3 + 4) * 2'"}},
                     ("expression",)),
             _calculate),
        Tool("save_note", "Save a note to recall in later conversations. In a direct "
             "message it is this person's (also on their linked accounts); in a group it "
             "belongs to the group.",
             _schema({"text": {"type": "string"}}, ("text",)), _save_note),
        Tool("recall_notes", "The saved notes of this person (in a direct message) or of this "
             "group (in a group), newest first, optionally only those containing a word.",
             _schema({"query": {"type": "string", "description": "a word to filter by"}}),
             _recall_notes),
        Tool("delete_note", "Delete one of the notes recall_notes shows here, by its id.",
             _schema({"id": {"type": "integer"}}, ("id",)), _delete_note),
        Tool("channel_info", "Where this conversation happens: channel, chat, thread, whether "
             "it is a group, and the user's id and name.", _schema(), _channel_info),
        *schedule_tools(),
        *file_tools(),
    ])
