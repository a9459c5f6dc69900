"""``python -m bench streaming``: thousands of conversations whose answers stream at once.

Issue 16's realistic load: a fake LLM that streams every answer over ``--answer-seconds``
(OpenAI-compatible SSE chunks, bench/fake_llm.py ``--stream-seconds``), and
``--conversations`` distinct Telegram chats that each send one message in one burst, so
that the answers are in flight together. The gateway streams replies as Telegram drafts
(one ``sendMessage``, then ``editMessageText`` as the text grows); a reply counts as arrived
when the fake sees the whole answer (its closing words, bench/fake_llm.py ``END_MARK``).

Per run it reports: replies, lost and duplicated; **added latency** (inject -> whole reply
at the fake, minus ``--answer-seconds``) p50/p99; time to the first visible text; msg/s;
the gateway's peak RSS (VmHWM) and CPU; how many answers the fake LLM had in flight at
most and how long its streams really took (its own lag on a busy machine); the gateway's
LLM call latencies and errors from its ``llm_calls`` table; and every line of the
gateway's log (the channel log's lines included) that speaks of a pool, a connection limit,
a time-out or too many open files.

Examples::

    python -m bench streaming                                   # 2,000 x 2 s, 3 runs
    python -m bench streaming --conversations 200 --runs 1      # a quick look
    python -m bench streaming --runs 1 --profile                # + py-spy's hot spots
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sqlite3
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from annotated_types import Le

from bench._proc import Child, python_module
from bench._run import drive, gateway_child
from bench._session import machine_line, run_in_workdir
from bench._stats import percentile
from bench.fake_llm import END_MARK
from bench.profile import load_profile, render_profile
from bench.scenarios import Scenario
from pyclaw_app.config import AgentConfig
from pyclaw_app.store import DB_NAME

__all__ = ["LIMIT_PATTERNS", "StreamRun", "config_llm_cap", "main", "render", "scan_limits"]

_log = logging.getLogger("bench.streaming")

LIMIT_PATTERNS: dict[str, re.Pattern[str]] = {
    "pool": re.compile(r"pool", re.IGNORECASE),
    "connection limit": re.compile(r"connection limit|max_connections|too many connections|"
                                   r"connections? from one address", re.IGNORECASE),
    "time-out": re.compile(r"timed? ?out|timeout", re.IGNORECASE),
    "open files": re.compile(r"too many open files|EMFILE", re.IGNORECASE),
    "database": re.compile(r"database is locked|too many clients|"
                           r"remaining connection slots", re.IGNORECASE),
    "traceback": re.compile(r"Traceback \(most recent call last\)"),
}
"""What, in the gateway's log, says a request failed or waited on a limit:
httpx/httpcore PoolTimeout, aiohttp connector limits and time-outs, EMFILE, SQLite locks and
PostgreSQL's connection slots, and any traceback at all."""


@dataclass(frozen=True)
class StreamRun:
    replied: int
    lost: int
    duplicates: int
    throughput: float
    """Whole replies per second, first injected message to last whole reply."""
    p50: float
    p99: float
    """Added latency in ms: inject -> whole reply at the fake, minus the answer's seconds."""
    first_text_p50: float
    """ms from inject to the first visible text (the draft)."""
    llm_in_flight: int
    """Most answers the fake LLM was streaming at one moment."""
    stream_p99: float
    """ms the fake LLM's slowest 1 % of streams took, against the nominal answer time."""
    llm_call_p99: float
    """ms of the gateway's own LLM calls (``llm_calls.latency_ms``), p99: above the answer
    time is waiting for a connection or a slow stream read."""
    llm_errors: int
    peak_rss_mb: float
    cpu_s: float
    edits: int
    limit_lines: int
    """Gateway log lines matching :data:`LIMIT_PATTERNS` (0 is the aim)."""


def config_llm_cap() -> int | None:
    """The highest ``agent.max_concurrent_llm`` pyclaw_app/config.py accepts (None: no cap)."""
    info = AgentConfig.model_fields["max_concurrent_llm"]
    return next((m.le for m in info.metadata if isinstance(m, Le)), None)


def scan_limits(lines: Sequence[str]) -> Counter[str]:
    """How many of ``lines`` match each of :data:`LIMIT_PATTERNS` (a line may match several)."""
    found: Counter[str] = Counter()
    for line in lines:
        for name, pattern in LIMIT_PATTERNS.items():
            if pattern.search(line):
                found[name] += 1
    return found


