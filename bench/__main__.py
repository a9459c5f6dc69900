"""``python -m bench``: run the scenarios against the gateway and the baseline, print a table.

Examples::

    python -m bench --quick                 # ~1 minute, one run each
    python -m bench --runs 3                # issue 7's full plan, medians of 3
    python -m bench --quick --platform both # every scenario on Telegram, then on Slack
    python -m bench --profile               # + one py-spy'd gateway run of the big burst
    python -m bench streaming               # 2,000 conversations streaming 2 s answers at once
                                            # (bench/streaming.py; streaming --help)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bench._run import RunOptions, run_once
from bench._session import machine_line, run_in_workdir
from bench._stats import RunResult, Summary, render_table, summarise
from bench.profile import load_profile, render_profile
from bench.scenarios import PLATFORMS, Scenario, full_plan, quick_plan

__all__ = ["main"]

_log = logging.getLogger("bench")

BASELINES = frozenset({"echo", "durable"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small plan, one run each: finishes in under a minute")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per scenario and target (default 3, quick 1; 0 with --profile "
                             "records the profile only)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="steady load: messages per second offered (default 200)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="steady load: duration (default 30, quick 4)")
    parser.add_argument("--llm-cap", type=int, default=256,
                        help="the gateway's agent.max_concurrent_llm (default 256, so the "
                             "200 ms LLM is not capped at 4/0.2 s = 20 msg/s)")
    parser.add_argument("--platform", choices=[*PLATFORMS, "both"], default="telegram",
                        help="which fake platform carries the load (default telegram); both: "
                             "each scenario on each platform")
    parser.add_argument("--only", default="",
                        help="run only scenarios whose name contains this text")
    parser.add_argument("--baselines", default="echo,durable",
                        help="which baselines run next to the gateway, comma-separated: echo "
                             "(aiohttp echo bot, once per load), durable (aiohttp + SQLite + "
                             "LLM, per scenario); default both")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip both baselines (same as --baselines '')")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite",
                        help="the gateway's store: SQLite in its data directory, or a "
                             "throwaway PostgreSQL cluster this run starts (Debian's "
                             "postgresql; a fresh database per run); both: one after the other")
    parser.add_argument("--instances", type=int, default=1,
                        help="with --store postgres/both: the PostgreSQL gateway as this many "
                             "pyclaw gateway processes sharing the work (storage.shared); "
                             "CPU and RSS are their sums")
    parser.add_argument("--profile", action="store_true",
                        help="after the table, record one gateway run of the largest burst "
                             "with py-spy and list its hot spots")
    parser.add_argument("--idle-timeout", type=float, default=15.0,
                        help="seconds without a new reply before the rest counts as lost")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where run directories (configs, SQLite, logs) go (default: a "
                             "temporary directory, removed afterwards)")
    return parser


def _baselines(text: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = names - BASELINES
    if unknown:
        raise SystemExit(f"unknown baseline(s) {', '.join(sorted(unknown))}; "
                         f"one of {', '.join(sorted(BASELINES))}")
    return names


async def _run_plan(plan: Sequence[Scenario], options: RunOptions, runs: int,
                    baselines: frozenset[str], gateways: Sequence[str]) -> list[Summary]:
    """Each scenario's targets back to back: the echo bot (once per load: it has no LLM to
    be slow), the durable baseline, the gateway."""
    summaries: list[Summary] = []
    baseline_done: set[str] = set()
    for scenario in plan:
        targets = list(gateways)
        if "durable" in baselines:
            targets.insert(0, "durable")
        if "echo" in baselines and scenario.load not in baseline_done:
            targets.insert(0, "baseline")
            baseline_done.add(scenario.load)
        for target in targets:
            results: list[RunResult] = []
            for i in range(runs):
                result = await run_once(scenario, target, options, i)
                _log.info("%s %s run %d: %.0f msg/s, p50 %.1f ms, lost %d", scenario.name,
                          target, i + 1, result.throughput, result.p50, result.lost)
                results.append(result)
            label = scenario.load if target == "baseline" else scenario.name
            summaries.append(summarise(label, target, results))
    return summaries


async def _profile(plan: Sequence[Scenario], options: RunOptions) -> str:
    bursts = [s for s in plan if s.rate <= 0 and s.llm_latency == 0] or list(plan)
    scenario = max(bursts, key=lambda s: s.messages)
    path = options.workdir / "gateway.pyspy.txt"
    profiled = RunOptions(options.workdir, options.llm_cap, options.idle_timeout, path)
    result = await run_once(scenario, "gateway", profiled, 99)
    header = (f"Profile of one gateway run of {scenario.name} under py-spy "
              f"({result.throughput:.0f} msg/s while sampled):")
    return f"{header}\n\n{render_profile(load_profile(path))}"


async def _main(args: argparse.Namespace, workdir: Path) -> None:
    seconds = args.seconds if args.seconds is not None else (4.0 if args.quick else 30.0)
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    make = quick_plan if args.quick else full_plan
    platforms = PLATFORMS if args.platform == "both" else (args.platform,)
    plan = [s for s in make(rate=args.rate, seconds=seconds, platforms=platforms)
            if args.only in s.name]
    gateways = {"sqlite": ["gateway"], "postgres": ["gateway-pg"],
                "both": ["gateway", "gateway-pg"]}[args.store]
    postgres = None
    if "gateway-pg" in gateways:
        from tests.servers.postgres import shared_postgres

        postgres = await shared_postgres()
    options = RunOptions(workdir, args.llm_cap, args.idle_timeout, postgres=postgres,
                         instances=args.instances)
    print(f"machine: {machine_line()}", flush=True)
    print(f"command: python -m bench {' '.join(sys.argv[1:])}", flush=True)
    if runs > 0:
        baselines = frozenset() if args.no_baseline else _baselines(args.baselines)
        summaries = await _run_plan(plan, options, runs, baselines, gateways)
        print()
        print(render_table(summaries), flush=True)
    if args.profile:
        print()
        print(await _profile(plan, options), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["streaming"]:
        from bench.streaming import main as streaming

        streaming(argv[1:])
        return
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    run_in_workdir(lambda workdir: _main(args, workdir), args.workdir, "pyclaw-bench-")


if __name__ == "__main__":
    main()
