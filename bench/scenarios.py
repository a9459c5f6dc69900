"""What load to offer: bursts and a steady rate, with the fake LLM fast or slow."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Scenario", "full_plan", "quick_plan"]


@dataclass(frozen=True)
class Scenario:
    messages: int
    chats: int
    rate: float
    """Messages per second offered; 0 means everything at once (a burst)."""
    llm_latency: float
    """Seconds the fake LLM waits before answering (the baseline has no LLM)."""

    @property
    def load(self) -> str:
        """The load without the LLM part: what the baseline is compared on."""
        if self.rate <= 0:
            return f"burst {self.messages:,}/{self.chats} chats"
        return (f"steady {self.rate:g}/s x {self.messages / self.rate:g}s"
                f"/{self.chats} chats")

    @property
    def name(self) -> str:
        return f"{self.load} llm={self.llm_latency * 1000:g}ms"


def full_plan(*, rate: float, seconds: float) -> list[Scenario]:
    """Issue 7's scenarios: two bursts and one steady load, each at 0 ms and 200 ms LLM."""
    steady = int(rate * seconds)
    loads = [(1_000, 10, 0.0), (10_000, 100, 0.0), (steady, 100, rate)]
    return [Scenario(m, c, r, latency) for latency in (0.0, 0.2) for m, c, r in loads]


def quick_plan(*, rate: float, seconds: float) -> list[Scenario]:
    """Under a minute: a small burst and a short steady load, at both LLM latencies."""
    steady = int(rate * seconds)
    return [Scenario(500, 10, 0.0, 0.0), Scenario(steady, 100, rate, 0.0),
            Scenario(steady, 100, rate, 0.2)]
