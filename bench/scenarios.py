"""What load to offer: bursts and a steady rate, with the fake LLM fast or slow, per platform."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PLATFORMS", "Scenario", "full_plan", "quick_plan"]

PLATFORMS = ("telegram", "slack")
"""Fake platforms the harness can drive (bench.fake_telegram, bench.fake_slack)."""


@dataclass(frozen=True)
class Scenario:
    messages: int
    chats: int
    rate: float
    """Messages per second offered; 0 means everything at once (a burst)."""
    llm_latency: float
    """Seconds the fake LLM waits before answering (the baseline has no LLM)."""
    platform: str = "telegram"
    """Which fake platform carries the load, and so which channel the gateway runs."""

    @property
    def load(self) -> str:
        """The load without the LLM part: what the baseline is compared on."""
        if self.rate <= 0:
            return f"{self.platform} burst {self.messages:,}/{self.chats} chats"
        return (f"{self.platform} steady {self.rate:g}/s x {self.messages / self.rate:g}s"
                f"/{self.chats} chats")

    @property
    def name(self) -> str:
        return f"{self.load} llm={self.llm_latency * 1000:g}ms"


def full_plan(*, rate: float, seconds: float,
              platforms: Sequence[str] = ("telegram",)) -> list[Scenario]:
    """Issue 7's scenarios: two bursts and one steady load, each at 0 ms and 200 ms LLM,
    each on every platform in turn (a scenario's platforms run next to each other)."""
    steady = int(rate * seconds)
    loads = [(1_000, 10, 0.0), (10_000, 100, 0.0), (steady, 100, rate)]
    return [Scenario(m, c, r, latency, platform) for latency in (0.0, 0.2)
            for m, c, r in loads for platform in platforms]


def quick_plan(*, rate: float, seconds: float,
               platforms: Sequence[str] = ("telegram",)) -> list[Scenario]:
    """Under a minute per platform: a small burst and a short steady load, at both LLM
    latencies."""
    steady = int(rate * seconds)
    loads = [(500, 10, 0.0, 0.0), (steady, 100, rate, 0.0), (steady, 100, rate, 0.2)]
    return [Scenario(m, c, r, latency, platform) for m, c, r, latency in loads
            for platform in platforms]
