"""UI benchmark (issue 7): the dashboard in Flet web mode, in Chromium, under ~200 msg/s.

Usage (from the repository root)::

    .venv/bin/python -m bench.ui_bench                      # 200 msg/s for 20 s, one run
    .venv/bin/python -m bench.ui_bench --runs 3 --rate 200 --seconds 30
    .venv/bin/python -m bench.ui_bench --help

Two processes. The *server* (this module with ``--serve``) runs the real views
(``views.app.make_main``) in Flet web mode on an in-memory control plane,
and floods it from inside the process: per message the events the gateway
emits (received, processing, llm.call, reply.sent), a slice of them on the
local chat, a log line now and then. The *driver* opens the page in Debian's
Chromium (Playwright), keeps it on the Dashboard and counts animation frames.

What is timed, per event batch the live loop hands to the views: the time all
panels take in ``apply`` (the batch applied to controls) and the one
``page.update()`` that follows (diff + send). The server measures them by
giving the app a LiveSession whose panels and refresh callback are wrapped
with timers; live.py and state.py are unchanged. Rows held are counted every
tenth batch, outside the timed part: every ListView's rows, per view.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--enable-unsafe-swiftshader"]
TARGET_MS = 10.0


# -- server side ------------------------------------------------------------------------------


@dataclass
class _Recorder:
    """Batch timings, written as JSON lines to ``out`` while the flood runs."""

    out: Any
    active: bool = False
    events: int | None = None
    apply_s: dict[str, float] = field(default_factory=dict)
    batches: int = 0
    rows: Callable[[], dict[str, int]] | None = None
    dropped: Callable[[], int] | None = None

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def applied(self, view: str, events: int, seconds: float) -> None:
        self.events = events
        self.apply_s[view] = self.apply_s.get(view, 0.0) + seconds

    def updated(self, seconds: float) -> None:
        if self.events is None:
            return  # the refresh after a snapshot load, not a batch
        if self.active:
            self.batches += 1
            record: dict[str, Any] = {
                "events": self.events,
                "apply_ms": sum(self.apply_s.values()) * 1000,
                "update_ms": seconds * 1000,
                "views_ms": {k: v * 1000 for k, v in self.apply_s.items()},
            }
            if self.batches % 10 == 1 and self.rows is not None:
                record["rows"] = self.rows()
            self.write(record)
        self.events = None
        self.apply_s = {}


def _listview_rows(control: Any, seen: set[int] | None = None) -> int:
    """Rows held in every ListView under ``control`` (not descending into the rows)."""
    import flet as ft

    seen = set() if seen is None else seen
    if control is None or id(control) in seen:
        return 0
    seen.add(id(control))
    if isinstance(control, ft.ListView):
        return len(control.controls)
    total = 0
    for child in getattr(control, "controls", None) or []:
        total += _listview_rows(child, seen)
    content = getattr(control, "content", None)
    if isinstance(content, ft.Control):
        total += _listview_rows(content, seen)
    return total


def _serve(port: int, rate: float, seconds: float, warmup: float, out_path: Path) -> None:
    import flet as ft

    import views.app
    from pyclaw_app.control import ChannelStatus, SettingsForm, UsageRow
    from pyclaw_app.model import Event, EventKind
    from tests.ui.fake_admin_plane import FakeAdminPlane
    from views.app import ASSETS_DIR, make_main
    from views.live import LiveSession

    class BenchPlane(FakeAdminPlane):
        """The admin fake plus usage and settings, so every view loads as in the real app."""

        async def usage(self, *, since: float | None = None, until: float | None = None,
                        channel: str | None = None) -> list[UsageRow]:
            day = dt.date.today().isoformat()
            return [UsageRow(day, "fake", "fake-model", "telegram", 100, 0, 9000, 2000, 0.02,
                             5.0, 12.0)]

        def settings_form(self) -> SettingsForm:
            from pyclaw_app.config import AgentConfig, ProviderConfig

            return SettingsForm(({"name": "fake", "kind": "openai", "model": "fake-model"},),
                                (), AgentConfig().model_dump(mode="json"),
                                ProviderConfig.model_json_schema(),
                                AgentConfig.model_json_schema())

    channels = [ChannelStatus(f"tg{i}", "telegram", "Telegram", "send", "online",
                              reason="polling") for i in range(4)]
    channels.append(ChannelStatus("local", "local", "Local chat", "chat_bubble", "online"))
    plane = BenchPlane(channels)
    out = out_path.open("w")
    recorder = _Recorder(out)
    sessions: list[LiveSession] = []

    class TimedPanel:
        def __init__(self, panel: Any) -> None:
            self.panel = panel
            self.name = type(panel).__name__

        @property
        def root(self) -> Any:
            return self.panel.root

        async def load(self) -> None:
            await self.panel.load()

        def apply(self, events: Sequence[Event], now: float) -> None:
            start = time.perf_counter()
            try:
                self.panel.apply(events, now)
            finally:
                recorder.applied(self.name, len(events), time.perf_counter() - start)

    class TimedLiveSession(LiveSession):
        def __init__(self, plane: Any, panels: Sequence[Any], refresh: Callable[[], None],
                     **kwargs: Any) -> None:
            def timed_refresh() -> None:
                start = time.perf_counter()
                refresh()
                recorder.updated(time.perf_counter() - start)

            wrapped = [TimedPanel(p) for p in panels]
            recorder.rows = lambda: {p.name: _listview_rows(p.root) for p in wrapped}
            super().__init__(plane, wrapped, timed_refresh, **kwargs)
            sessions.append(self)

    views.app.LiveSession = TimedLiveSession  # type: ignore[misc]  # this process only
    async def flood() -> None:
        await asyncio.sleep(warmup)
        recorder.active = True
        recorder.write({"start": time.time()})
        ids = itertools.count(1)
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                n = next(ids)
                channel, chat = (("local", "app") if n % 20 == 0
                                 else (f"tg{n % 4}", str(1000 + n % 50)))
                inbound = plane.receive(channel, chat, f"user{n % 50}", f"message {n}")
                plane.publish(Event(EventKind.MESSAGE_PROCESSING, channel,
                                    {"id": inbound.data["id"], "chat": chat}))
                plane.publish(Event(EventKind.LLM_CALL, channel,
                                    {"provider": "fake", "model": "fake-model",
                                     "input_tokens": 90, "output_tokens": 20,
                                     "latency_ms": 4.0}))
                plane.answer(inbound, f"reply to message {n}", latency_ms=6.0)
                if n % 50 == 0:
                    plane.publish(Event(EventKind.LOG, channel,
                                        {"level": "info", "message": f"{n} messages"}))
            sent += due
            await asyncio.sleep(0.005)
        recorder.active = False
        await asyncio.sleep(0.5)
        recorder.write({"done": time.time(), "messages": sent,
                        "dropped": sum(s.dropped for s in sessions)})

    tasks: list[asyncio.Task[None]] = []

    async def get_plane() -> BenchPlane:
        if not tasks:
            tasks.append(asyncio.create_task(flood(), name="ui_bench:flood"))
        return plane

    with contextlib.suppress(KeyboardInterrupt):
        ft.run(make_main(get_plane), view=ft.AppView.WEB_BROWSER, host="127.0.0.1", port=port,
               no_cdn=True, assets_dir=str(ASSETS_DIR))


# -- driver side ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(args: argparse.Namespace, port: int, out: Path, log: Path
            ) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(REPO)
    env.pop("DISPLAY", None)
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.ui_bench", "--serve", str(port), "--out", str(out),
             "--rate", str(args.rate), "--seconds", str(args.seconds),
             "--warmup", str(args.warmup)],
            cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not listen:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(path: Path, key: str, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _records(path)
        if any(key in r for r in records):
            return records
        time.sleep(0.2)
    raise RuntimeError(f"no {key!r} record within {timeout:.0f} s")


_FRAME_COUNTER = """() => {
  window.__frames = [];
  const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def run_once(args: argparse.Namespace, workdir: Path, run: int) -> dict[str, Any]:
    """One server + one browser page; returns the run's figures."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    out = workdir / f"run{run}.jsonl"
    log = workdir / f"server{run}.log"
    with _server(args, port, out, log), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/dashboard")
            _wait_for(out, "start", args.warmup + 60)
            page.evaluate(_FRAME_COUNTER)
            records = _wait_for(out, "done", args.seconds + 60)
            frames: list[float] = page.evaluate("window.__frames")
        finally:
            browser.close()
    return _figures(records, frames, args.seconds)


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _figures(records: list[dict[str, Any]], frames: list[float], seconds: float
             ) -> dict[str, Any]:
    batches = [r for r in records if "apply_ms" in r]
    done = next(r for r in records if "done" in r)
    apply_ms = [b["apply_ms"] for b in batches]
    update_ms = [b["update_ms"] for b in batches]
    total_ms = [a + u for a, u in zip(apply_ms, update_ms, strict=True)]
    rows = [b["rows"] for b in batches if "rows" in b]
    per_view: dict[str, list[float]] = {}
    for b in batches:
        for view, ms in b["views_ms"].items():
            per_view.setdefault(view, []).append(ms)
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    return {
        "messages": done["messages"],
        "batches": len(batches),
        "batches_per_s": len(batches) / seconds,
        "events_per_batch": statistics.median(b["events"] for b in batches) if batches else 0,
        "apply_p50": _pct(apply_ms, 50), "apply_p95": _pct(apply_ms, 95),
        "apply_p99": _pct(apply_ms, 99), "apply_max": max(apply_ms, default=float("nan")),
        "update_p50": _pct(update_ms, 50), "update_p95": _pct(update_ms, 95),
        "update_max": max(update_ms, default=float("nan")),
        "total_p50": _pct(total_ms, 50), "total_p95": _pct(total_ms, 95),
        "total_max": max(total_ms, default=float("nan")),
        "over_target": sum(1 for t in apply_ms if t > TARGET_MS),
        "views_p95": {v: _pct(ms, 95) for v, ms in sorted(per_view.items())},
        "rows_max": {v: max(r[v] for r in rows) for v in (rows[0] if rows else {})},
        "rows_mid": rows[len(rows) // 2] if rows else {},
        "rows_last": rows[-1] if rows else {},
        "dropped": done["dropped"],
        "fps": (len(frames) - 1) / ((frames[-1] - frames[0]) / 1000) if len(frames) > 1 else 0,
        "longest_frame_gap_ms": max(gaps, default=float("nan")),
    }


def _table(results: list[dict[str, Any]]) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    lines = [
        "| figure | median of runs |", "|---|---|",
        f"| messages offered | {med('messages'):,.0f} |",
        f"| batches applied / s | {med('batches_per_s'):.1f} |",
        f"| events per batch (median) | {med('events_per_batch'):.0f} |",
        f"| apply ms p50 / p95 / p99 / max | {med('apply_p50'):.2f} / {med('apply_p95'):.2f} / "
        f"{med('apply_p99'):.2f} / {med('apply_max'):.2f} |",
        f"| page.update ms p50 / p95 / max | {med('update_p50'):.2f} / {med('update_p95'):.2f} / "
        f"{med('update_max'):.2f} |",
        f"| apply + update ms p50 / p95 / max | {med('total_p50'):.2f} / "
        f"{med('total_p95'):.2f} / {med('total_max'):.2f} |",
        f"| batches over {TARGET_MS:.0f} ms (apply) | {med('over_target'):.0f} |",
        f"| events dropped by the subscription | {med('dropped'):.0f} |",
        f"| browser frames / s, longest gap ms | {med('fps'):.0f}, "
        f"{med('longest_frame_gap_ms'):.0f} |",
    ]
    views = sorted({v for r in results for v in r["views_p95"]})
    for view in views:
        p95 = statistics.median(r["views_p95"].get(view, 0.0) for r in results)
        mid = max(r["rows_mid"].get(view, 0) for r in results)
        last = max(r["rows_last"].get(view, 0) for r in results)
        lines.append(f"| {view}: apply p95 ms; ListView rows held mid-run → end | "
                     f"{p95:.2f}; {mid} → {last} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ui_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="flood duration")
    parser.add_argument("--warmup", type=float, default=4.0,
                        help="seconds after the page connects before the flood starts")
    parser.add_argument("--runs", type=int, default=1, help="runs (the table shows medians)")
    parser.add_argument("--json", action="store_true", help="print every run's figures too")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.serve is not None:
        _serve(args.serve, args.rate, args.seconds, args.warmup, args.out)
        return
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is not installed (apt-get install chromium)")
    results = []
    with tempfile.TemporaryDirectory(prefix="ui_bench-") as tmp:
        for run in range(args.runs):
            results.append(run_once(args, Path(tmp), run))
    print(f"# UI bench {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {args.rate:.0f} msg/s "
          f"for {args.seconds:.0f} s, {args.runs} run(s)"
          f"; nproc={os.cpu_count()}, "
          f"{platform.python_implementation()} {platform.python_version()}")
    print(_table(results))
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