async def run_streaming(conversations: int, answer_seconds: float, llm_cap: int,
                        workdir: Path, index: int, idle_timeout: float, *, drafts: bool = True,
                        profile_to: Path | None = None) -> StreamRun:
    """One fresh fake Telegram, fake LLM and gateway; one burst of ``conversations`` chats.
    ``drafts``: the channel's ``stream_replies`` (off: each reply is one ``sendMessage``
    once the answer is whole). ``profile_to``: record the gateway with py-spy (raw
    collapsed stacks) into this file."""
    rundir = workdir / f"streaming-{conversations}-{index}"
    rundir.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(conversations, conversations, 0.0, answer_seconds)
    children: list[Child] = []
    profiler: asyncio.subprocess.Process | None = None
    try:
        telegram = Child("fake-telegram", python_module("bench.fake_telegram", "--final-suffix",
                                                         END_MARK),
                         log_path=rundir / "fake_telegram.log")
        children.append(telegram)
        tg_url = f"http://127.0.0.1:{int((await telegram.start()).split()[1])}"
        llm = Child("fake-llm", python_module("bench.fake_llm", "--stream-seconds",
                                              str(answer_seconds)),
                    log_path=rundir / "fake_llm.log")
        children.append(llm)
        llm_url = f"http://127.0.0.1:{int((await llm.start()).split()[1])}"
        gateway = gateway_child(rundir, tg_url, int(llm_url.rsplit(":", 1)[1]), llm_cap)
        if not drafts:
            _set_stream_replies(rundir / "pyclaw.yaml", False)
        children.append(gateway)
        ready = await gateway.start(timeout=60)
        if "telegram (online)" not in ready:
            raise RuntimeError(f"telegram channel not online: {ready!r}; see {gateway.log_path}")
        if profile_to is not None:
            profiler = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                str(gateway.pid), "--format", "raw", "--rate", "100", "-o", str(profile_to),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # let py-spy attach before the load starts
        cpu0 = gateway.cpu_seconds()
        async with aiohttp.ClientSession() as session:
            # No whole reply can come before the first answer has streamed: wait that too.
            report = await drive(session, tg_url, scenario, idle_timeout + answer_seconds)
            async with session.get(f"{llm_url}/bench/report") as resp:
                resp.raise_for_status()
                llm_report: dict[str, Any] = await resp.json()
        cpu = gateway.cpu_seconds() - cpu0
        rss = gateway.peak_rss_mb()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            await asyncio.wait_for(profiler.wait(), 60)
            profiler = None
        await gateway.stop()
    finally:
        if profiler is not None and profiler.returncode is None:
            profiler.kill()
            await profiler.wait()
        for child in reversed(children):
            await child.stop()
    calls, errors = _llm_calls(rundir / "data" / DB_NAME)
    # The process log has the channel log's lines too (each channel logs to
    # ``pyclaw.channel.<name>`` as well as to the table): reading both would count them twice.
    limits = scan_limits((rundir / "gateway.log").read_text("utf-8", errors="replace")
                         .splitlines())
    for name, count in sorted(limits.items()):
        _log.warning("run %d: %d log line(s) about %s; see %s", index + 1, count, name,
                     rundir / "gateway.log")
    window = max(report["last_reply"] - report["first_inject"], 1e-9)
    added = [ms - answer_seconds * 1000 for ms in report["latencies_ms"]]
    return StreamRun(
        replied=report["replied"], lost=report["injected"] - report["replied"],
        duplicates=report["duplicates"] + report["unmatched"],
        throughput=report["replied"] / window,
        p50=percentile(added, 50), p99=percentile(added, 99),
        first_text_p50=percentile(report["first_text_ms"], 50),
        llm_in_flight=int(llm_report["max_in_flight"]),
        stream_p99=percentile(llm_report["stream_ms"], 99),
        llm_call_p99=percentile(calls, 99), llm_errors=errors,
        peak_rss_mb=rss, cpu_s=cpu, edits=int(report["edits"]),
        limit_lines=sum(limits.values()))


def _set_stream_replies(config_path: Path, on: bool) -> None:
    config = yaml.safe_load(config_path.read_text("utf-8"))
    for channel in config["channels"].values():
        channel["stream_replies"] = on
    config_path.write_text(yaml.safe_dump(config), "utf-8")


