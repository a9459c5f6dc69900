"""The fake OpenAI API as its own process: ``python -m bench.fake_llm --latency 0.2``.

Serves tests/fakes/openai_api.py's ``FakeOpenAI`` (echo answers, streamed
when asked) on a free loopback port, prints ``READY <port>`` and runs until
SIGTERM. ``--latency`` is added to every completion, and is what the
harness subtracts from the measured latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import deque

from tests.fakes.openai_api import FakeOpenAI

__all__: list[str] = []


async def _serve(latency: float) -> None:
    fake = FakeOpenAI(latency=latency)
    fake.requests = deque(maxlen=16)  # type: ignore[assignment]  # bodies pile up otherwise
    await fake.start()
    print(f"READY {fake.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_llm")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every completion")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.latency))


if __name__ == "__main__":
    main()
