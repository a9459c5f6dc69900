"""The names the model sees for MCP tools: ``<server>__<tool>``, valid for every provider.

OpenAI and Anthropic both take ``^[a-zA-Z0-9_-]{1,64}$``; MCP allows longer names
and dots, slashes and other characters. A name that fits is kept readable; one that
does not is cleaned and cut, with a short hash of the original so two tools never
end up with the same name. Built-in tools never contain ``__``, and server names
cannot (``config_mcp.SERVER_NAME``), so no MCP tool can shadow a built-in one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = ["MAX_NAME", "SEPARATOR", "exposed_names", "valid_name"]

MAX_NAME = 64
SEPARATOR = "__"
_VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_HASH = 8


def valid_name(name: str) -> bool:
    return bool(_VALID.match(name))


def exposed_names(server: str, tools: Iterable[str]) -> dict[str, str]:
    """The model's name for each of ``server``'s tools (server's name -> model's name).

    Deterministic (the same list gives the same names after a restart, so a conversation
    that used a tool can use it again) and collision-free within the server.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for tool in tools:
        if tool in out:
            continue
        name = f"{server}{SEPARATOR}{tool}"
        salt = 0
        while not valid_name(name) or name in taken:
            name = _hashed(server, tool + "#" * salt)
            salt += 1
        out[tool] = name
        taken.add(name)
    return out


def _hashed(server: str, tool: str) -> str:
    digest = hashlib.sha256(tool.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH]
    room = MAX_NAME - len(server) - len(SEPARATOR) - 1 - _HASH
    cleaned = _INVALID_CHARS.sub("_", tool)[:max(room, 0)]
    return f"{server}{SEPARATOR}{cleaned}_{digest}" if cleaned else \
        f"{server}{SEPARATOR}{digest}"
