"""Commands are answered before the LLM, as provider "command" with no tokens."""

from __future__ import annotations

import time

import pytest

from pyclaw_app.agent import Reply
from pyclaw_app.agent.commands import parse_command
from pyclaw_app.store import Store
from tests.agent.conftest import anthropic_provider, openai_provider
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.openai_api import FakeOpenAI


def assert_command(reply: Reply) -> None:
    assert (reply.provider, reply.model, reply.input_tokens, reply.output_tokens) == (
        "command", "", 0, 0)


async def test_help_lists_commands_and_tools(make_agent, fake_openai: FakeOpenAI) -> None:
    h = await make_agent([openai_provider(fake_openai)])
    reply, rec = await h.say("/help")
    assert_command(reply)
    for name in ("/help", "/reset", "/model", "/status", "/usage"):
        assert name in reply.text
    assert "calculate" in reply.text
    assert rec.screen == reply.text  # streamed like any answer
    start, _ = await h.say("/start")  # what Telegram sends first
    assert start.text == reply.text
    assert fake_openai.requests == [] and await h.llm_calls() == []


async def test_reset_forgets_the_conversation(make_agent, fake_openai: FakeOpenAI) -> None:
    h = await make_agent([openai_provider(fake_openai)])
    await h.say("my name is Ann")
    reply, _ = await h.say("/RESET")
    assert_command(reply)
    await h.say("who am I?")
    assert [m["role"] for m in fake_openai.requests[-1]["messages"]] == ["system", "user"]
    await h.say("who am I?", chat="other")  # other conversations are untouched
    assert len(fake_openai.requests) == 3


async def test_model_shows_lists_and_switches(make_agent, fake_openai: FakeOpenAI) -> None:
    fake_openai.models = ("fake-model", "fake-large")
    async with FakeAnthropic(api_key="k", models=("claude-fake", "claude-big")) as anthropic_api:
        h = await make_agent([openai_provider(fake_openai),
                              anthropic_provider(anthropic_api, api_key="k")],
                             fallbacks=[{"provider": "an"}])
        shown, _ = await h.say("/model")
        assert_command(shown)
        assert "Model: oa/fake-model (default)" in shown.text
        assert "oa/fake-model -> an/claude-fake" in shown.text
        assert "fake-large" in shown.text

        switched, _ = await h.say("/model fake-large")
        assert switched.text == "This conversation now uses oa/fake-large."
        reply, _ = await h.say("hi")
        assert reply.model == "fake-large" and fake_openai.requests[-1]["model"] == "fake-large"

        unknown, _ = await h.say("/model gpt-nonexistent")
        assert "has no model 'gpt-nonexistent'" in unknown.text

        await h.say("/model an:claude-big")
        reply, _ = await h.say("hi")
        assert (reply.provider, reply.model) == ("an", "claude-big")
        other, _ = await h.say("hi", chat="elsewhere")  # the choice is per conversation
        assert other.provider == "oa" and other.model == "fake-model"

        back, _ = await h.say("/model default")
        assert back.text == "Back to the configured model: oa/fake-model."
        reply, _ = await h.say("hi")
        assert (reply.provider, reply.model) == ("oa", "fake-model")


async def test_status_shows_model_chain_memory_and_tools(make_agent, fake_openai: FakeOpenAI,
                                                         fake_anthropic: FakeAnthropic) -> None:
    h = await make_agent([openai_provider(fake_openai), anthropic_provider(fake_anthropic)],
                         fallbacks=[{"provider": "an"}], tools=["calculate", "current_time"])
    await h.say("hello")
    reply, _ = await h.say("/status")
    assert_command(reply)
    assert "Model: oa/fake-model" in reply.text
    assert "oa/fake-model (closed) -> an/claude-fake (closed)" in reply.text
    assert "Memory: 2 messages since the last /reset" in reply.text
    assert "Tools: calculate, current_time" in reply.text


async def test_usage_reports_tokens_and_cost(make_agent, fake_openai: FakeOpenAI) -> None:
    h = await make_agent([openai_provider(fake_openai,
                                          prices={"fake-model": {"input": 2.0, "output": 8.0}})])
    answered, _ = await h.say("count me")
    reply, _ = await h.say("/usage")
    assert_command(reply)
    rows = await h.llm_calls()
    expected = (answered.input_tokens * 2 + answered.output_tokens * 8) / 1e6
    assert rows[0]["cost"] == pytest.approx(expected)
    assert reply.text.startswith(
        f"This conversation: 1 calls, {answered.input_tokens} tokens in, "
        f"{answered.output_tokens} out, ${expected:.4f}")
    assert "Today on local: 1 calls" in reply.text


def test_parse_command() -> None:
    assert parse_command("/model  claude-3 ") is not None
    parsed = parse_command("/Model@my_bot gpt-4o")
    assert parsed is not None and (parsed.name, parsed.argument) == ("model", "gpt-4o")
    assert parse_command("/unknown thing") is None
    assert parse_command("hello /help") is None
    assert parse_command("") is None


async def test_usage_breakdown_per_day_provider_model_channel(store: Store) -> None:
    now = time.time()
    for latency, channel, error in [(100, "tg", None), (300, "tg", None), (200, "tg", None),
                                    (5000, "tg", "boom"), (50, "slack", None)]:
        store.usage.record(message_id=None, channel=channel, provider="oa", model="m",
                           input_tokens=10, output_tokens=5, latency_ms=latency, cost=0.01,
                           error=error)
    await store.db.execute("SELECT 1")
    rows = await store.usage.breakdown(since=now - 60)
    assert [(r.channel, r.calls, r.errors, r.input_tokens) for r in rows] == [
        ("slack", 1, 0, 10), ("tg", 4, 1, 40)]
    tg = rows[1]
    assert tg.latency_p50_ms == 200 and tg.latency_p95_ms == 300  # failed calls excluded
    assert tg.cost == pytest.approx(0.04)
    totals = await store.usage.totals(since=now - 60, channel="tg")
    assert (totals.calls, totals.errors, totals.output_tokens) == (4, 1, 20)
    assert await store.usage.breakdown(since=now + 60) == []
