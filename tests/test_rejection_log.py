"""Rejected webhook requests cannot fill the disk: the first few of a source are logged one
by one, the rest of a window become one line that counts them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from connectors.openai_api.manifest import OpenAIApiConfig
from connectors.openai_api.runtime import OpenAIApiConnector
from pyclaw_app.channels import RejectionLog, WebhookRequest
from pyclaw_app.channels.rejections import FIRST_PER_SOURCE, WINDOW
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.gateway import Gateway
from tests.conftest import GatewayFactory
from tests.support import RecordingContext, eventually

SECRET = "rejection-test-shared-secret"
BURST = 300


@pytest.fixture
async def hook(make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
               ) -> AsyncIterator[tuple[Gateway, str]]:
    monkeypatch.setenv("PYCLAW_HOOK_SECRET", SECRET)
    gateway = await make_gateway({"channels": {"hook": {"type": "webhook"}}})
    server = WebhookServer(gateway, port=0)
    await server.start()
    yield gateway, f"{server.url}/webhook/hook"
    await server.stop()


async def rejection_rows(gateway: Gateway) -> list[str]:
    await gateway.store.db.write(lambda conn: None)  # after every queued log line
    rows = await gateway.store.db.fetchall(
        "SELECT message FROM channel_log WHERE channel = 'hook' AND message LIKE '%rejected%'"
        " ORDER BY id")
    return [r["message"] for r in rows]


async def test_a_burst_of_forged_requests_writes_a_bounded_number_of_rows(
        hook: tuple[Gateway, str]) -> None:
    gateway, url = hook
    forged = {"X-Pyclaw-Timestamp": str(int(time.time())),
              "X-Pyclaw-Signature": "sha256=" + "0" * 64}
    async with aiohttp.ClientSession() as session:
        for _ in range(BURST):
            async with session.post(url, data=b'{"id": "1", "chat": "c", "text": "hi"}',
                                    headers=forged) as resp:
                assert resp.status == 401
    await gateway.stop_channel("hook")  # a stopping channel writes what it still counts
    messages = await rejection_rows(gateway)
    one_by_one = [m for m in messages if m.startswith("rejected a webhook request")]
    counted = [m for m in messages if m not in one_by_one]
    assert one_by_one == ["rejected a webhook request: bad or missing X-Pyclaw-Signature"
                          ] * FIRST_PER_SOURCE
    assert counted == [f"{BURST} rejected webhook requests in the last minute from 127.0.0.1:"
                       " bad or missing X-Pyclaw-Signature"]


async def test_an_api_channel_counts_refused_keys_the_same_way() -> None:
    connector = OpenAIApiConnector("api", OpenAIApiConfig())
    ctx = RecordingContext(channel="api")
    await connector.start(ctx)  # type: ignore[arg-type]
    for _ in range(BURST):
        answer = await connector.handle_webhook(WebhookRequest(
            "GET", headers={"Authorization": "Bearer pck-guessed"}, path="/v1/models",
            remote="203.0.113.9"))
        assert answer.status == 401
    await connector.stop()
    refused = [message for _, message, _ in ctx.logs if "rejected" in message]
    assert refused == [
        *["rejected an API request: missing or unknown API key"] * FIRST_PER_SOURCE,
        f"{BURST} rejected API requests in the last minute from 203.0.113.9: missing or "
        "unknown API key"]


@dataclass
class Timers:
    """``call_later`` whose callbacks run when the test says a window is over."""

    pending: list[tuple[Callable[[], None], Timer]] = field(default_factory=list)

    def __call__(self, delay: float, callback: Callable[[], None]) -> Timer:
        assert delay == WINDOW
        timer = Timer()
        self.pending.append((callback, timer))
        return timer

    def end_window(self) -> None:
        due, self.pending = self.pending, []
        for callback, timer in due:
            if not timer.cancelled:
                callback()

    @property
    def armed(self) -> bool:
        return any(not timer.cancelled for _, timer in self.pending)


@dataclass
class Timer:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Lines:
    lines: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, level: str, message: str, **data: Any) -> None:
        self.lines.append((level, message, data))

    def take(self) -> list[str]:
        taken, self.lines = self.lines, []
        return [message for _, message, _ in taken]


def rejections(lines: Lines, timers: Timers, **limits: int) -> RejectionLog:
    return RejectionLog(lines, schedule=timers, **limits)


def test_a_flooding_source_gets_one_line_a_window_until_it_is_quiet_for_one() -> None:
    lines, timers = Lines(), Timers()
    log = rejections(lines, timers, first=3)
    for _ in range(10):
        log.rejected("198.51.100.7", "bad signature")
    log.rejected("192.0.2.1", "bad signature")
    assert lines.take() == ["rejected a webhook request: bad signature"] * 4
    timers.end_window()
    assert lines.take() == ["10 rejected webhook requests in the last minute from "
                            "198.51.100.7: bad signature"]
    for _ in range(1000):  # still flooding: counted from the first one
        log.rejected("198.51.100.7", "bad signature")
    assert lines.take() == []
    timers.end_window()
    assert lines.take() == ["1,000 rejected webhook requests in the last minute from "
                            "198.51.100.7: bad signature"]
    timers.end_window()  # a quiet window: the source is forgotten, no timer is left
    assert lines.take() == []
    assert not timers.armed
    log.rejected("198.51.100.7", "bad signature")
    assert lines.take() == ["rejected a webhook request: bad signature"]


def test_many_sources_share_the_single_lines_and_the_rest_are_other_sources() -> None:
    lines, timers = Lines(), Timers()
    log = rejections(lines, timers, first=2, lines_per_window=3, max_sources=4)
    for n in range(6):
        log.rejected(f"2001:db8::{n}", "bad signature")
        log.rejected(f"2001:db8::{n}", "bad signature")
    assert lines.take() == ["rejected a webhook request: bad signature"] * 3
    timers.end_window()
    assert lines.take() == [
        f"{count} rejected webhook requests in the last minute from {source}: bad signature"
        for count, source in ((2, "2001:db8::1"), (2, "2001:db8::2"), (2, "2001:db8::3"),
                              (4, "other sources"))]


def test_a_summary_names_a_few_reasons_and_takes_the_worst_level() -> None:
    lines, timers = Lines(), Timers()
    log = rejections(lines, timers, first=0)
    for n in range(10):
        log.rejected("", f"bearer token from 'issuer-{n}'")
    log.rejected("", "bearer token from 'issuer-0'")
    log.rejected("", "body is not JSON", level="error")
    log.close()
    [(level, message, data)] = lines.lines
    assert level == "error"
    assert message == (
        "12 rejected webhook requests in the last minute from an unknown source: bearer "
        "token from 'issuer-0' (2), bearer token from 'issuer-1' (1), bearer token from "
        "'issuer-2' (1), bearer token from 'issuer-3' (1), other reasons (7)")
    assert data == {"source": "an unknown source", "rejected": 12, "logged_one_by_one": 0}
    assert not timers.armed


def test_a_stopped_channel_writes_its_counts_and_schedules_nothing() -> None:
    lines, timers = Lines(), Timers()
    log = rejections(lines, timers, first=1)
    log.rejected("192.0.2.1", "wrong secret", size=12)
    log.rejected("192.0.2.1", "wrong secret", size=12)
    log.close()
    assert lines.lines == [
        ("warning", "rejected a webhook request: wrong secret",
         {"source": "192.0.2.1", "size": 12}),
        ("warning", "2 rejected webhook requests in the last minute from 192.0.2.1: wrong "
         "secret", {"source": "192.0.2.1", "rejected": 2, "logged_one_by_one": 1})]
    assert not timers.armed


@pytest.mark.parametrize("limits", [{"window": 0}, {"first": -1}, {"lines_per_window": -1},
                                    {"max_sources": 0}])
def test_limits_that_make_no_sense_are_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="window must be positive"):
        RejectionLog(Lines(), **limits)  # type: ignore[arg-type]


async def test_on_the_event_loop_a_window_ends_by_itself() -> None:
    lines = Lines()
    log = RejectionLog(lines, window=0.01, first=1)
    log.rejected("192.0.2.1", "wrong secret")
    log.rejected("192.0.2.1", "wrong secret")
    await eventually(lambda: len(lines.lines) == 2)
    assert lines.take() == ["rejected a webhook request: wrong secret",
                            "2 rejected webhook requests in the last 0.01 s from 192.0.2.1: "
                            "wrong secret"]
    log.close()  # nothing was counted since: nothing more to write
    assert lines.take() == []
