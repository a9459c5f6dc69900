"""An ordered chain of provider+model links with retries, a circuit breaker and failover.

Who retries is decided here, once: the SDKs run with ``max_retries=0`` and each
link gets ``max_retries`` more attempts of its own, spaced by the shared
:class:`~pyclaw_app.backoff.Backoff` (exponential, full jitter, never sooner than
the server's Retry-After). A retryable failure (429, 5xx, timeout, connection
error, empty reply) that outlasts a link's retries — or asks to wait longer
than ``retry_max_wait`` — moves on to the next link. Anything else (a bad key,
a bad request) is raised at once: another model would not fix it, and the user
should see the real cause.

Failover is per call, and every turn starts again from the top of the chain:
a link that failed ``failures`` times in a row *rests* for ``cooldown`` seconds
(skipped while a later link is available), then gets one trial; a success
closes the breaker, so traffic returns to the primary by itself. When every
link rests the primary is tried anyway: no message fails without an attempt.
The clock and the sleep are injected so tests drive time by hand.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pyclaw_app.agent.providers.base import ChatMessage, Completion, Provider, ToolSpec
from pyclaw_app.agent.turn import CallRecord
from pyclaw_app.backoff import Backoff
from pyclaw_app.config import ModelPrice
from pyclaw_app.errors import ProviderError

__all__ = ["Answer", "Attempt", "CircuitBreaker", "Clock", "Failover", "Link", "Sleep"]

_log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Link:
    """One provider+model in the chain, with that provider's limits and prices."""

    provider: Provider
    model: str
    max_retries: int = 2
    tools: bool = True
    max_output_tokens: int | None = None
    context_window: int | None = None
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.provider.name}/{self.model}"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Dollars for a call, from the provider's price table ('*' matches any model)."""
        price = self.prices.get(self.model) or self.prices.get("*")
        if price is None:
            return 0.0
        return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


@dataclass(frozen=True, slots=True)
class Answer:
    completion: Completion
    link: Link
    fallback: bool
    """True when a link other than the turn's primary answered."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the failover reports for each call it makes (the agent records and forwards it)."""

    record: CallRecord
    streamed: bool
    """Some text of a failed attempt already reached ``on_delta``."""


class CircuitBreaker:
    """Counts consecutive failures per link; after ``failures`` of them the link rests."""

    def __init__(self, failures: int = 3, cooldown: float = 60.0,
                 clock: Clock = time.monotonic) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self._count: dict[str, int] = {}
        self._opened: dict[str, float] = {}

    def available(self, key: str) -> bool:
        """Closed, or open but rested long enough for a trial call."""
        if self._count.get(key, 0) < self.failures:
            return True
        return self.clock() - self._opened.get(key, 0.0) >= self.cooldown

    def state(self, key: str) -> str:
        if self._count.get(key, 0) < self.failures:
            return "closed"
        return "half-open" if self.available(key) else "open"

    def resting_for(self, key: str) -> float:
        """Seconds until an open link gets its trial call (0 when it is not resting)."""
        if self.available(key):
            return 0.0
        return self.cooldown - (self.clock() - self._opened.get(key, 0.0))

    def record_success(self, key: str) -> None:
        self._count.pop(key, None)
        self._opened.pop(key, None)

    def record_failure(self, key: str) -> bool:
        """Count a failure; True when this one opened (or re-opened) the breaker."""
        count = self._count.get(key, 0) + 1
        self._count[key] = count
        if count >= self.failures:
            self._opened[key] = self.clock()
            return True
        return False


