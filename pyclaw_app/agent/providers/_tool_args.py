"""Tool arguments arrive as JSON text streamed in pieces; both providers parse them here."""

from __future__ import annotations

import json

from pyclaw_app.agent.providers.base import ToolCall

__all__ = ["parse_tool_call"]


def parse_tool_call(call_id: str, name: str, raw: str) -> ToolCall:
    """A ToolCall from the accumulated JSON; a bad payload is kept as an error, not raised."""
    if not raw.strip():
        return ToolCall(call_id, name, {})
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ToolCall(call_id, name, {}, error=f"arguments are not valid JSON ({exc.msg})")
    if not isinstance(value, dict):
        return ToolCall(call_id, name, {}, error="arguments must be a JSON object")
    return ToolCall(call_id, name, value)
