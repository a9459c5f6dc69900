"""One run: start the processes, offer the load, wait for the replies, read the meters.

Each run gets fresh processes and a fresh data directory, so no run pays for
(or profits from) the one before it; startup is outside the measured window,
which opens at the first injected message and closes at the last reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench._proc import Child, clean_env, python_module, tree_cpu_seconds
from bench._stats import RunResult, percentile
from bench.fake_slack import APP_TOKEN, BOT_TOKEN
from bench.scenarios import PLATFORMS, Scenario
from pyclaw_app.store import DB_NAME
from tests.fakes.telegram_api import DEFAULT_TOKEN
from tests.servers.postgres import PASSWORD as PG_PASSWORD
from tests.servers.postgres import Postgres

__all__ = ["RunOptions", "drive", "gateway_child", "run_once"]

_log = logging.getLogger(__name__)

POLL = 0.25


@dataclass(frozen=True)
class RunOptions:
    workdir: Path
    llm_cap: int
    """agent.max_concurrent_llm for the gateway."""
    idle_timeout: float
    """Give up waiting when no reply arrived for this long; what is missing counts as lost."""
    profile_to: Path | None = None
    """Record the gateway with py-spy (raw collapsed stacks) into this file."""
    postgres: Postgres | None = None
    """The PostgreSQL server the ``gateway-pg`` target stores on (a fresh database per run)."""
    instances: int = 1
    """``gateway-pg`` as this many ``pyclaw gateway`` processes sharing the work
    (``storage.shared``): one receives, all answer; CPU and RSS are their sums."""


TARGETS = ("baseline", "durable", "gateway", "gateway-pg")
"""The echo baseline, the durable baseline (bench/durable.py) and ``pyclaw gateway``, on
SQLite or on PostgreSQL."""


async def run_once(scenario: Scenario, target: str, options: RunOptions, index: int) -> RunResult:
    """Run ``scenario`` once against ``target`` (one of TARGETS) on its platform."""
    platform = scenario.platform
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; one of {', '.join(PLATFORMS)}")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; one of {', '.join(TARGETS)}")
    rundir = options.workdir / f"{target}-{_slug(scenario.name)}-{index}"
    rundir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    profiler: asyncio.subprocess.Process | None = None
    try:
        fake = Child(f"fake-{platform}", python_module(f"bench.fake_{platform}"),
                     log_path=rundir / f"fake_{platform}.log")
        children.append(fake)
        fake_url = f"http://127.0.0.1:{int((await fake.start()).split()[1])}"
        if target == "baseline":
            bots = [Child("baseline", _baseline_argv(platform, fake_url),
                          log_path=rundir / "baseline.log")]
        else:
            llm = Child("fake-llm", python_module("bench.fake_llm", "--latency",
                                                  str(scenario.llm_latency)),
                        log_path=rundir / "fake_llm.log")
            children.append(llm)
            llm_port = int((await llm.start()).split()[1])
            if target in ("gateway", "gateway-pg"):
                if target == "gateway-pg" and options.postgres is None:
                    raise ValueError("the gateway-pg target needs a PostgreSQL server")
                storage_url = options.postgres.new_database() if target == "gateway-pg" \
                    and options.postgres else None
                count = options.instances if target == "gateway-pg" else 1
                bots = [gateway_child(rundir / f"instance-{n}" if count > 1 else rundir,
                                      fake_url, llm_port, options.llm_cap, platform=platform,
                                      storage_url=storage_url, shared=count > 1)
                        for n in range(count)]
            else:
                durable = ["--llm", f"http://127.0.0.1:{llm_port}/v1",
                           "--db", str(rundir / "durable.sqlite3")]
                bots = [Child("durable", [*_baseline_argv(platform, fake_url), *durable],
                              log_path=rundir / "durable.log")]
        children.extend(bots)
        for bot in bots:
            ready = await bot.start(timeout=60)
            if target.startswith("gateway") and f"{platform} (online)" not in ready:
                raise RuntimeError(f"{platform} channel not online: {ready!r}; "
                                   f"see {bot.log_path}")
        bot = bots[0]
        if options.profile_to is not None:
            profiler = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(bot.pid),
                "--format", "raw", "--rate", "100", "-o", str(options.profile_to),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # let py-spy attach before the load starts
        server_pid = options.postgres.process.pid if target == "gateway-pg" and \
            options.postgres and options.postgres.process else None
        store_cpu0 = tree_cpu_seconds(server_pid) if server_pid else 0.0
        bot_cpu0, fake_cpu0 = sum(b.cpu_seconds() for b in bots), fake.cpu_seconds()
        async with aiohttp.ClientSession() as session:
            report = await drive(session, fake_url, scenario, options.idle_timeout)
        bot_cpu = sum(b.cpu_seconds() for b in bots) - bot_cpu0
        fake_cpu = fake.cpu_seconds() - fake_cpu0
        store_cpu = tree_cpu_seconds(server_pid) - store_cpu0 if server_pid else math.nan
        rss = sum(b.peak_rss_mb() for b in bots)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            await asyncio.wait_for(profiler.wait(), 60)
            profiler = None
        for b in bots:
            await b.stop()
        rows = (_journal_rows(rundir / "data" / DB_NAME) if target == "gateway" else
                _pg_journal_rows(storage_url) if target == "gateway-pg" and storage_url else
                _journal_rows(rundir / "durable.sqlite3") if target == "durable" else 0)
        if report.get("ack_max_ms") is not None:
            _log.info("%s %s: Socket Mode acks p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d later "
                      "than Slack's 3 s; %d unacked; %d connection(s)",
                      scenario.load if target == "baseline" else scenario.name, target,
                      report["ack_p50_ms"], report["ack_p99_ms"], report["ack_max_ms"],
                      report["acks_late"], report["unacked"], report["connections"])
    finally:
        if profiler is not None and profiler.returncode is None:
            profiler.kill()
            await profiler.wait()
        for child in reversed(children):
            await child.stop()
    window = max(report["last_reply"] - report["first_inject"], 1e-9)
    replied = report["replied"]
    added = [ms - scenario.llm_latency * 1000 for ms in report["latencies_ms"]]
    if target == "baseline":
        added = report["latencies_ms"]
    return RunResult(
        throughput=replied / window,
        p50=percentile(added, 50), p95=percentile(added, 95), p99=percentile(added, 99),
        injected=report["injected"], lost=report["injected"] - replied,
        duplicates=report["duplicates"] + report["unmatched"],
        peak_rss_mb=rss, cpu_per_1k=bot_cpu / max(replied, 1) * 1000,
        journal_rows_per_s=rows / window, fake_cpu_pct=fake_cpu / window * 100,
        store_cpu_per_1k=store_cpu / max(replied, 1) * 1000)


def gateway_child(rundir: Path, fake_url: str, llm_port: int, llm_cap: int, *,
                  platform: str = "telegram", storage_url: str | None = None,
                  shared: bool = False) -> Child:
    """``pyclaw gateway`` with one channel, named after ``platform``, on the fake at ``fake_url``.

    Tokens go in by environment (``PYCLAW_<CHANNEL>_<FIELD>``, as pyclaw_app/config.py
    reads them), never into the YAML; ``PYCLAW_SECRETS=file`` keeps the desktop keyring out.
    """
    config = {
        "agent": {"max_concurrent_llm": llm_cap},
        "providers": [{"name": "fake", "base_url": f"http://127.0.0.1:{llm_port}/v1",
                       "model": "fake-model", "max_retries": 0, "timeout": 30}],
        "channels": {platform: _channel_config(platform, fake_url)},
    }
    secrets = {**_channel_secrets(platform), "PYCLAW_SECRETS": "file"}
    if storage_url is not None:
        config["storage"] = {"url": storage_url, "shared": shared}
        secrets["PYCLAW_STORAGE_PASSWORD"] = PG_PASSWORD
    rundir.mkdir(parents=True, exist_ok=True)
    path = rundir / "pyclaw.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    env = clean_env(secrets)
    argv = python_module("cli", "gateway", "--config", str(path),
                         "--data-dir", str(rundir / "data"))
    return Child("gateway", argv, log_path=rundir / "gateway.log", env=env,
                 ready="pyclaw gateway running")


def _channel_config(platform: str, fake_url: str) -> dict[str, Any]:
    """Open to anyone and unthrottled: the load comes from many senders at full speed."""
    common = {"dm_policy": "open", "rate_limit_per_minute": 0}
    if platform == "slack":
        # bench.fake_slack sends DMs, which Slack channels answer without an @mention.
        return {"type": "slack", "mode": "socket", "base_url": f"{fake_url}/api/", **common}
    return {"type": "telegram", "base_url": f"{fake_url}/bot",
            "base_file_url": f"{fake_url}/file/bot", "poll_timeout": 1, **common}


def _channel_secrets(platform: str) -> dict[str, str]:
    if platform == "slack":
        return {"PYCLAW_SLACK_BOT_TOKEN": BOT_TOKEN, "PYCLAW_SLACK_APP_TOKEN": APP_TOKEN}
    return {"PYCLAW_TELEGRAM_TOKEN": DEFAULT_TOKEN}


def _baseline_argv(platform: str, fake_url: str) -> list[str]:
    if platform == "slack":
        return python_module("bench.baseline_bot_slack", "--api", f"{fake_url}/api/",
                             "--app-token", APP_TOKEN, "--bot-token", BOT_TOKEN)
    return python_module("bench.baseline_bot", "--api", f"{fake_url}/bot{DEFAULT_TOKEN}")


async def drive(session: aiohttp.ClientSession, url: str, scenario: Scenario,
                idle_timeout: float, replied_before: int = 0) -> dict[str, Any]:
    """Offer the load, then wait until every message has its reply or replies stop coming.

    ``replied_before``: replies the fake already counted (a soak's earlier rounds).
    The report's counts are cumulative; its latencies are those of this load only.
    """
    plan = {"messages": scenario.messages, "chats": scenario.chats, "rate": scenario.rate}
    async with session.post(f"{url}/bench/load", json=plan) as resp:
        resp.raise_for_status()
    replied, progress = -1, time.monotonic()
    while True:
        await asyncio.sleep(POLL)
        report = await _report(session, url, latencies=False)
        if report["replied"] != replied:
            replied, progress = report["replied"], time.monotonic()
        if not report["injecting"] and replied >= replied_before + scenario.messages:
            break
        if report["injecting"]:
            progress = time.monotonic()
        elif time.monotonic() - progress > idle_timeout:
            _log.warning("%s: %d of %d replies after %.0fs without progress", scenario.name,
                         replied, scenario.messages, idle_timeout)
            break
    await asyncio.sleep(1.0)  # a duplicate would arrive right behind the original
    return await _report(session, url)


async def _report(session: aiohttp.ClientSession, url: str,
                  latencies: bool = True) -> dict[str, Any]:
    """The fake's counters; the per-message latencies (large) only when asked for."""
    query = "" if latencies else "?latencies=0"
    async with session.get(f"{url}/bench/report{query}") as resp:
        resp.raise_for_status()
        report: dict[str, Any] = await resp.json()
    return report


def _journal_rows(db_path: Path) -> int:
    """Rows the bot wrote to its journal (read after it stopped: no lock contention)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    return int(count)


def _pg_journal_rows(url: str) -> int:
    import psycopg

    with psycopg.connect(url, password=PG_PASSWORD) as conn:
        row = conn.execute("SELECT COUNT(*) FROM messages").fetchone()
    return int(row[0]) if row else 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()
