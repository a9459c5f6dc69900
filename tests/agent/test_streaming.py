"""Both providers stream through the real SDKs: deltas in order, the reply equals them."""

from __future__ import annotations

import pytest

from pyclaw_app.agent import Agent
from pyclaw_app.agent.providers import AnthropicProvider, ChatMessage, OpenAICompatProvider
from pyclaw_app.config import Config
from pyclaw_app.errors import ProviderError
from pyclaw_app.store import Store
from tests.agent.conftest import anthropic_provider, openai_provider
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.openai_api import FakeOpenAI, Fault

LONG = "The quick brown fox jumps over the lazy dog, twice: " + "ünïcödé ✓ " * 5


async def test_openai_deltas_arrive_in_order_and_make_the_reply(make_agent,
                                                                 fake_openai: FakeOpenAI) -> None:
    fake_openai.responder = lambda messages: LONG
    h = await make_agent([openai_provider(fake_openai)])
    reply, rec = await h.say("hello")
    assert len(rec.deltas) > 5
    assert "".join(rec.deltas) == reply.text == LONG
    assert reply.provider == "oa" and reply.model == "fake-model"
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    assert [c.error for c in rec.calls] == [None]
    rows = await h.llm_calls()
    assert [(r["provider"], r["model"], r["channel"]) for r in rows] == [
        ("oa", "fake-model", "local")]
    assert rows[0]["output_tokens"] == reply.output_tokens


async def test_anthropic_deltas_arrive_in_order_and_make_the_reply(
        make_agent, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.responder = lambda messages: LONG
    h = await make_agent([anthropic_provider(fake_anthropic)],
                         system_prompt="You are terse.")
    reply, rec = await h.say("hello")
    assert len(rec.deltas) > 5
    assert "".join(rec.deltas) == reply.text == LONG
    assert reply.provider == "an" and reply.model == "claude-fake"
    assert reply.input_tokens > 0 and reply.output_tokens > 1
    body = fake_anthropic.requests[-1]
    assert body["system"] == "You are terse." and body["stream"] is True
    assert body["max_tokens"] == 1024
    assert body["messages"] == [{"role": "user", "content": [{"type": "text",
                                                              "text": "hello"}]}]


async def test_anthropic_key_is_accepted_and_a_bad_one_is_not_retryable(
        fake_anthropic: FakeAnthropic) -> None:
    good = AnthropicProvider(name="an", model="claude-fake", base_url=fake_anthropic.base_url,
                             api_key="sk-ant-test")
    bad = AnthropicProvider(name="an", model="claude-fake", base_url=fake_anthropic.base_url,
                            api_key="wrong")
    try:
        done = await good.complete([ChatMessage("user", "hi")])
        assert done.text == "Echo: hi"
        with pytest.raises(ProviderError) as caught:
            await bad.complete([ChatMessage("user", "hi")])
        assert caught.value.status == 401 and not caught.value.retryable
        assert "authentication_error" in str(caught.value)
    finally:
        await good.close()
        await bad.close()


async def test_anthropic_error_event_mid_stream_is_retryable_overload(
        fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.faults.append(Fault(status=529, cut_after=1))
    provider = AnthropicProvider(name="an", model="claude-fake",
                                 base_url=fake_anthropic.base_url, api_key="sk-ant-test")
    seen: list[str] = []
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete([ChatMessage("user", "a long enough message")], seen.append)
    finally:
        await provider.close()
    assert seen  # something streamed before the error event
    assert caught.value.status == 529 and caught.value.retryable


@pytest.mark.parametrize("status", [429, 500, 529])
async def test_anthropic_http_errors_map_with_retry_after(fake_anthropic: FakeAnthropic,
                                                          status: int) -> None:
    fake_anthropic.faults.append(Fault(status=status, retry_after=7))
    provider = AnthropicProvider(name="an", model="claude-fake",
                                 base_url=fake_anthropic.base_url, api_key="sk-ant-test")
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete([ChatMessage("user", "hi")])
    finally:
        await provider.close()
    assert caught.value.status == status and caught.value.retryable
    assert caught.value.retry_after == 7


async def test_models_are_listed_on_both_apis(fake_openai: FakeOpenAI) -> None:
    async with FakeAnthropic(models=("claude-a", "claude-b", "claude-c")) as anthropic_api:
        an = AnthropicProvider(name="an", model="claude-a", base_url=anthropic_api.base_url,
                               api_key="k")
        oa = OpenAICompatProvider(name="oa", model="fake-model", base_url=fake_openai.base_url,
                                  api_key=None)
        try:
            assert await an.list_models() == ["claude-a", "claude-b", "claude-c"]
            assert await oa.list_models() == ["fake-model"]
        finally:
            await an.close()
            await oa.close()


async def test_from_config_builds_the_configured_chain(store: Store, fake_openai: FakeOpenAI,
                                                       fake_anthropic: FakeAnthropic) -> None:
    config = Config(path=None, providers=[openai_provider(fake_openai),
                                          anthropic_provider(fake_anthropic)])
    config.agent = config.agent.model_validate(
        {"provider": "an", "fallbacks": [{"provider": "oa"}, {"provider": "missing"}]})
    agent = Agent.from_config(config, store)
    try:
        assert [link.key for link in agent.failover.links] == ["an/claude-fake",
                                                               "oa/fake-model"]
        assert [name for name, _ in Agent.commands()] == ["help", "reset", "model", "status",
                                                          "usage", "link", "unlink"]
    finally:
        await agent.close()
