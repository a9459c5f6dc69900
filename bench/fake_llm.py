"""The fake OpenAI API as its own process: ``python -m bench.fake_llm --latency 0.2``.

Serves tests/fakes/openai_api.py's ``FakeOpenAI`` (echo answers, streamed
when asked) on a free loopback port, prints ``READY <port>`` and runs until
SIGTERM. ``--latency`` is added to every completion, and is what the
harness subtracts from the measured latency.
"""

from __future__ import annotations

import argparse
from collections import deque

from bench._fake_platform import run_until_signalled
from tests.fakes.openai_api import FakeOpenAI

__all__: list[str] = []


def _fake(latency: float) -> FakeOpenAI:
    fake = FakeOpenAI(latency=latency)
    fake.requests = deque(maxlen=16)  # type: ignore[assignment]  # bodies pile up otherwise
    return fake


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_llm")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every completion")
    args = parser.parse_args()
    run_until_signalled(lambda: _fake(args.latency))


if __name__ == "__main__":
    main()
