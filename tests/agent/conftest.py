"""Agent tests: real SQLite, real SDKs against the fake OpenAI and Anthropic APIs.

Time is injected: the failover's sleep only records the delays it was asked
for, and the circuit breaker reads a hand-driven clock, so no test waits.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pyclaw_app.agent import Agent, CircuitBreaker, Reply, TurnHooks, build_chain
from pyclaw_app.agent.turn import CallRecord
from pyclaw_app.config import AgentConfig, Config, ProviderConfig
from pyclaw_app.model import Address, Inbound
from pyclaw_app.store import Store
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.openai_api import FakeOpenAI

FIXED_NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=timezone(timedelta(hours=1)))


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Recorder:
    """TurnHooks that remember everything, plus the text a live view would show."""

    deltas: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)
    restarts: int = 0
    screen: str = ""

    def hooks(self) -> TurnHooks:
        return TurnHooks(self._delta, self.calls.append,
                         lambda level, message: self.logs.append((level, message)),
                         self._restart)

    def _delta(self, text: str) -> None:
        self.deltas.append(text)
        self.screen += text

    def _restart(self) -> None:
        self.restarts += 1
        self.screen = ""

    def logged(self, fragment: str) -> list[str]:
        return [m for _, m in self.logs if fragment in m]


@dataclass
class Harness:
    store: Store
    agent: Agent
    clock: ManualClock
    sleeps: list[float]

    async def say(self, text: str, *, chat: str = "c1", channel: str = "local",
                  sender: str = "u1", name: str = "Ann",
                  recorder: Recorder | None = None) -> tuple[Reply, Recorder]:
        """One turn as the gateway runs it: journal, reply, then record the reply as sent."""
        recorder = recorder or Recorder()
        inbound = Inbound(Address(channel, chat), platform_id=uuid.uuid4().hex, text=text,
                          sender_id=sender, sender_name=name)
        result = await self.store.journal.submit(inbound)
        reply = await self.agent.reply(inbound, result.journal_id, recorder.hooks())
        out_id = await self.store.journal.add_outbound(result.journal_id, inbound.address,
                                                       reply.text)
        await self.store.journal.complete_reply(out_id, result.journal_id, ["p"])
        return reply, recorder

    async def llm_calls(self) -> list[Any]:
        await self.store.db.execute("SELECT 1")  # let queued usage rows commit first
        return await self.store.db.fetchall("SELECT * FROM llm_calls ORDER BY id")


def openai_provider(llm: FakeOpenAI, name: str = "oa", **extra: Any) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": name, "base_url": llm.base_url,
                                          "model": llm.models[0], "max_retries": 0,
                                          "timeout": 5, **extra})


def anthropic_provider(llm: FakeAnthropic, name: str = "an", **extra: Any) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": name, "kind": "anthropic",
                                          "base_url": llm.base_url, "model": llm.models[0],
                                          "api_key": "sk-ant-test", "max_retries": 0,
                                          "timeout": 5, **extra})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store(tmp_path / "data").open()
    yield s
    await s.close()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(chunk_size=4) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key="sk-ant-test", chunk_size=4) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def make_agent(store: Store) -> AsyncIterator[Any]:
    built: list[Agent] = []

    async def factory(providers: list[ProviderConfig], **agent: Any) -> Harness:
        clock = ManualClock()
        sleeps: list[float] = []

        async def sleep(delay: float) -> None:
            sleeps.append(delay)

        config = Config(path=None, agent=AgentConfig.model_validate(agent),
                        providers=providers)
        breaker = CircuitBreaker(config.agent.breaker_failures, config.agent.breaker_cooldown,
                                 clock=clock)
        chain = build_chain(config, breaker=breaker, sleep=sleep)
        instance = Agent(chain, store.journal, store.usage, config=config.agent,
                         now=lambda: FIXED_NOW)
        built.append(instance)
        return Harness(store, instance, clock, sleeps)

    yield factory
    for instance in built:
        await instance.close()