class Failover:
    def __init__(self, links: Sequence[Link], *, breaker: CircuitBreaker | None = None,
                 retry_base: float = 0.5, retry_max_wait: float = 20.0,
                 sleep: Sleep = asyncio.sleep, rng: random.Random | None = None) -> None:
        if not links:
            raise ValueError("a failover chain needs at least one link")
        self.links = list(links)
        self.breaker = breaker or CircuitBreaker()
        self.retry_base = retry_base
        self.retry_max_wait = retry_max_wait
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def primary(self) -> Link:
        return self.links[0]

    def providers(self) -> dict[str, Provider]:
        """Each distinct provider of the chain by name (links share provider instances)."""
        return {link.provider.name: link.provider for link in self.links}

    def link_for(self, provider: str, model: str | None = None) -> Link | None:
        """A link on ``provider`` (the settings of its first link) with ``model`` swapped in."""
        base = next((link for link in self.links if link.provider.name == provider), None)
        if base is None:
            return None
        return base if model is None else replace(base, model=model)

    def chain(self, primary: Link | None = None) -> list[Link]:
        """The links of one turn: ``primary`` (a conversation's /model choice) first."""
        if primary is None:
            return list(self.links)
        return [primary, *(link for link in self.links if link.key != primary.key)]

    async def complete(self, messages: Sequence[ChatMessage], *, primary: Link | None = None,
                       on_delta: Callable[[str], None] | None = None,
                       on_attempt: Callable[[Attempt], None] | None = None,
                       on_log: Callable[[str, str], None] | None = None,
                       tools: Sequence[ToolSpec] = (), allow_tools: bool = True,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Answer:
        """Ask the chain; raise the last ProviderError when every link failed.
        ``temperature`` goes to every link (None: each provider's default)."""
        chain = self.chain(primary)
        ready = [link for link in chain if self.breaker.available(link.key)] or chain[:1]
        log = on_log or (lambda level, message: None)
        for skipped in (link for link in chain if link not in ready):
            log("info", f"{skipped.key} is resting after repeated failures "
                        f"({self.breaker.resting_for(skipped.key):.0f}s left); skipped")
        last_error: ProviderError | None = None
        for position, link in enumerate(ready):
            has_next = position + 1 < len(ready)
            try:
                completion = await self._try_link(
                    link, messages, on_delta=on_delta,
                    on_attempt=on_attempt, log=log, tools=tools, allow_tools=allow_tools,
                    max_tokens=max_tokens, temperature=temperature)
            except ProviderError as exc:
                last_error = exc
                if not exc.retryable:
                    raise
                if has_next:
                    log("warning", f"{link.key} failed ({exc}); failing over to "
                                   f"{ready[position + 1].key}")
                continue
            return Answer(completion, link, fallback=link.key != chain[0].key)
        assert last_error is not None
        raise last_error

    async def _try_link(self, link: Link, messages: Sequence[ChatMessage], *,
                        on_delta: Callable[[str], None] | None,
                        on_attempt: Callable[[Attempt], None] | None,
                        log: Callable[[str, str], None], tools: Sequence[ToolSpec],
                        allow_tools: bool, max_tokens: int | None,
                        temperature: float | None = None) -> Completion:
        backoff = Backoff(base=self.retry_base, cap=max(self.retry_base, self.retry_max_wait),
                          rng=self._rng)
        attempts = link.max_retries + 1
        for attempt in range(1, attempts + 1):
            streamed = False

            def forward(delta: str) -> None:
                nonlocal streamed
                streamed = True
                if on_delta is not None:
                    on_delta(delta)

            started = time.perf_counter()
            try:
                completion = await link.provider.complete(
                    messages, forward, model=link.model, tools=tools if link.tools else (),
                    allow_tools=allow_tools,
                    max_tokens=max_tokens or link.max_output_tokens, temperature=temperature)
                if not completion.text.strip() and not completion.tool_calls:
                    raise ProviderError(f"{link.provider.name} returned an empty reply",
                                        provider=link.provider.name, retryable=True)
            except ProviderError as exc:
                latency = (time.perf_counter() - started) * 1000
                if on_attempt is not None:
                    on_attempt(Attempt(CallRecord(link.provider.name, link.model,
                                                  latency_ms=latency, error=str(exc)), streamed))
                if not exc.retryable:
                    raise
                if self.breaker.record_failure(link.key):
                    log("warning", f"{link.key} failed {self.breaker.failures} times in a row; "
                                   f"resting it for {self.breaker.cooldown:.0f}s")
                    raise
                if attempt == attempts:
                    raise
                wait = exc.retry_after or 0.0
                if wait > self.retry_max_wait:
                    log("warning", f"{link.key} asks to wait {wait:.0f}s; not waiting that long")
                    raise
                delay = backoff.next_delay(at_least=wait)
                log("warning", f"{link.key} failed ({exc}); retry {attempt}/{link.max_retries} "
                               f"in {delay:.1f}s")
                await self._sleep(delay)
                continue
            self.breaker.record_success(link.key)
            latency = (time.perf_counter() - started) * 1000
            if on_attempt is not None:
                on_attempt(Attempt(CallRecord(
                    link.provider.name, completion.model, completion.input_tokens,
                    completion.output_tokens, latency,
                    link.cost(completion.input_tokens, completion.output_tokens)), False))
            return completion
        raise AssertionError("unreachable: the loop returns or raises")
