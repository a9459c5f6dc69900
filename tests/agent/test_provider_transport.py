"""The providers' HTTP transport: both SDKs on aiohttp, told apart "unreachable" and "timed out".

The OpenAI SDK's vendored aiohttp transport maps a refused connection to
``ConnectTimeout``, so without the provider's own look at the aiohttp cause a
dead endpoint would read "timed out"; these tests pin the wording for both
providers against a closed port and a fake that stalls longer than the timeout,
check that a stream cut midway is a retryable ProviderError the failover can
act on, check an ordinary streamed answer, and check that ``close()`` closes
the SDK's aiohttp session.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest

from pyclaw_app.agent.providers.anthropic import AnthropicProvider
from pyclaw_app.agent.providers.base import ChatMessage
from pyclaw_app.agent.providers.openai_compat import OpenAICompatProvider
from pyclaw_app.errors import ProviderError
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.openai_api import FakeOpenAI, Fault

Provider = OpenAICompatProvider | AnthropicProvider
ASK = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello over aiohttp")]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openai_at(base_url: str, timeout: float = 5.0) -> OpenAICompatProvider:
    return OpenAICompatProvider(name="oa", model="fake-model", base_url=base_url,
                                api_key="sk-test", timeout=timeout)


def anthropic_at(base_url: str, timeout: float = 5.0) -> AnthropicProvider:
    return AnthropicProvider(name="an", model="claude-fake", base_url=base_url,
                             api_key="sk-ant-test", timeout=timeout)


async def failure(provider: Provider) -> ProviderError:
    """The ProviderError ``complete`` raises; the provider is closed afterwards."""
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(ASK)
    finally:
        await provider.close()
    return caught.value


@contextmanager
def unclosed_sessions() -> Iterator[list[str]]:
    """What aiohttp reports about sessions collected unclosed: ResourceWarnings and loop errors.

    (The SDKs schedule a close of a client collected unclosed, so these reports are
    the second line of defence; the test also looks at the session itself.)
    """
    reports: list[str] = []
    gc.collect()  # what earlier tests left unclosed is reported now, not in this window
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reports.append(str(context.get("message"))))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield reports
            gc.collect()
        reports.extend(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))
    finally:
        loop.set_exception_handler(previous)


# ---- unreachable vs timed out -----------------------------------------------------------------


async def test_openai_closed_port_is_unreachable_not_timed_out() -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}/v1"
    error = await failure(openai_at(base_url))
    assert "unreachable" in str(error)
    assert "timed out" not in str(error)
    assert base_url in str(error)
    assert error.provider == "oa" and error.retryable


async def test_openai_stalled_answer_is_timed_out(fake_openai: FakeOpenAI) -> None:
    fake_openai.faults.append(Fault(delay=0.6))
    error = await failure(openai_at(fake_openai.base_url, timeout=0.2))
    assert str(error) == "oa timed out"
    assert error.retryable
    assert len(fake_openai.requests) == 1  # the SDK's own retries are off


async def test_openai_stream_that_stalls_midway_is_timed_out() -> None:
    async with FakeOpenAI(chunk_size=2, chunk_delay=0.6) as llm:
        error = await failure(openai_at(llm.base_url, timeout=0.2))
    assert str(error) == "oa timed out"


async def test_anthropic_closed_port_is_unreachable_not_timed_out() -> None:
    base_url = f"http://127.0.0.1:{_closed_port()}"
    error = await failure(anthropic_at(base_url))
    assert "unreachable" in str(error)
    assert "timed out" not in str(error)
    assert base_url in str(error)
    assert error.provider == "an" and error.retryable


async def test_anthropic_stalled_answer_is_timed_out(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.faults.append(Fault(delay=0.6))
    error = await failure(anthropic_at(fake_anthropic.base_url, timeout=0.2))
    assert str(error) == "an timed out"
    assert error.retryable
    assert len(fake_anthropic.requests) == 1


async def test_openai_stream_cut_midway_is_a_retryable_provider_error(
        fake_openai: FakeOpenAI) -> None:
    fake_openai.faults.append(Fault(cut_after=1))
    error = await failure(openai_at(fake_openai.base_url))
    assert error.retryable and error.provider == "oa"


async def test_anthropic_stream_cut_midway_is_a_retryable_provider_error(
        fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.faults.append(Fault(cut_after=1))
    provider = anthropic_at(fake_anthropic.base_url)
    try:
        await provider.complete(ASK)
    except ProviderError as error:
        assert error.retryable and error.provider == "an"
    else:
        pytest.fail("a cut stream completed")
    finally:
        await provider.close()


# ---- a normal streamed answer -----------------------------------------------------------------


async def test_openai_streams_through_aiohttp(fake_openai: FakeOpenAI) -> None:
    deltas: list[str] = []
    provider = openai_at(fake_openai.base_url)
    try:
        first = await provider.complete(ASK, deltas.append)
        second = await provider.complete(ASK)  # the pooled connection is reused cleanly
    finally:
        await provider.close()
    assert first.text == second.text == "Echo: hello over aiohttp"
    assert len(deltas) > 1 and "".join(deltas) == first.text
    assert first.model == "fake-model" and first.stop_reason == "stop"
    assert first.input_tokens > 0 and first.output_tokens > 0
    sent = fake_openai.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hello over aiohttp"}]


async def test_anthropic_streams_through_aiohttp(fake_anthropic: FakeAnthropic) -> None:
    deltas: list[str] = []
    provider = anthropic_at(fake_anthropic.base_url)
    try:
        first = await provider.complete(ASK, deltas.append)
        second = await provider.complete(ASK)
    finally:
        await provider.close()
    assert first.text == second.text == "Echo: hello over aiohttp"
    assert len(deltas) > 1 and "".join(deltas) == first.text
    assert first.model == "claude-fake" and first.stop_reason == "end_turn"
    assert first.input_tokens > 0 and first.output_tokens > 0
    sent = fake_anthropic.requests[0]
    assert sent["stream"] is True and sent["system"] == "Be brief."
    assert sent["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "hello over aiohttp"}]}]


# ---- close() ----------------------------------------------------------------------------------


def live_sessions() -> set[aiohttp.ClientSession]:
    return {o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession)}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_close_closes_the_sdks_aiohttp_session(
        kind: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> None:
    before = live_sessions()
    provider = (openai_at(fake_openai.base_url) if kind == "openai"
                else anthropic_at(fake_anthropic.base_url))
    with unclosed_sessions() as reports:
        assert (await provider.complete(ASK)).text  # the SDK opens its session lazily
        opened = live_sessions() - before
        assert len(opened) == 1  # the answer really came over aiohttp
        (session,) = opened
        assert not session.closed
        await provider.close()
        assert session.closed
        await provider.close()  # closing twice is harmless
        del provider, session, opened
    assert reports == []
