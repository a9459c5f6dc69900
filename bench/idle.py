"""``python -m bench.idle``: what an idle ``pyclaw gateway`` costs: memory, start time, imports.

Starts ``pyclaw gateway`` with the local channel and one Telegram channel
(polling the benchmark's fake Bot API) and one provider (``--provider``:
OpenAI-compatible by default), and reads, per run:

- **ready**: seconds from spawning the process to its "pyclaw gateway running"
  line (wall clock: grows with the machine's load), and the process's own CPU
  seconds up to then (steadier under load: it is what the start costs);
- **RSS**: the resident set (VmRSS) after it has idled ``--settle`` seconds.

With ``--importtime`` one more run goes under ``python -X importtime`` and the
top-level packages are listed by the cumulative import time they cost, which
says what to make lazy next.

Example::

    python -m bench.idle --runs 3 --importtime
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench._proc import Child, clean_env, python_module
from bench._session import machine_line, run_in_workdir
from tests.fakes.telegram_api import DEFAULT_TOKEN

__all__ = ["IdleRun", "idle_config", "main", "top_imports"]

_log = logging.getLogger("bench.idle")


@dataclass(frozen=True)
class IdleRun:
    ready_s: float
    ready_cpu_s: float
    rss_mb: float


def idle_config(fake_url: str, provider: str) -> dict[str, object]:
    """Local + one Telegram channel, and one provider of kind ``provider`` ("none": the
    built-in offline answers). Nothing calls the provider while idle."""
    providers = [] if provider == "none" else [
        {"name": "fake", "kind": provider, "base_url": "http://127.0.0.1:9/v1",
         "model": "fake-model", "max_retries": 0}]
    return {
        "providers": providers,
        "channels": {
            "local": {"type": "local"},
            "telegram": {"type": "telegram", "base_url": f"{fake_url}/bot",
                         "base_file_url": f"{fake_url}/file/bot", "poll_timeout": 1},
        },
    }


async def _one(workdir: Path, index: int, settle: float, provider: str, *,
               importtime: bool = False) -> tuple[IdleRun, Path]:
    rundir = workdir / f"idle-{index}"
    rundir.mkdir(parents=True, exist_ok=True)
    fake = Child("fake-telegram", python_module("bench.fake_telegram"),
                 log_path=rundir / "fake_telegram.log")
    gateway: Child | None = None
    try:
        fake_url = f"http://127.0.0.1:{int((await fake.start()).split()[1])}"
        config = rundir / "pyclaw.yaml"
        config.write_text(yaml.safe_dump(idle_config(fake_url, provider)), "utf-8")
        argv = python_module("cli", "gateway", "--config", str(config),
                             "--data-dir", str(rundir / "data"))
        if importtime:
            argv.insert(1, "-Ximporttime")
        gateway = Child("gateway", argv, log_path=rundir / "gateway.log",
                        env=clean_env({"PYCLAW_TELEGRAM_TOKEN": DEFAULT_TOKEN,
                                       "PYCLAW_SECRETS": "file"}),
                        ready="pyclaw gateway running")
        start = time.monotonic()
        ready = await gateway.start(timeout=60)
        ready_s = time.monotonic() - start
        ready_cpu = gateway.cpu_seconds()
        if "telegram (online)" not in ready:
            raise RuntimeError(f"telegram channel not online: {ready!r}; see {gateway.log_path}")
        await asyncio.sleep(settle)
        return IdleRun(ready_s, ready_cpu, gateway.rss_mb()), gateway.log_path
    finally:
        if gateway is not None:
            await gateway.stop()
        await fake.stop()


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+\d+ \| *(\S+)")


def top_imports(log_text: str, count: int) -> list[tuple[str, float, int]]:
    """Top-level packages by the import time of their own modules (self time, ms, summed
    over every module of the package), with the number of modules, from ``-X importtime``
    output: what loading that package costs, wherever the import came from."""
    totals: dict[str, tuple[float, int]] = {}
    for line in log_text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match is None:
            continue
        package = match.group(2).split(".")[0]
        ms, modules = totals.get(package, (0.0, 0))
        totals[package] = (ms + int(match.group(1)) / 1000, modules + 1)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:count]
    return [(package, ms, modules) for package, (ms, modules) in ranked]


async def _main(args: argparse.Namespace, workdir: Path) -> None:
    print(f"machine: {machine_line()}", flush=True)
    print(f"command: python -m bench.idle {' '.join(sys.argv[1:])}\n", flush=True)
    runs = []
    for i in range(args.runs):
        run, _ = await _one(workdir, i, args.settle, args.provider)
        _log.info("run %d: ready %.2f s (CPU %.2f s), RSS %.1f MB", i + 1, run.ready_s,
                  run.ready_cpu_s, run.rss_mb)
        runs.append(run)
    if runs:
        print("| runs | ready s (median, min-max) | CPU s to ready | RSS MB idle |")
        print("| --- | --- | --- | --- |")
        ready = [r.ready_s for r in runs]
        print(f"| {len(runs)} | {statistics.median(ready):.2f} ({min(ready):.2f}-{max(ready):.2f})"
              f" | {statistics.median(r.ready_cpu_s for r in runs):.2f}"
              f" | {statistics.median(r.rss_mb for r in runs):.1f} |")
    if args.importtime:
        _, log = await _one(workdir, 99, 0.0, args.provider, importtime=True)
        print("\nPackages by their own import time (-X importtime, one run):\n")
        print("| package | ms | modules |")
        print("| --- | --- | --- |")
        for package, ms, modules in top_imports(log.read_text("utf-8", errors="replace"),
                                                args.top):
            print(f"| {package} | {ms:,.0f} | {modules} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds idle after ready before RSS is read")
    parser.add_argument("--provider", choices=["openai", "anthropic", "none"], default="openai",
                        help="the one provider configured (default openai; none: offline)")
    parser.add_argument("--importtime", action="store_true",
                        help="one more run under -X importtime; list the costliest packages")
    parser.add_argument("--top", type=int, default=20, help="packages listed with --importtime")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep configs and logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    run_in_workdir(lambda workdir: _main(args, workdir), args.workdir, "pyclaw-idle-")


if __name__ == "__main__":
    main()
