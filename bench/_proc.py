"""Child processes of a benchmark run, and what ``/proc`` says about them.

psutil is not a dependency, so CPU time comes from ``/proc/<pid>/stat``
(utime + stime, in clock ticks) and peak memory from ``VmHWM`` in
``/proc/<pid>/status`` — the kernel's high-water mark of the resident set,
which is what "peak RSS" means and needs no sampling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Child", "clean_env", "cpu_seconds", "peak_rss_mb", "python_module",
           "tree_cpu_seconds"]

_log = logging.getLogger(__name__)

_TICKS = os.sysconf("SC_CLK_TCK")
_REPO = str(Path(__file__).resolve().parent.parent)
"""Children run from the repository root so ``-m bench.*`` and ``-m pyclaw_app.*`` import."""
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
               "all_proxy")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its live children and the children it has reaped: a server
    that forks a process per connection (PostgreSQL) is all of them."""
    total = 0.0
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:  # ppid
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return total + sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICKS


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) in MiB."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS) in MiB."""
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without proxy variables (everything talks to 127.0.0.1)."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env.update(extra or {})
    return env


class Child:
    """One child process that prints a line containing ``ready`` once it serves.

    Its stdout is read until that line (and drained afterwards so the pipe never
    fills); stderr goes to ``log_path`` for post-mortems.
    """

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path,
                 env: Mapping[str, str] | None = None, ready: str = "READY") -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else clean_env()
        self.ready_marker = ready
        self.ready_line = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    async def start(self, timeout: float = 30.0) -> str:
        """Start the process; returns its ready line."""
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=log, env=self.env,
                cwd=_REPO)
        try:
            self.ready_line = await asyncio.wait_for(self._wait_ready(), timeout)
        except (TimeoutError, EOFError) as exc:
            await self.stop()
            raise RuntimeError(f"{self.name} did not start; see {self.log_path}") from exc
        self._drain = asyncio.create_task(self._drain_stdout(), name=f"bench:{self.name}:stdout")
        return self.ready_line

    async def _wait_ready(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            raw = await self._proc.stdout.readline()
            if not raw:
                raise EOFError
            line = raw.decode(errors="replace").strip()
            if self.ready_marker in line:
                return line

    async def _drain_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while await self._proc.stdout.readline():
            pass

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                _log.warning("%s ignored SIGTERM; killing it", self.name)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
            self._drain = None
        return proc.returncode


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``module`` with this interpreter (the project's venv)."""
    return [sys.executable, "-m", module, *args]
