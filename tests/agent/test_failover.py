"""Failover: 429, 500 and timeouts reach the fallback; the breaker rests a failing primary and
traffic returns to it after the cool-down; retries honour Retry-After. Time is injected."""

from __future__ import annotations

import pytest

from pyclaw_app.agent import CircuitBreaker
from pyclaw_app.errors import ProviderError
from tests.agent.conftest import ManualClock, anthropic_provider, openai_provider
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.openai_api import FakeOpenAI, Fault

NOTE = "(Answered by an/claude-fake: oa/fake-model is unavailable right now.)"


@pytest.mark.parametrize("fault", [Fault(status=429, retry_after=1), Fault(status=500),
                                   Fault(drop=True), Fault(delay=1.0)],
                         ids=["429", "500", "connection-dropped", "timeout"])
async def test_primary_failure_reaches_the_fallback(make_agent, fake_openai: FakeOpenAI,
                                                   fake_anthropic: FakeAnthropic,
                                                   fault: Fault) -> None:
    fake_openai.faults.append(fault)
    h = await make_agent([openai_provider(fake_openai, timeout=0.3),
                          anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}])
    reply, rec = await h.say("hello")
    assert reply.provider == "an" and reply.model == "claude-fake"
    assert reply.text == f"Echo: hello\n\n{NOTE}" == "".join(rec.deltas)
    assert [(c.provider, c.error is not None) for c in rec.calls] == [("oa", True),
                                                                      ("an", False)]
    assert rec.logged("failing over to an/claude-fake")
    rows = await h.llm_calls()
    assert [(r["provider"], r["error"] is not None) for r in rows] == [("oa", True),
                                                                       ("an", False)]


async def test_user_is_told_once_per_outage(make_agent, fake_openai: FakeOpenAI,
                                            fake_anthropic: FakeAnthropic) -> None:
    h = await make_agent([openai_provider(fake_openai), anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}], breaker_failures=10)
    fake_openai.faults.extend([Fault(status=500), Fault(status=500)])
    first, _ = await h.say("one")
    second, _ = await h.say("two")
    assert first.text.endswith(NOTE) and second.text == "Echo: two"
    third, _ = await h.say("three")  # the primary is back
    assert third.provider == "oa" and third.text == "Echo: three"
    fake_openai.faults.append(Fault(status=500))
    fourth, _ = await h.say("four")  # a new outage is announced again
    assert fourth.text.endswith(NOTE)


async def test_breaker_rests_the_primary_then_recovers_after_cool_down(
        make_agent, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    h = await make_agent([openai_provider(fake_openai), anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}], breaker_failures=2,
                         breaker_cooldown=30)
    fake_openai.faults.extend([Fault(status=500), Fault(status=500)])
    await h.say("one")
    _, rec = await h.say("two")
    assert rec.logged("oa/fake-model failed 2 times in a row; resting it for 30s")
    asked = len(fake_openai.requests)

    reply, rec = await h.say("three")  # resting: the primary is not even asked
    assert reply.provider == "an" and len(fake_openai.requests) == asked
    assert rec.logged("oa/fake-model is resting")
    assert h.agent.failover.breaker.state("oa/fake-model") == "open"

    h.clock.advance(29)
    reply, _ = await h.say("four")
    assert reply.provider == "an" and len(fake_openai.requests) == asked

    h.clock.advance(2)  # cool-down over: one trial call, it succeeds, the primary is back
    reply, _ = await h.say("five")
    assert reply.provider == "oa" and reply.text == "Echo: five"
    assert h.agent.failover.breaker.state("oa/fake-model") == "closed"
    reply, _ = await h.say("six")
    assert reply.provider == "oa"


async def test_retries_wait_at_least_retry_after_then_succeed(make_agent,
                                                              fake_openai: FakeOpenAI) -> None:
    fake_openai.faults.extend([Fault(status=429, retry_after=3), Fault(status=503)])
    h = await make_agent([openai_provider(fake_openai, max_retries=2)], retry_base=0.1,
                         breaker_failures=5)
    reply, rec = await h.say("hi")
    assert reply.text == "Echo: hi" and reply.provider == "oa"
    assert len(h.sleeps) == 2
    assert h.sleeps[0] >= 3  # never sooner than the server asked
    assert 0 < h.sleeps[1] <= 0.2  # second backoff step: jittered within [base, 2 * base]
    assert len(rec.logged("retry 1/2")) == 1 and len(rec.logged("retry 2/2")) == 1


async def test_a_long_retry_after_fails_over_instead_of_waiting(
        make_agent, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    fake_openai.faults.append(Fault(status=429, retry_after=120))
    h = await make_agent([openai_provider(fake_openai, max_retries=3),
                          anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}], retry_max_wait=10)
    reply, rec = await h.say("hi")
    assert reply.provider == "an" and h.sleeps == []
    assert rec.logged("asks to wait 120s")


async def test_non_retryable_errors_do_not_fail_over(make_agent, fake_anthropic: FakeAnthropic,
                                                     fake_openai: FakeOpenAI) -> None:
    h = await make_agent([anthropic_provider(fake_anthropic, api_key="wrong"),
                          openai_provider(fake_openai)], fallbacks=[{"provider": "oa"}])
    with pytest.raises(ProviderError) as caught:
        await h.say("hi")
    assert caught.value.status == 401 and fake_openai.requests == []
    rows = await h.llm_calls()
    assert len(rows) == 1 and "401" in rows[0]["error"]


async def test_every_link_failing_raises_the_last_error(make_agent, fake_openai: FakeOpenAI,
                                                        fake_anthropic: FakeAnthropic) -> None:
    fake_openai.faults.append(Fault(status=500))
    fake_anthropic.faults.append(Fault(status=529, retry_after=1))
    h = await make_agent([openai_provider(fake_openai), anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}])
    with pytest.raises(ProviderError) as caught:
        await h.say("hi")
    assert caught.value.status == 529 and caught.value.provider == "an"


async def test_mid_stream_failure_restarts_the_reply(make_agent, fake_openai: FakeOpenAI,
                                                     fake_anthropic: FakeAnthropic) -> None:
    fake_openai.faults.append(Fault(cut_after=2))
    h = await make_agent([openai_provider(fake_openai), anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}])
    reply, rec = await h.say("a message long enough to stream in pieces")
    assert rec.restarts == 1
    assert rec.deltas[0] == "Echo"  # the partial first answer did reach the screen...
    assert rec.screen == reply.text  # ...and was cleared before the fallback's answer
    assert reply.text.startswith("Echo: a message long enough") and reply.provider == "an"


async def test_a_model_chosen_with_slash_model_leads_the_chain(
        make_agent, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    h = await make_agent([openai_provider(fake_openai), anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}])
    await h.say("/model an")
    fake_anthropic.faults.append(Fault(status=500))
    reply, _ = await h.say("hi")
    assert reply.provider == "oa"
    assert reply.text.endswith("(Answered by oa/fake-model: an/claude-fake is unavailable "
                               "right now.)")


def test_breaker_counts_consecutive_failures_only() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failures=3, cooldown=10, clock=clock)
    assert not breaker.record_failure("k") and not breaker.record_failure("k")
    breaker.record_success("k")
    assert not breaker.record_failure("k") and not breaker.record_failure("k")
    assert breaker.record_failure("k") and breaker.state("k") == "open"
    assert breaker.resting_for("k") == 10
    clock.advance(10)
    assert breaker.state("k") == "half-open" and breaker.available("k")
    assert breaker.record_failure("k")  # the trial failed: rest again, from now
    assert breaker.state("k") == "open"
