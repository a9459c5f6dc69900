"""Limits that only show with thousands of answers streaming at once (issue 16,
bench/RESULTS.md section 8), shown without timing: a fake that answers nobody until the
expected number of streams are open together."""

from __future__ import annotations

import asyncio

import openai
import pytest
from aiohttp import web

from pyclaw_app.agent.providers.base import ChatMessage
from pyclaw_app.agent.providers.openai_compat import OpenAICompatProvider
from tests.fakes.openai_api import FakeOpenAI

DEADLOCK_GUARD = 60.0
"""Seconds after which a barrier that never opened fails the test instead of hanging it
(no figure is asserted on: a capped pool waits forever, an uncapped one opens at once)."""


class GatedOpenAI(FakeOpenAI):
    """Holds every completion until ``expected`` requests are open at the same time, then
    answers them all: only a client that can hold that many connections gets any answer."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.arrived = 0
        self.all_open = asyncio.Event()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        self.arrived += 1
        if self.arrived >= self.expected:
            self.all_open.set()
        await self.all_open.wait()
        return await super()._completions(request)


@pytest.mark.parametrize("streams", [
    pytest.param(openai.DEFAULT_CONNECTION_LIMITS.max_connections + 1,
                 id="one more than the SDK's default pool"),
])
async def test_more_streams_than_the_sdk_pool_all_get_a_connection(streams: int) -> None:
    """agent.max_concurrent_llm is the one cap on LLM calls: the provider's own connection
    pool must hold no stream back, not even past the SDK's default of 1,000."""
    async with GatedOpenAI(streams) as fake:
        provider = OpenAICompatProvider(name="fake", model="fake-model",
                                        base_url=fake.base_url, api_key=None)
        calls = [provider.complete([ChatMessage("user", f"question {i}")])
                 for i in range(streams)]
        try:
            async with asyncio.timeout(DEADLOCK_GUARD):
                answers = await asyncio.gather(*calls)
        except TimeoutError:
            answers = []
        finally:
            held_back = streams - fake.arrived
            fake.all_open.set()  # let the server's handlers end, so it can stop
            await provider.close()
    assert held_back == 0, f"{held_back} of {streams} streams never got a connection"
    assert sorted(a.text for a in answers) == sorted(f"Echo: question {i}"
                                                     for i in range(streams))
