"""A real MCP server for the tests, written with the official SDK (``MCPServer``).

Run it from the repository root, over stdio (``python -m tests.fakes.mcp_server``, what
pyclaw's stdio client spawns) or over streamable HTTP on 127.0.0.1 (``--http``), where
it answers only requests that carry ``Authorization: Bearer <token>`` (``--token``), the
way a hosted MCP server checks its API key. Each start writes its pid (and, over HTTP,
its port) to ``--state FILE`` as JSON, so a test can kill the process it talks to and
see the restarted one.

Tools: ``add`` and ``echo`` (plain answers), ``big`` (a long answer, for the output
cap), ``slow`` (sleeps, for the timeout), ``fail`` (an error result), ``die`` (the
process exits in the middle of the call), ``weird.name`` (a name that is not valid
for the LLM providers) and ``secret_echo`` (echoes an environment variable the
client set, so a test can see a secret reached the server and nowhere else).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

__all__ = ["HttpMcpServer", "kill_stdio", "read_state", "stdio_section"]

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.fakes.mcp_server"
"""Run as a module from the repository root: run as a script, ``tests/fakes`` would lead
``sys.path``, and its ``platform.py`` (the platform fakes' kit) would shadow the stdlib's."""

server = MCPServer("pyclaw-fake", instructions="A fake MCP server for pyclaw's tests.")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Echo the text back.")
def echo(text: str) -> str:
    return f"echo: {text}"


@server.tool(description="A long answer of `size` characters.")
def big(size: int) -> str:
    return "x" * size


@server.tool(description="Sleep `seconds`, then answer.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool(description="Always fails with `message`.")
def fail(message: str) -> str:
    raise ValueError(message)


@server.tool(description="The server process exits in the middle of this call.")
def die() -> str:
    os._exit(3)


@server.tool(name="weird.name", description="A tool whose name has a dot.")
def weird() -> str:
    return "weird ok"


@server.tool(description="The value of the environment variable FAKE_MCP_SECRET.")
def secret_echo() -> str:
    return os.environ.get("FAKE_MCP_SECRET", "(unset)")


def _write_state(path: str | None, **values: object) -> None:
    if path:
        tmp = Path(path + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), **values}), "utf-8")
        os.replace(tmp, path)


async def _serve_http(port: int, token: str, state: str | None) -> None:
    import uvicorn
    from starlette.types import ASGIApp, Receive, Scope, Send

    app = server.streamable_http_app()

    def guarded(inner: ASGIApp) -> ASGIApp:
        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                if headers.get(b"authorization") != f"Bearer {token}".encode():
                    await send({"type": "http.response.start", "status": 401,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body",
                                "body": b'{"error": "invalid token"}'})
                    return
            await inner(scope, receive, send)

        return asgi

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    _write_state(state, port=sock.getsockname()[1])
    config = uvicorn.Config(guarded(app), log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])


# ---- for the tests: start, find and kill the server ------------------------------------------
def stdio_section(name: str, state: Path, **extra: Any) -> dict[str, Any]:
    """An ``mcp_servers`` entry that runs this file over stdio."""
    return {"name": name, "command": sys.executable, "cwd": str(ROOT),
            "args": ["-m", MODULE, "--state", str(state)], **extra}


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def kill_stdio(state: Path) -> int:
    """SIGKILL the running stdio server (the crash pyclaw must survive); its pid."""
    info = read_state(state)
    assert info is not None, "the stdio server never started"
    os.kill(info["pid"], signal.SIGKILL)
    return int(info["pid"])


class HttpMcpServer:
    """This file over streamable HTTP in a process of its own: ``kill`` it, ``start`` it again
    on the same port (a hosted server that went away and came back)."""

    def __init__(self, state: Path, token: str) -> None:
        self.state = state
        self.token = token
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self, timeout: float = 20.0) -> None:
        self.state.unlink(missing_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", MODULE, "--http", "--port", str(self.port), "--token",
            self.token, "--state", str(self.state), cwd=ROOT,
            stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while (info := read_state(self.state)) is None:
            if time.monotonic() > deadline or self._process.returncode is not None:
                raise RuntimeError("the HTTP MCP server did not start")
            await asyncio.sleep(0.05)
        self.port = int(info["port"])
        while True:  # listening is not serving: wait until it accepts connections
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        self._process = None

    async def __aenter__(self) -> HttpMcpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            await self.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true", help="streamable HTTP, not stdio")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="")
    parser.add_argument("--state", help="write {pid, port} here on start")
    args = parser.parse_args()
    if args.http:
        asyncio.run(_serve_http(args.port, args.token, args.state))
    else:
        _write_state(args.state)
        server.run("stdio")


if __name__ == "__main__":
    main()
