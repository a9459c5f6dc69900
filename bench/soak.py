"""``python -m bench.soak``: one gateway, the same load again and again — does memory grow?

Issue 7 asks for peak RSS <= 200 MB after 100,000 messages and no growth over a
second identical run. ``python -m bench`` starts fresh processes per run, so it
cannot see growth; here the fakes and the gateway start once and every round
offers the same load to the same process, its journal growing as in real use.
After each round (all replies in) the gateway's resident memory now (VmRSS) and
its peak so far (VmHWM) are read.

Examples::

    python -m bench.soak                                  # 2 rounds of 100,000 msgs, 100 chats
    python -m bench.soak --messages 5000 --rounds 3       # a quick look
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench._proc import Child, python_module
from bench._run import drive, gateway_child
from bench._session import machine_line, run_in_workdir
from bench._stats import percentile
from bench.scenarios import Scenario

__all__ = ["main"]

_log = logging.getLogger("bench.soak")


@dataclass(frozen=True)
class Round:
    number: int
    replied: int
    lost: int
    duplicates: int
    throughput: float
    p50: float
    p99: float
    rss_mb: float
    peak_rss_mb: float
    cpu_per_1k: float


async def soak(scenario: Scenario, rounds: int, workdir: Path, llm_cap: int,
               idle_timeout: float) -> list[Round]:
    """Run ``rounds`` identical loads against one gateway; one ``Round`` per load."""
    children: list[Child] = []
    results: list[Round] = []
    try:
        telegram = Child("fake-telegram", python_module("bench.fake_telegram"),
                         log_path=workdir / "fake_telegram.log")
        children.append(telegram)
        tg_url = f"http://127.0.0.1:{int((await telegram.start()).split()[1])}"
        llm = Child("fake-llm", python_module("bench.fake_llm", "--latency",
                                              str(scenario.llm_latency)),
                    log_path=workdir / "fake_llm.log")
        children.append(llm)
        llm_port = int((await llm.start()).split()[1])
        gateway = gateway_child(workdir, tg_url, llm_port, llm_cap)
        children.append(gateway)
        ready = await gateway.start(timeout=60)
        if "telegram (online)" not in ready:
            raise RuntimeError(f"telegram channel not online: {ready!r}; see {gateway.log_path}")
        replied = duplicates = 0
        async with aiohttp.ClientSession() as session:
            for number in range(1, rounds + 1):
                cpu0 = gateway.cpu_seconds()
                report = await drive(session, tg_url, scenario, idle_timeout, replied)
                cpu = gateway.cpu_seconds() - cpu0
                now_replied = report["replied"] - replied
                now_duplicates = report["duplicates"] + report["unmatched"] - duplicates
                replied, duplicates = report["replied"], duplicates + now_duplicates
                window = max(report["last_reply"] - report["first_inject"], 1e-9)
                added = [ms - scenario.llm_latency * 1000 for ms in report["latencies_ms"]]
                result = Round(number, now_replied, scenario.messages - now_replied,
                               now_duplicates, now_replied / window, percentile(added, 50),
                               percentile(added, 99), gateway.rss_mb(), gateway.peak_rss_mb(),
                               cpu / max(now_replied, 1) * 1000)
                _log.info("round %d: %d replies, %.0f msg/s, RSS %.1f MB (peak %.1f MB)",
                          number, now_replied, result.throughput, result.rss_mb,
                          result.peak_rss_mb)
                results.append(result)
    finally:
        for child in reversed(children):
            await child.stop()
    return results


def render(results: Sequence[Round]) -> str:
    lines = ["| round | replied | lost | dup | msg/s | added p50 ms | p99 ms | RSS after MB "
             "| peak RSS MB | CPU s/1k msg |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.number} | {r.replied:,} | {r.lost} | {r.duplicates} | {r.throughput:,.0f} "
              f"| {r.p50:,.1f} | {r.p99:,.1f} | {r.rss_mb:.1f} | {r.peak_rss_mb:.1f} "
              f"| {r.cpu_per_1k:.2f} |" for r in results]
    if len(results) > 1:
        first, last = results[0], results[-1]
        lines.append("")
        lines.append(f"RSS after the last round minus after the first: "
                     f"{last.rss_mb - first.rss_mb:+.1f} MB; peak {first.peak_rss_mb:.1f} -> "
                     f"{last.peak_rss_mb:.1f} MB")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="messages per round")
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="messages per second offered (default 0: each round is a burst)")
    parser.add_argument("--llm-latency", type=float, default=0.0, help="fake LLM seconds")
    parser.add_argument("--llm-cap", type=int, default=256)
    parser.add_argument("--idle-timeout", type=float, default=15.0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the run directory (config, SQLite, logs) here")
    return parser


async def _main(args: argparse.Namespace, workdir: Path) -> None:
    scenario = Scenario(args.messages, args.chats, args.rate, args.llm_latency)
    print(f"machine: {machine_line()}", flush=True)
    print(f"command: python -m bench.soak {' '.join(sys.argv[1:])}", flush=True)
    results = await soak(scenario, args.rounds, workdir, args.llm_cap, args.idle_timeout)
    print(f"\n{scenario.name}, {args.rounds} rounds against one gateway process\n")
    print(render(results), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    run_in_workdir(lambda workdir: _main(args, workdir), args.workdir, "pyclaw-soak-")


if __name__ == "__main__":
    main()
