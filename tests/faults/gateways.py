"""``pyclaw gateway`` processes on one PostgreSQL, for the tests that SIGKILL them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import psycopg

from tests.faults.test_faults import GATEWAY_READY, REPO
from tests.servers.postgres import PASSWORD

__all__ = ["rows", "spawn"]


async def spawn(config: Path, data: Path) -> tuple[asyncio.subprocess.Process, asyncio.Event]:
    """A gateway process and an event set when it says it runs (at once, or when it takes
    over); its password comes from the environment, as in a container."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "gateway", "--config", str(config), "--data-dir",
        str(data), cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYCLAW_STORAGE_PASSWORD": PASSWORD})
    running = asyncio.Event()

    async def watch() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            if GATEWAY_READY in line.decode():
                running.set()

    asyncio.get_running_loop().create_task(watch())
    return proc, running


def rows(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """What ``sql`` reads from the gateways' database, on a connection of its own."""
    with psycopg.connect(url, password=PASSWORD) as conn:
        return conn.execute(sql, params or None).fetchall()  # type: ignore[arg-type]
