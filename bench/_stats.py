"""Numbers of one run, medians over runs, and the results table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, fields

__all__ = ["RunResult", "Summary", "percentile", "render_table", "summarise"]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class RunResult:
    """One run of one scenario against one target (gateway or baseline)."""

    throughput: float
    """Replies per second, from the first injected message to the last reply."""
    p50: float
    p95: float
    p99: float
    """Added latency in ms: inject -> reply seen at the fake, minus the fake LLM's latency."""
    injected: int
    lost: int
    duplicates: int
    peak_rss_mb: float
    cpu_per_1k: float
    """CPU seconds (user + system) of the target per 1,000 replies, during the load only."""
    journal_rows_per_s: float
    """Rows inserted into ``messages`` (in + out) per second of the load; 0 for the baseline."""
    fake_cpu_pct: float
    """CPU of the fake platform process (Telegram or Slack) over the load, in % of one core
    (100 = saturated)."""
    store_cpu_per_1k: float = math.nan
    """CPU seconds of the PostgreSQL server (all its processes) per 1,000 replies; NaN for
    the SQLite gateway, whose store is the gateway process itself."""


@dataclass(frozen=True)
class Summary:
    scenario: str
    target: str
    runs: int
    result: RunResult
    """Medians over the runs, except lost and duplicates (summed) and peak RSS (max)."""


def summarise(scenario: str, target: str, runs: Sequence[RunResult]) -> Summary:
    def med(name: str) -> float:
        return statistics.median(getattr(r, name) for r in runs)

    values: dict[str, float | int] = {f.name: med(f.name) for f in fields(RunResult)}
    values["lost"] = sum(r.lost for r in runs)
    values["duplicates"] = sum(r.duplicates for r in runs)
    values["injected"] = sum(r.injected for r in runs)
    values["peak_rss_mb"] = max(r.peak_rss_mb for r in runs)
    return Summary(scenario, target, len(runs), RunResult(**values))  # type: ignore[arg-type]


_HEADER = ("scenario", "target", "runs", "msg/s", "added p50 ms", "p95 ms", "p99 ms",
           "lost", "dup", "peak RSS MB", "CPU s/1k msg", "store CPU s/1k msg", "journal rows/s",
           "fake platform CPU %")


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


_TARGET_NAMES = {"baseline": "echo baseline", "durable": "durable baseline",
                 "gateway-pg": "gateway on PostgreSQL"}


def render_table(summaries: Sequence[Summary]) -> str:
    """A Markdown table (readable as is in a terminal), then the gateway against the durable
    baseline and the echo baseline of the same run."""
    rows = [_HEADER, tuple("---" for _ in _HEADER)]
    for s in summaries:
        r = s.result
        rows.append((s.scenario, _TARGET_NAMES.get(s.target, s.target), str(s.runs),
                     _fmt(r.throughput, 0), _fmt(r.p50), _fmt(r.p95), _fmt(r.p99),
                     f"{r.lost}/{r.injected}", str(r.duplicates), _fmt(r.peak_rss_mb),
                     _fmt(r.cpu_per_1k, 2), _fmt(r.store_cpu_per_1k, 2),
                     _fmt(r.journal_rows_per_s, 0),
                     _fmt(r.fake_cpu_pct, 0)))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    comparisons = _comparisons(summaries)
    if comparisons:
        lines += ["", "| scenario | gateway msg/s | durable msg/s | gateway/durable | echo msg/s "
                  "| gateway/echo | CPU ms/msg gateway | durable | echo | gateway/durable CPU |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(row) + " |" for row in comparisons]
    return "\n".join(lines)


def _comparisons(summaries: Sequence[Summary]) -> list[tuple[str, ...]]:
    """One row per gateway scenario that has a baseline: the durable baseline ran the same
    scenario (same LLM latency), the echo baseline the same load (it has no LLM)."""
    echo = {s.scenario: s.result for s in summaries if s.target == "baseline"}
    durable = {s.scenario: s.result for s in summaries if s.target == "durable"}
    out = []
    for s in summaries:
        if s.target != "gateway":
            continue
        d, e = durable.get(s.scenario), echo.get(s.scenario.split(" llm=")[0])
        if d is None and e is None:
            continue
        gw = s.result
        out.append((s.scenario, _fmt(gw.throughput, 0),
                    _fmt(d.throughput, 0) if d else "-", _ratio(gw.throughput, d, "throughput"),
                    _fmt(e.throughput, 0) if e else "-", _ratio(gw.throughput, e, "throughput"),
                    _fmt(gw.cpu_per_1k, 2), _fmt(d.cpu_per_1k, 2) if d else "-",
                    _fmt(e.cpu_per_1k, 2) if e else "-",
                    _ratio(gw.cpu_per_1k, d, "cpu_per_1k", times=True)))
    return out


def _ratio(value: float, base: RunResult | None, name: str, *, times: bool = False) -> str:
    """``value`` over the baseline's figure: a percentage, or a factor with ``times``."""
    denominator = getattr(base, name) if base is not None else math.nan
    if not denominator or math.isnan(denominator) or math.isnan(value):
        return "-"
    return f"{value / denominator:.1f}x" if times else f"{value / denominator:.0%}"
