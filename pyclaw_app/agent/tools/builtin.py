"""Built-in tools that need no internet: time and date, a safe calculator, notes, channel info."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyclaw_app.agent.tools.calculator import CalculatorError, calculate
from pyclaw_app.agent.tools.registry import Tool, ToolContext, ToolError, ToolRegistry

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


def _owner(ctx: ToolContext) -> tuple[str, str]:
    if not ctx.inbound.sender_id:
        raise ToolError("notes need a known sender, and this message has none")
    return ctx.inbound.address.channel, ctx.inbound.sender_id


async def _save_note(args: dict[str, Any], ctx: ToolContext) -> str:
    text = args["text"].strip()
    if not text:
        raise ToolError("the note is empty")
    note_id = await ctx.notes.add(*_owner(ctx), text)
    return f"saved as note {note_id}"


async def _recall_notes(args: dict[str, Any], ctx: ToolContext) -> str:
    notes = await ctx.notes.find(*_owner(ctx), query=args.get("query", ""))
    if not notes:
        return "no notes found"
    return json.dumps([{"id": n.id, "text": n.text,
                        "saved": datetime.fromtimestamp(n.created_at).astimezone()
                        .isoformat(timespec="minutes")} for n in notes], ensure_ascii=False)


async def _delete_note(args: dict[str, Any], ctx: ToolContext) -> str:
    if not await ctx.notes.delete(*_owner(ctx), args["id"]):
        raise ToolError(f"there is no note {args['id']} of this user")
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
        Tool("save_note", "Save a note for this user, to recall in later conversations.",
             _schema({"text": {"type": "string"}}, ("text",)), _save_note),
        Tool("recall_notes", "This user's saved notes, newest first, optionally only those "
             "containing a word.",
             _schema({"query": {"type": "string", "description": "a word to filter by"}}),
             _recall_notes),
        Tool("delete_note", "Delete one of this user's notes by its id.",
             _schema({"id": {"type": "integer"}}, ("id",)), _delete_note),
        Tool("channel_info", "Where this conversation happens: channel, chat, thread, whether "
             "it is a group, and the user's id and name.", _schema(), _channel_info),
    ])
