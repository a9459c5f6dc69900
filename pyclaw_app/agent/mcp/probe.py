"""Test connection: connect to a server once, list its tools, disconnect."""

from __future__ import annotations

import anyio

from pyclaw_app.agent.mcp._types import McpToolInfo, McpUnavailable
from pyclaw_app.config_mcp import McpServerConfig
from pyclaw_app.secrets import redactor

__all__ = ["probe_server"]


async def probe_server(config: McpServerConfig) -> list[McpToolInfo]:
    """The server's tools, as the model would see them; raises :class:`McpUnavailable`
    with a reason fit for the form (redacted) when it cannot be started or reached.

    A stdio server is started for the test and stopped after it; nothing of a running
    gateway is touched.
    """
    from pyclaw_app.agent.mcp import _client  # the SDK loads only when needed

    missing = config.missing_secrets()
    if missing:
        raise McpUnavailable(f"the secret {missing[0]} is not set")
    try:
        # anyio's timeout, not asyncio's: the SDK stops a stdio server in a shielded scope
        # that a native cancellation can break (the process would be left running).
        with anyio.fail_after(config.connect_timeout):
            async with _client.open_client(config, lambda: None) as client:
                listed = await _client.list_tools(client)
    except TimeoutError as exc:
        raise McpUnavailable(f"no answer within {config.connect_timeout:g} seconds") from exc
    except McpUnavailable as exc:
        raise McpUnavailable(redactor(str(exc))) from exc
    return list(_client.tool_infos(config.name, listed))
