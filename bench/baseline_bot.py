"""The baseline: the least a Telegram bot can do, written with aiohttp alone.

``python -m bench.baseline_bot --api http://127.0.0.1:P/bot<token>`` long-polls
getUpdates and answers every text message with ``Echo: <text>`` as a reply to
it. No LLM, no store, no ordering guarantee: each reply is its own task and
the next poll starts at once, bounded only by the connection pool. What the
gateway reaches relative to this bot on the same fake is the ratio the
benchmark reports ("how close are we to what this machine can do").

With ``--llm URL --db PATH`` it is the durable baseline (bench/durable.py):
every update of a batch is journaled and committed before the next getUpdates
confirms it, and the reply is the fake LLM's answer, recorded once sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import signal
import sys
from typing import Any

import aiohttp

from bench.durable import DurableWork, add_durable_arguments, durable_work, run_loop

__all__: list[str] = []

POOL = 100


async def _reply(session: aiohttp.ClientSession, api: str, message: dict[str, Any]) -> None:
    body = {"chat_id": message["chat"]["id"], "text": f"Echo: {message['text']}",
            "reply_parameters": {"message_id": message["message_id"]}}
    async with session.post(f"{api}/sendMessage", json=body) as resp:
        await resp.read()


async def _durable_reply(session: aiohttp.ClientSession, llm: aiohttp.ClientSession, api: str,
                         work: DurableWork, row: int, message: dict[str, Any]) -> None:
    body = {"chat_id": message["chat"]["id"], "text": await work.answer(llm, message["text"]),
            "reply_parameters": {"message_id": message["message_id"]}}
    async with session.post(f"{api}/sendMessage", json=body) as resp:
        sent = json.loads(await resp.read())
    if not sent.get("ok"):
        raise RuntimeError(f"sendMessage failed: {sent.get('description')}")
    work.sent(row, str(sent["result"]["message_id"]))


def _done(replies: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    """Forget a finished reply; a failed one is printed (the fake counts it as lost)."""
    replies.discard(task)
    if not task.cancelled() and task.exception() is not None:
        print(f"reply failed: {task.exception()!r}", file=sys.stderr, flush=True)


async def _run(api: str, stop: asyncio.Event, work: DurableWork | None) -> None:
    replies: set[asyncio.Task[None]] = set()
    offset = 0
    connector = aiohttp.TCPConnector(limit=POOL)
    async with (aiohttp.ClientSession(connector=connector) as session,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL)) as llm):
        async with session.post(f"{api}/deleteWebhook", json={}) as resp:
            await resp.read()
        print("READY baseline", flush=True)
        while not stop.is_set():
            async with session.post(f"{api}/getUpdates",
                                    json={"offset": offset, "timeout": 1, "limit": 100}) as resp:
                updates = json.loads(await resp.read())["result"]
            for update in updates:
                offset = max(offset, update["update_id"] + 1)
                message = update.get("message") or {}
                if not isinstance(message.get("text"), str):
                    continue
                if work is None:
                    reply = _reply(session, api, message)
                else:
                    row = work.received(str(message["chat"]["id"]), str(message["message_id"]),
                                        message["text"])
                    if row is None:
                        continue
                    reply = _durable_reply(session, llm, api, work, row, message)
                task = asyncio.create_task(reply, name=f"baseline:reply:{update['update_id']}")
                replies.add(task)
                task.add_done_callback(functools.partial(_done, replies))
        await asyncio.gather(*replies, return_exceptions=True)


async def _main(api: str, work: DurableWork | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _run(api, stop, work)
    finally:
        if work is not None:
            work.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_bot")
    parser.add_argument("--api", required=True, help="Bot API base including the token, "
                        "e.g. http://127.0.0.1:8081/bot123:ABC")
    add_durable_arguments(parser)
    args = parser.parse_args()
    work = durable_work(args)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_main(args.api, work), uvloop=work is not None)


if __name__ == "__main__":
    main()
