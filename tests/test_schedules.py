"""Scheduled messages end to end: the model schedules through its tool, the job fires once.

A real gateway on real SQLite, the OpenAI fake scripted to call the schedule tool, and
the local channel or the real Telegram connector (python-telegram-bot) against the fake
Bot API. Time is a :class:`FakeClock` given to the scheduler and the agent's tools: the
tests move it and wake the scheduler, nothing waits for the wall clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyclaw_app.agent import Agent, build_chain
from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.control.chat import ask
from pyclaw_app.gateway import Gateway
from pyclaw_app.gateway.delivery import SEND_ATTEMPTS
from pyclaw_app.model import ChannelState
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall, echo
from tests.support import eventually

START = datetime(2026, 12, 7, 8, 0, tzinfo=UTC).timestamp()  # a Monday, 08:00 UTC
WAIT = 20.0
CHAT = "1001"  # the Telegram harness's first private chat


@dataclass
class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    t: float = START

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class ToolScript:
    """The fake model: a user text that starts with one of ``calls`` makes it call that
    tool with those arguments; a tool's result is read back as the answer; anything else
    is echoed (a scheduled task's answer is ``Echo: <its prompt>``)."""

    calls: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def __call__(self, messages: list[dict[str, Any]]) -> str | FakeReply:
        last = messages[-1]
        if last.get("role") == "tool":
            return f"Tool said: {last['content']}"
        text = str(last.get("content", ""))
        for start, (name, arguments) in self.calls.items():
            if text.startswith(start):
                return FakeReply(tool_calls=[FakeToolCall(name, arguments)])
        return echo(messages)


Factory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[Factory]:
    """Gateways whose scheduler and tools read ``clock``; ``stop`` ends one early (a
    restart), the rest are stopped at teardown."""
    running: list[tuple[Gateway, Store]] = []

    async def factory(config: dict[str, Any], clock: FakeClock, *,
                      data_dir: Path | None = None, poll: float | None = None) -> Gateway:
        path = tmp_path / f"pyclaw-{len(running)}.yaml"
        path.write_text(yaml.safe_dump(config), "utf-8")
        directory = data_dir or tmp_path / "data"
        loaded = load_config(path, FileSecretStore(directory / "secrets.json"))
        store = await Store(directory).open()
        agent = Agent(build_chain(loaded), store.journal, store.usage, config=loaded.agent,
                      now=clock.now)
        gateway = Gateway(loaded, store, Bus(), agent=agent, wall_clock=clock)
        if poll is not None:
            gateway.scheduler.poll = poll
        await gateway.start()
        running.append((gateway, store))
        return gateway

    yield factory
    for gateway, store in reversed(running):
        await gateway.stop()
        await store.close()


async def stop(gateway: Gateway) -> None:
    """Stop a gateway as a shutdown would (its store is closed at teardown)."""
    await gateway.stop()


async def settle(gateway: Gateway) -> None:
    """One scheduler pass, then wait until every lane is idle."""
    await gateway.scheduler.tick()
    await gateway.lanes.join()


def local_config(llm: FakeOpenAI) -> dict[str, Any]:
    return {"providers": [provider_section(llm)], "channels": {"local": {"type": "local"}}}


def local_texts(gateway: Gateway, chat: str) -> list[str]:
    connector = gateway.channels["local"].connector
    assert connector is not None
    return [r.text for r in connector.sent if r.chat == chat]  # type: ignore[attr-defined]


async def firings(gateway: Gateway) -> list[dict[str, Any]]:
    rows = await gateway.store.db.fetchall(
        "SELECT m.id, m.status, m.error, r.scheduled_for, r.status AS run FROM schedule_runs r"
        " LEFT JOIN messages m ON m.id = r.message_id ORDER BY r.scheduled_for, r.job_id")
    return [dict(r) for r in rows]


REMIND = {"remind me": ("schedule_message", {"message": "Time to stretch!", "in_minutes": 1})}


# ---- local chat -----------------------------------------------------------------------------
async def test_the_model_schedules_in_one_minute_and_the_message_arrives_once(
        clocked: Factory) -> None:
    clock = FakeClock()
    async with FakeOpenAI(responder=ToolScript(REMIND)) as llm:
        gateway = await clocked(local_config(llm), clock)
        answer = await ask(gateway, "remind me to stretch in a minute", chat="c1", timeout=10)
        assert answer.startswith("Tool said: Scheduled job 1: sends \"Time to stretch!\"")
        assert "in 1 minute" in answer and "2026-12-07 08:01 UTC" in answer
        await gateway.lanes.join()

        await settle(gateway)
        assert local_texts(gateway, "c1") == [answer]  # not due yet
        clock.advance(59)
        await settle(gateway)
        assert local_texts(gateway, "c1") == [answer]
        clock.advance(1)
        gateway.scheduler.wake()  # the running loop fires it, no test pass needed
        await eventually(lambda: len(local_texts(gateway, "c1")) == 2, timeout=WAIT)
        await gateway.lanes.join()
        for _ in range(3):
            clock.advance(600)
            await settle(gateway)
        assert local_texts(gateway, "c1") == [answer, "Time to stretch!"]

        (fired,) = await firings(gateway)
        assert fired["status"] == "replied" and fired["scheduled_for"] == START + 60
        reply = await gateway.store.journal.reply_of(fired["id"])
        assert reply is not None and reply.status == "sent" and reply.text == "Time to stretch!"
        job = await gateway.store.schedules.get(1)
        assert job is not None and job.next_run is None and job.last_run == START + 60
        # the model sees the reminder in the conversation's history
        await ask(gateway, "did you remind me?", chat="c1", timeout=10)
        history = [m["content"] for m in llm.requests[-1]["messages"]]
        assert "Time to stretch!" in history


async def test_a_recurring_task_runs_through_the_agent_once_per_occurrence(
        clocked: Factory) -> None:
    clock = FakeClock()
    script = ToolScript({"every hour": ("schedule_message", {
        "message": "summarise the hour", "kind": "task", "cron": "30 * * * *",
        "timezone": "Europe/Paris"})})
    async with FakeOpenAI(responder=script) as llm:
        gateway = await clocked(local_config(llm), clock)
        answer = await ask(gateway, "every hour at half past, summarise", chat="c2", timeout=10)
        assert "Scheduled job 1: runs the task \"summarise the hour\"" in answer
        assert "at minute 30 of every hour (Europe/Paris)" in answer
        assert "2026-12-07 09:30 CET" in answer
        await gateway.lanes.join()
        for _ in range(6):  # 08:00 -> 11:00 UTC in half hours: 08:30, 09:30, 10:30 are due
            clock.advance(30 * 60)
            await settle(gateway)
            await settle(gateway)  # a second pass in the same minute fires nothing again
        sent = local_texts(gateway, "c2")[1:]
        assert len(sent) == 3
        assert all(s.startswith("Echo: (Scheduled task 1, set up by you, due ") for s in sent)
        assert all(s.endswith("summarise the hour") for s in sent)
        assert [f["scheduled_for"] - START for f in await firings(gateway)] == [
            30 * 60, 90 * 60, 150 * 60]
        prompts = [r["messages"][-1]["content"] for r in llm.requests[1:]
                   if "Scheduled task" in str(r["messages"][-1].get("content"))]
        assert len(prompts) == 3 and "due 2026-12-07 09:30 CET" in prompts[0]


async def test_the_model_lists_and_cancels_its_jobs(clocked: Factory) -> None:
    clock = FakeClock()
    script = ToolScript({
        "remind me": REMIND["remind me"],
        "what is scheduled": ("list_schedules", {}),
        "cancel it": ("cancel_schedule", {"id": 1}),
    })
    async with FakeOpenAI(responder=script) as llm:
        gateway = await clocked(local_config(llm), clock)
        await ask(gateway, "remind me", chat="c3", timeout=10)
        listed = await ask(gateway, "what is scheduled?", chat="c3", timeout=10)
        assert "job 1: sends \"Time to stretch!\", once at 2026-12-07 08:01 UTC" in listed
        other = await ask(gateway, "cancel it", chat="elsewhere", timeout=10)
        assert "there is no job 1 in this conversation" in other  # another chat's job
        cancelled = await ask(gateway, "cancel it", chat="c3", timeout=10)
        assert "cancelled job 1" in cancelled
        assert "no scheduled jobs" in await ask(gateway, "what is scheduled?", chat="c3",
                                                timeout=10)
        await gateway.lanes.join()
        clock.advance(3600)
        await settle(gateway)
        assert len(local_texts(gateway, "c3")) == 4  # the four answers, no reminder
        assert await firings(gateway) == []


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"message": "x", "cron": "61 * * * *", "timezone": "UTC"},
     "is not a cron expression (Bad minute)"),
    ({"message": "x", "cron": "0 9 * *", "timezone": "UTC"}, "is not a cron expression"),
    ({"message": "x", "at": "2026-12-07T07:00", "timezone": "UTC"}, "is in the past"),
    ({"message": "x", "at": "2026-12-08T09:00", "timezone": "Mars/Olympus"},
     "unknown time zone 'Mars/Olympus'"),
    ({"message": "x", "cron": "0 9 * * MON"}, "needs the user's time zone"),
    ({"message": "x", "at": "next tuesday", "timezone": "UTC"}, "is not an ISO 8601 time"),
    ({"message": "x", "at": "2026-12-08T09:00"}, "has no offset"),
    ({"message": "x", "in_minutes": 5, "cron": "* * * * *", "timezone": "UTC"},
     "exactly one of"),
    ({"message": "x", "in_minutes": -5}, "above 0"),
    ({"message": "  ", "in_minutes": 5}, "the message is empty"),
    ({"message": "x", "in_minutes": 5, "kind": "poem"}, "unknown"),
])
async def test_bad_input_gets_a_clear_error_and_schedules_nothing(
        clocked: Factory, arguments: dict[str, Any], expected: str) -> None:
    clock = FakeClock()
    async with FakeOpenAI(responder=ToolScript({"go": ("schedule_message", arguments)})) as llm:
        gateway = await clocked(local_config(llm), clock)
        answer = await ask(gateway, "go", chat="bad", timeout=10)
        assert answer.startswith("Tool said: error: ") and expected in answer, answer
        assert await gateway.store.schedules.jobs() == []