def _llm_calls(db_path: Path) -> tuple[list[float], int]:
    """Latencies of the LLM calls that answered, and how many failed (read after the gateway
    stopped: no lock contention)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        calls = [float(ms) for (ms,) in db.execute(
            "SELECT latency_ms FROM llm_calls WHERE error IS NULL")]
        (errors,) = db.execute("SELECT COUNT(*) FROM llm_calls WHERE error IS NOT NULL"
                               ).fetchone()
    return calls, int(errors)


_COLUMNS = {"replied": "replied", "lost": "lost", "duplicates": "dup", "throughput": "msg/s",
            "p50": "added p50 ms", "p99": "added p99 ms", "first_text_p50": "first text p50 ms",
            "llm_in_flight": "LLM in flight max", "stream_p99": "fake LLM stream p99 ms",
            "llm_call_p99": "gateway LLM call p99 ms", "llm_errors": "LLM errors",
            "peak_rss_mb": "peak RSS MB", "cpu_s": "gateway CPU s", "edits": "edits",
            "limit_lines": "pool/limit log lines"}


def median_run(runs: Sequence[StreamRun]) -> StreamRun:
    """Each figure's median over the runs (lost, duplicates, errors and limit lines: summed,
    since one is already too many)."""
    summed = {"lost", "duplicates", "llm_errors", "limit_lines"}
    values: dict[str, Any] = {}
    for f in fields(StreamRun):
        column = [getattr(r, f.name) for r in runs]
        middle = statistics.median(column)
        values[f.name] = sum(column) if f.name in summed else (
            round(middle) if isinstance(column[0], int) else middle)
    return StreamRun(**values)


def render(runs: Sequence[StreamRun]) -> str:
    """One row per run and the median row, as a Markdown table."""
    names = [f.name for f in fields(StreamRun)]
    lines = ["| run | " + " | ".join(_COLUMNS[n] for n in names) + " |",
             "| --- " * (len(names) + 1) + "|"]
    rows = [(str(i + 1), r) for i, r in enumerate(runs)]
    if len(runs) > 1:
        rows.append(("median", median_run(runs)))
    for label, run in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(getattr(run, n)) for n in names) + " |")
    return "\n".join(lines)


def _cell(value: float | int) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench streaming", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=2000,
                        help="distinct chats, one message each, all in one burst (default 2000)")
    parser.add_argument("--answer-seconds", type=float, default=2.0,
                        help="how long the fake LLM streams each answer (default 2)")
    parser.add_argument("--llm-cap", type=int, default=None,
                        help="agent.max_concurrent_llm (default: --conversations, so every "
                             "answer may stream at once, or the config's upper bound if lower)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per run (default 3)")
    parser.add_argument("--idle-timeout", type=float, default=15.0,
                        help="seconds without a new whole reply (beyond --answer-seconds) "
                             "before the rest counts as lost")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the run directories (config, SQLite, logs) here")
    parser.add_argument("--no-drafts", action="store_true",
                        help="stream_replies off: no live draft, each reply one sendMessage "
                             "(what the streaming editor costs)")
    parser.add_argument("--profile", action="store_true",
                        help="record the first run's gateway with py-spy and list its hot spots")
    return parser


async def _main(args: argparse.Namespace, workdir: Path) -> None:
    bound = config_llm_cap()
    cap = args.llm_cap or (min(args.conversations, bound) if bound else args.conversations)
    print(f"machine: {machine_line()}", flush=True)
    print(f"command: python -m bench streaming {' '.join(args.argv)}", flush=True)
    print(f"agent.max_concurrent_llm: {cap} (config accepts up to "
          f"{bound if bound else 'any'})", flush=True)
    runs: list[StreamRun] = []
    for index in range(args.runs):
        profile = workdir / "gateway.pyspy.txt" if args.profile and index == 0 else None
        run = await run_streaming(args.conversations, args.answer_seconds, cap, workdir, index,
                                  args.idle_timeout, drafts=not args.no_drafts,
                                  profile_to=profile)
        _log.info("run %d: %d replied, p50 %.0f ms, p99 %.0f ms added, %d in flight, RSS %.0f MB",
                  index + 1, run.replied, run.p50, run.p99, run.llm_in_flight, run.peak_rss_mb)
        runs.append(run)
    drafts = "replies as one sendMessage" if args.no_drafts else "live drafts edited"
    print(f"\n{args.conversations:,} conversations, answers streamed over "
          f"{args.answer_seconds:g} s, Telegram polling, {drafts}\n")
    print(render(runs), flush=True)
    if args.profile:
        print(f"\nProfile of run 1's gateway under py-spy:\n\n"
              f"{render_profile(load_profile(workdir / 'gateway.pyspy.txt'))}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    run_in_workdir(lambda workdir: _main(args, workdir), args.workdir, "pyclaw-streaming-")


if __name__ == "__main__":
    main()
