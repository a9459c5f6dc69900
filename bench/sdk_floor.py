"""``python -m bench.sdk_floor``: CPU per call of the two SDK calls on every message's path.

Each message costs the gateway one chat completion (openai SDK) and one
sendMessage (python-telegram-bot). This measures, in one process on the loop
the gateway uses, the CPU each of those calls takes through the SDK as the
gateway makes it, against the same HTTP exchange made with bare aiohttp: the
difference is the SDK's own cost, a floor under the gateway's CPU per message
that no change in pyclaw's code can remove. The fakes run as separate
processes, so their CPU is not counted.

Example::

    python -m bench.sdk_floor --calls 2000 --history 20
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench._proc import Child, python_module
from bench._session import machine_line
from connectors.telegram._aiohttp_request import AiohttpRequest
from connectors.telegram.runtime import _RawBot
from pyclaw_app.agent.providers.base import ChatMessage
from pyclaw_app.agent.providers.openai_compat import OpenAICompatProvider, to_openai_messages
from tests.fakes.telegram_api import DEFAULT_TOKEN

__all__ = ["main"]

Call = Callable[[], Awaitable[object]]
CHAT = 1001  # bench.fake_telegram's first chat


async def cpu_per_call(call: Call, calls: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per call, ``concurrency`` calls in flight."""
    for _ in range(50):  # warm up: connections, caches
        await call()
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - start) / calls * 1e6


def _history(turns: int) -> list[ChatMessage]:
    return [ChatMessage("system", "You are a helpful assistant."),
            *(ChatMessage("user" if i % 2 == 0 else "assistant", f"message number {i} in this chat")
              for i in range(turns)),
            ChatMessage("user", "and what do you think?")]


async def measure(calls: int, history: int, concurrency: int,
                  logs: Path) -> list[tuple[str, float]]:
    llm = Child("fake-llm", python_module("bench.fake_llm"), log_path=logs / "fake_llm.log")
    telegram = Child("fake-telegram", python_module("bench.fake_telegram"),
                     log_path=logs / "fake_telegram.log")
    rows: list[tuple[str, float]] = []
    try:
        llm_url = f"http://127.0.0.1:{int((await llm.start()).split()[1])}/v1"
        tg_url = f"http://127.0.0.1:{int((await telegram.start()).split()[1])}"
        messages = _history(history)
        body: dict[str, Any] = {"model": "fake-model", "messages": to_openai_messages(messages),
                                "stream": True, "stream_options": {"include_usage": True}}
        provider = OpenAICompatProvider(name="fake", model="fake-model", base_url=llm_url,
                                        api_key="bench")
        bot = _RawBot(DEFAULT_TOKEN, base_url=f"{tg_url}/bot",
                      request=AiohttpRequest(connection_pool_size=8))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{tg_url}/bench/load",  # makes the chat exist
                                    json={"messages": 1, "chats": 1, "rate": 0}) as resp:
                resp.raise_for_status()
            await bot.initialize()
            send = {"chat_id": CHAT, "text": "an answer of ordinary length"}

            async def bare_completion() -> None:
                async with session.post(f"{llm_url}/chat/completions", json=body) as resp:
                    async for _ in resp.content:
                        pass

            async def bare_send() -> None:
                async with session.post(f"{tg_url}/bot{DEFAULT_TOKEN}/sendMessage",
                                        json=send) as resp:
                    await resp.read()

            plan: list[tuple[str, Call]] = [
                (f"chat completion, {history} turns: openai SDK (as the gateway calls it)",
                 lambda: provider.complete(messages)),
                (f"chat completion, {history} turns: bare aiohttp", bare_completion),
                ("sendMessage: python-telegram-bot (as the gateway calls it)",
                 lambda: bot.send_message_raw(dict(send))),
                ("sendMessage: bare aiohttp", bare_send),
            ]
            for name, call in plan:
                rows.append((name, await cpu_per_call(call, calls, concurrency)))
            await bot.shutdown()
            await provider.close()
    finally:
        await telegram.stop()
        await llm.stop()
    return rows


def render(rows: Sequence[tuple[str, float]]) -> str:
    lines = ["| call | CPU µs per call |", "| --- | --- |"]
    lines += [f"| {name} | {micros:,.0f} |" for name, micros in rows]
    by_name = dict(rows)
    sdk = sum(v for k, v in by_name.items() if "bare" not in k)
    bare = sum(v for k, v in by_name.items() if "bare" in k)
    lines.append("")
    lines.append(f"Both SDK calls: {sdk:,.0f} µs per message (at most {1e6 / sdk:,.0f} msg/s on "
                 f"one core with nothing else to do); the same HTTP with bare aiohttp: "
                 f"{bare:,.0f} µs.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--history", type=int, default=20, help="past turns in the prompt")
    parser.add_argument("--concurrency", type=int, default=10, help="calls in flight")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(f"machine: {machine_line()}")
    print(f"command: python -m bench.sdk_floor {' '.join(sys.argv[1:])}\n")
    import uvloop  # the loop `pyclaw gateway` runs on

    with tempfile.TemporaryDirectory(prefix="pyclaw-sdk-floor-") as logs:
        print(render(uvloop.run(measure(args.calls, args.history, args.concurrency,
                                        Path(logs)))))


if __name__ == "__main__":
    main()
