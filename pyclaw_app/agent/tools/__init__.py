"""Tools the model may call: a registry and the built-ins that need no internet."""

from __future__ import annotations

from pyclaw_app.agent.tools.builtin import builtin_tools
from pyclaw_app.agent.tools.calculator import CalculatorError, calculate
from pyclaw_app.agent.tools.notes import Note, Notes, NoteScope, NotesStore
from pyclaw_app.agent.tools.registry import Tool, ToolContext, ToolError, ToolRegistry, ToolResult

__all__ = ["CalculatorError", "Note", "NoteScope", "Notes", "NotesStore", "Tool", "ToolContext",
           "ToolError", "ToolRegistry", "ToolResult", "builtin_tools", "calculate"]
