"""The Slack baseline: the least a Socket Mode app can do, written with aiohttp alone.

``python -m bench.baseline_bot_slack --api http://127.0.0.1:P/api/ --app-token xapp-...
--bot-token xoxb-...`` opens a Socket Mode URL with ``apps.connections.open``
(app-level token), connects the WebSocket, acks every envelope as it arrives
and answers every user message with ``chat.postMessage`` ``Echo: <text>`` in
the message's thread. No SDK, no LLM, no store, no ordering guarantee: each
reply is its own task, bounded only by the connection pool. It is what
bench/baseline_bot.py is for Telegram: the gateway's throughput on the same
fake is reported relative to this bot's.

With ``--llm URL --db PATH`` it is the durable baseline (bench/durable.py):
each user message is journaled and committed before its envelope is acked,
and the reply is the fake LLM's answer, recorded once posted.

It does not reconnect: the benchmark's fake never asks it to, and a dropped
socket shows up as lost replies rather than being papered over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import aiohttp

from bench.durable import DurableWork, add_durable_arguments, durable_work, run_loop

__all__: list[str] = []

POOL = 100


async def _post(session: aiohttp.ClientSession, url: str, token: str,
                body: dict[str, Any]) -> dict[str, Any]:
    """One Web API call; Slack answers errors as HTTP 200 with ``ok: false``."""
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}
                            ) as resp:
        data: dict[str, Any] = json.loads(await resp.read())
    if not data.get("ok"):
        raise RuntimeError(f"{url.rpartition('/')[2]} failed: {data.get('error')}")
    return data


def _done(replies: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
    """Forget a finished reply; a failed one is printed (the fake counts it as lost)."""
    replies.discard(task)
    if not task.cancelled() and task.exception() is not None:
        print(f"reply failed: {task.exception()!r}", file=sys.stderr, flush=True)


def _message(envelope: dict[str, Any]) -> dict[str, Any] | None:
    """The user message inside an ``events_api`` envelope, or None (bots, edits, other events)."""
    payload = envelope.get("payload") or {}
    event = payload.get("event") or {}
    if (event.get("type") != "message" or event.get("subtype") or event.get("bot_id")
            or not isinstance(event.get("text"), str)):
        return None
    return event


async def _durable_reply(session: aiohttp.ClientSession, llm: aiohttp.ClientSession, api: str,
                         bot_token: str, work: DurableWork, row: int,
                         event: dict[str, Any]) -> None:
    body = {"channel": event["channel"], "text": await work.answer(llm, event["text"]),
            "thread_ts": event.get("thread_ts") or event["ts"]}
    sent = await _post(session, f"{api}chat.postMessage", bot_token, body)
    work.sent(row, str(sent["ts"]))


async def _listen(session: aiohttp.ClientSession, llm: aiohttp.ClientSession, api: str,
                  bot_token: str, ws: aiohttp.ClientWebSocketResponse,
                  replies: set[asyncio.Task[Any]], work: DurableWork | None) -> None:
    async for frame in ws:
        if frame.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(frame.data)
        if data.get("type") == "disconnect":
            print(f"Slack asked to disconnect ({data.get('reason')})", file=sys.stderr,
                  flush=True)
        envelope_id = data.get("envelope_id")
        if not isinstance(envelope_id, str):
            continue
        event = _message(data) if data.get("type") == "events_api" else None
        reply: Coroutine[Any, Any, Any] | None = None
        if event is not None and work is None:
            body = {"channel": event["channel"], "text": f"Echo: {event['text']}",
                    "thread_ts": event.get("thread_ts") or event["ts"]}
            reply = _post(session, f"{api}chat.postMessage", bot_token, body)
        elif event is not None and work is not None:
            row = work.received(event["channel"], event["ts"], event["text"])  # before the ack
            if row is not None:
                reply = _durable_reply(session, llm, api, bot_token, work, row, event)
        await ws.send_json({"envelope_id": envelope_id})
        if reply is None:
            continue
        task = asyncio.create_task(reply, name=f"baseline:reply:{envelope_id}")
        replies.add(task)
        task.add_done_callback(functools.partial(_done, replies))


async def _run(api: str, app_token: str, bot_token: str, stop: asyncio.Event,
               work: DurableWork | None) -> None:
    replies: set[asyncio.Task[Any]] = set()
    connector = aiohttp.TCPConnector(limit=POOL)
    async with (aiohttp.ClientSession(connector=connector) as session,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL)) as llm):
        opened = await _post(session, f"{api}apps.connections.open", app_token, {})
        async with session.ws_connect(opened["url"], autoping=True) as ws:
            hello = json.loads((await ws.receive()).data)
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello.get('type')!r}")
            print("READY baseline", flush=True)
            listener = asyncio.create_task(
                _listen(session, llm, api, bot_token, ws, replies, work), name="baseline:listen")
            stopping = asyncio.create_task(stop.wait(), name="baseline:stop")
            await asyncio.wait({listener, stopping}, return_when=asyncio.FIRST_COMPLETED)
            await ws.close()
            stopping.cancel()
            ended = await asyncio.gather(listener, stopping, return_exceptions=True)
            if isinstance(ended[0], Exception):
                print(f"listener failed: {ended[0]!r}", file=sys.stderr, flush=True)
        await asyncio.gather(*replies, return_exceptions=True)


async def _main(api: str, app_token: str, bot_token: str, work: DurableWork | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _run(api, app_token, bot_token, stop, work)
    finally:
        if work is not None:
            work.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_bot_slack")
    parser.add_argument("--api", required=True,
                        help="Web API base ending in /api/, e.g. http://127.0.0.1:8081/api/")
    parser.add_argument("--app-token", required=True, help="app-level token (xapp-...)")
    parser.add_argument("--bot-token", required=True, help="bot token (xoxb-...)")
    add_durable_arguments(parser)
    args = parser.parse_args()
    work = durable_work(args)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_main(args.api, args.app_token, args.bot_token, work), uvloop=work is not None)


if __name__ == "__main__":
    main()
