"""MCP tools: servers started or reached with the official SDK, their tools offered to the
model beside the built-in ones, supervised and restarted on the shared backoff."""

from pyclaw_app.agent.mcp._types import (
    McpConnectionLost,
    McpServerState,
    McpServerStatus,
    McpToolInfo,
    McpUnavailable,
)
from pyclaw_app.agent.mcp.form import config_from_form
from pyclaw_app.agent.mcp.manager import McpManager
from pyclaw_app.agent.mcp.probe import probe_server
from pyclaw_app.agent.mcp.server import McpServer
from pyclaw_app.config_mcp import McpServerConfig

__all__ = ["McpConnectionLost", "McpManager", "McpServer", "McpServerConfig", "McpServerState",
           "McpServerStatus", "McpToolInfo", "McpUnavailable", "config_from_form", "probe_server"]