# ---- restarts and the missed policy (local) --------------------------------------------------
async def _job(gateway: Gateway, clock: FakeClock, chat: str, **extra: Any) -> int:
    from pyclaw_app.control.schedules import create_job

    job = await create_job(gateway.store.schedules, gateway.config, clock(), channel="local",
                           chat=chat, text=extra.pop("text", "ping"), **extra)
    return job.id


async def test_a_restart_between_due_time_and_delivery_delivers_once(
        clocked: Factory, tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    async with FakeOpenAI() as llm:
        gateway = await clocked(local_config(llm), clock, data_dir=data)
        await _job(gateway, clock, "r", at="2026-12-07T08:05:00+00:00")
        await gateway.stop_channel("local")  # the firing is journaled, its channel is down
        clock.advance(5 * 60)
        await settle(gateway)
        (fired,) = await firings(gateway)
        assert fired["status"] == "scheduled"
        await stop(gateway)

        clock.advance(30)
        again = await clocked(local_config(llm), clock, data_dir=data)
        await eventually(lambda: local_texts(again, "r") == ["ping"], timeout=WAIT)
        for _ in range(3):
            await settle(again)
        assert local_texts(again, "r") == ["ping"]
        assert [f["status"] for f in await firings(again)] == ["replied"]


async def test_an_interrupted_send_is_uncertain_and_never_sent_again(
        clocked: Factory, tmp_path: Path) -> None:
    """The process died while the message was going out: the journal shows it pending, so
    it may have reached the user and is not sent a second time (the reply custody rule)."""
    clock = FakeClock()
    data = tmp_path / "data"
    async with FakeOpenAI() as llm:
        gateway = await clocked(local_config(llm), clock, data_dir=data)
        await _job(gateway, clock, "u", in_minutes=1)
        await gateway.stop_channel("local")
        clock.advance(60)
        await settle(gateway)
        (fired,) = await firings(gateway)
        row = await gateway.store.journal.get(fired["id"])
        assert row is not None
        await gateway.store.journal.add_outbound(row.id, row.address, "ping")  # then: killed
        await stop(gateway)

        again = await clocked(local_config(llm), clock, data_dir=data)
        await eventually(lambda: again.store.journal.reply_of(fired["id"]), timeout=WAIT)
        await eventually(lambda: _status(again, fired["id"], "failed"), timeout=WAIT)
        await settle(again)
        assert local_texts(again, "u") == []
        reply = await again.store.journal.reply_of(fired["id"])
        assert reply is not None and reply.error is not None
        assert reply.error.startswith("uncertain: interrupted")


async def _status(gateway: Gateway, message_id: int, status: str) -> bool:
    row = await gateway.store.journal.get(message_id)
    return row is not None and row.status == status


@pytest.mark.parametrize(("missed", "sent"), [("run_once", ["ping"]), ("skip", [])])
async def test_a_job_missed_while_the_gateway_was_down(
        clocked: Factory, tmp_path: Path, missed: str, sent: list[str]) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    async with FakeOpenAI() as llm:
        gateway = await clocked(local_config(llm), clock, data_dir=data)
        # every 10 minutes: three occurrences pass while the gateway is down
        await _job(gateway, clock, "m", cron="*/10 * * * *", timezone="UTC", missed=missed)
        await stop(gateway)
        clock.advance(35 * 60)  # down from 08:00 to 08:35: 08:10, 08:20 and 08:30 missed

        again = await clocked(local_config(llm), clock, data_dir=data)
        await settle(again)
        await settle(again)
        assert local_texts(again, "m") == sent
        runs = await firings(again)
        assert [r["scheduled_for"] - START for r in runs] == [30 * 60]  # the latest, once
        assert runs[0]["run"] == ("fired" if missed == "run_once" else "skipped")
        job = await again.store.schedules.get(1)
        assert job is not None and job.next_run == START + 40 * 60
        clock.advance(5 * 60)  # 08:40, on time: both policies send it
        await settle(again)
        assert local_texts(again, "m") == [*sent, "ping"]


async def test_clock_jumps_fire_once_forwards_and_never_again_backwards(
        clocked: Factory) -> None:
    clock = FakeClock()
    async with FakeOpenAI() as llm:
        gateway = await clocked(local_config(llm), clock)
        await _job(gateway, clock, "j", cron="0 * * * *", timezone="UTC")
        clock.advance(3600 * 5 + 60)  # forward 5 h: 09:00 .. 13:00 are all due
        await settle(gateway)
        await settle(gateway)
        assert local_texts(gateway, "j") == ["ping"]
        assert [f["scheduled_for"] - START for f in await firings(gateway)] == [5 * 3600]
        clock.advance(-3 * 3600)  # back 3 h, to 10:01: 11:00 and 12:00 come round again
        for _ in range(5):
            clock.advance(30 * 60)
            await settle(gateway)
        # 10:31 .. 12:31 fired nothing again (11:00 and 12:00 came before 13:00, which fired)
        assert local_texts(gateway, "j") == ["ping"]
        clock.advance(90 * 60)  # 14:01: the next occurrence
        await settle(gateway)
        assert local_texts(gateway, "j") == ["ping", "ping"]


# ---- Telegram ---------------------------------------------------------------------------------
def telegram_config(harness: TelegramHarness, llm: FakeOpenAI) -> dict[str, Any]:
    return {"providers": [provider_section(llm)],
            "channels": {"telegram": {"type": "telegram", "rate_limit_per_minute": 0,
                                      "dm_policy": "open", **harness.channel_config()}}}


async def telegram_online(clocked: Factory, harness: TelegramHarness, llm: FakeOpenAI,
                          clock: FakeClock, data: Path, poll: float | None = None) -> Gateway:
    harness.fake.add_chat(int(CHAT), "private")  # the user's chat, which the owner's jobs use
    gateway = await clocked(telegram_config(harness, llm), clock, data_dir=data, poll=poll)
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


def sent_texts(harness: TelegramHarness) -> list[str]:
    return [m.text for m in harness.sent(CHAT)]


async def test_telegram_reminder_from_the_model_arrives_once(
        clocked: Factory, telegram: TelegramHarness, tmp_path: Path) -> None:
    clock = FakeClock()
    async with FakeOpenAI(responder=ToolScript(REMIND)) as llm:
        gateway = await telegram_online(clocked, telegram, llm, clock, tmp_path / "data",
                                        poll=0.05)
        await telegram.inject_message(CHAT, "remind me to stretch in one minute")
        await eventually(lambda: len(sent_texts(telegram)) == 1, timeout=WAIT)
        assert "Scheduled job 1" in sent_texts(telegram)[0]
        job = await gateway.store.schedules.get(1)
        assert job is not None and job.address.channel == "telegram"
        (asked,) = [r for r in await gateway.store.journal.recent() if r.direction == "in"]
        assert job.address.chat == CHAT and job.created_by == asked.sender_id != ""
        assert job.address == asked.address  # the same conversation: lane and history
        clock.advance(60)  # no wake-up: the running scheduler's poll notices the job
        await eventually(lambda: len(sent_texts(telegram)) == 2, timeout=WAIT)
        for _ in range(3):
            clock.advance(120)
            await settle(gateway)
        assert sent_texts(telegram)[1:] == ["Time to stretch!"]
        reminder = telegram.sent(CHAT)[1]
        assert reminder.reply_to is None  # a scheduled message quotes nothing


@pytest.mark.parametrize("status", [500, 429])
async def test_telegram_failing_sends_are_retried_under_custody_and_not_doubled(
        clocked: Factory, telegram: TelegramHarness, tmp_path: Path, status: int) -> None:
    clock = FakeClock()
    async with FakeOpenAI() as llm:
        gateway = await telegram_online(clocked, telegram, llm, clock, tmp_path / "data")
        from pyclaw_app.control.schedules import create_job

        await create_job(gateway.store.schedules, gateway.config, clock(), channel="telegram",
                         chat=CHAT, text="standup in 5", in_minutes=1)
        telegram.fake.fail_next("sendMessage", status, retry_after=0.1, count=2)
        clock.advance(60)
        await settle(gateway)
        await eventually(lambda: len(sent_texts(telegram)) == 1, timeout=WAIT)
        for _ in range(3):
            await settle(gateway)
        assert sent_texts(telegram) == ["standup in 5"]
        assert telegram.fake.calls("sendMessage") == 3  # two refused, one accepted
        (fired,) = await firings(gateway)
        assert fired["status"] == "replied"
        logs = await gateway.store.logs.page(channel="telegram", search="retrying")
        assert len(logs) == 2


async def test_telegram_a_send_that_keeps_failing_is_failed_then_retried_once(
        clocked: Factory, telegram: TelegramHarness, tmp_path: Path) -> None:
    clock = FakeClock()
    async with FakeOpenAI() as llm:
        gateway = await telegram_online(clocked, telegram, llm, clock, tmp_path / "data")
        from pyclaw_app.control.schedules import create_job

        await create_job(gateway.store.schedules, gateway.config, clock(), channel="telegram",
                         chat=CHAT, text="pay the rent", in_minutes=1)
        telegram.fake.fail_next("sendMessage", 502, count=SEND_ATTEMPTS)
        clock.advance(60)
        await settle(gateway)
        (fired,) = await firings(gateway)
        assert fired["status"] == "failed" and "send failed" in fired["error"]
        assert sent_texts(telegram) == []
        for _ in range(3):  # failed stays failed: nothing is sent behind the owner's back
            await settle(gateway)
        assert telegram.fake.calls("sendMessage") == SEND_ATTEMPTS

        assert await gateway.retry(fired["id"])  # Retry in Logs
        await eventually(lambda: sent_texts(telegram) == ["pay the rent"], timeout=WAIT)
        await settle(gateway)
        assert not await gateway.retry(fired["id"])  # delivered: nothing to retry
        await settle(gateway)
        assert sent_texts(telegram) == ["pay the rent"]
        assert [f["status"] for f in await firings(gateway)] == ["replied"]


async def test_telegram_a_lost_answer_is_uncertain_and_not_resent(
        clocked: Factory, telegram: TelegramHarness, tmp_path: Path) -> None:
    clock = FakeClock()
    async with FakeOpenAI() as llm:
        gateway = await telegram_online(clocked, telegram, llm, clock, tmp_path / "data")
        from pyclaw_app.control.schedules import create_job

        await create_job(gateway.store.schedules, gateway.config, clock(), channel="telegram",
                         chat=CHAT, text="lost?", in_minutes=1)
        telegram.fake.lose_next_answer("sendMessage")
        clock.advance(60)
        await settle(gateway)
        await eventually(lambda: _status(gateway, 1, "failed"), timeout=WAIT)
        for _ in range(3):
            await settle(gateway)
        assert sent_texts(telegram) == ["lost?"]  # it did arrive, once; nothing resent
        (fired,) = await firings(gateway)
        reply = await gateway.store.journal.reply_of(fired["id"])
        assert reply is not None and (reply.error or "").startswith("uncertain")


async def test_telegram_gateway_down_across_a_due_time_runs_once_on_start(
        clocked: Factory, telegram: TelegramHarness, tmp_path: Path) -> None:
    clock = FakeClock()
    data = tmp_path / "data"
    async with FakeOpenAI() as llm:
        gateway = await telegram_online(clocked, telegram, llm, clock, data)
        from pyclaw_app.control.schedules import create_job

        await create_job(gateway.store.schedules, gateway.config, clock(), channel="telegram",
                         chat=CHAT, text="late but sent", in_minutes=10)
        await create_job(gateway.store.schedules, gateway.config, clock(), channel="telegram",
                         chat=CHAT, text="stale, skipped", in_minutes=10, missed="skip")
        await stop(gateway)
        clock.advance(3600)
        again = await telegram_online(clocked, telegram, llm, clock, data)
        await eventually(lambda: sent_texts(telegram) == ["late but sent"], timeout=WAIT)
        for _ in range(3):
            await settle(again)
        assert sent_texts(telegram) == ["late but sent"]
        assert [f["run"] for f in await firings(again)] == ["fired", "skipped"]
        meta = json.loads((await again.store.journal.get(
            (await firings(again))[0]["id"])).meta)  # type: ignore[union-attr]
        assert meta["schedule"] == 1 and meta["scheduled_for"] == START + 600
