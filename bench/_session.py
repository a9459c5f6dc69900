"""What each benchmark command does around its measurement: name the machine, and
give the run a directory (kept when asked for, else temporary)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["machine_line", "run_in_workdir"]


def machine_line() -> str:
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
    total = next((ln.split()[1] for ln in memory.splitlines() if ln.startswith("Mem:")), "?")
    return (f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; nproc {os.cpu_count()}; "
            f"memory {total}; Python {platform.python_version()}; {platform.platform()}")


def run_in_workdir(main: Callable[[Path], Awaitable[None]], workdir: Path | None,
                   prefix: str) -> None:
    """Run ``main(dir)`` on asyncio: in ``workdir`` (created, kept: configs, SQLite and logs
    stay for a post-mortem), or in a temporary directory removed afterwards."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(workdir))
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        asyncio.run(main(Path(tmp)))
