"""The fake OpenAI API as its own process: ``python -m bench.fake_llm --latency 0.2``.

Serves tests/fakes/openai_api.py's ``FakeOpenAI`` (echo answers, streamed
when asked) on a free loopback port, prints ``READY <port>`` and runs until
SIGTERM. ``--latency`` is added to every completion, and is what the
harness subtracts from the measured latency.

``--stream-seconds S`` makes it a model that writes as it thinks: every
answer is :data:`STREAM_CHUNKS` content chunks of the API's streamed
``chat.completion.chunk`` events, written one by one with equal pauses so
that the whole stream (role chunk, content, finish chunk, usage chunk,
``[DONE]``) takes S seconds. The answer is the echo, padded to a fixed
length and ending with :data:`END_MARK`, so the fake platform can tell the
finished reply from the drafts a streaming gateway edits on the way.
``GET /bench/report`` says how many answers were in flight at most, and how
long each stream really took (the fake's own lag on a loaded machine).
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from typing import Any

from aiohttp import web

from bench._fake_platform import run_until_signalled
from tests.fakes.openai_api import FakeOpenAI, echo
from tests.fakes.server import json_response

__all__ = ["END_MARK", "STREAM_CHUNKS", "BenchOpenAI"]

STREAM_CHUNKS = 20
"""Content chunks per streamed answer: a short paragraph, at the fake's 8 characters a chunk."""
END_MARK = "(end of answer)"
"""The last words of every streamed answer: a reply showing them is complete."""
_EVENTS_AROUND = 3
"""Events of a stream besides its content chunks: the role chunk, the finish chunk and the
usage chunk (the gateway asks for ``stream_options.include_usage``)."""
_FILLER = ("and here the model goes on thinking aloud, one word after another, "
           "as streamed answers do ")


class BenchOpenAI(FakeOpenAI):
    def __init__(self, latency: float, stream_seconds: float) -> None:
        chunk_size = 8
        super().__init__(latency=latency, chunk_size=chunk_size,
                         chunk_delay=stream_seconds / (STREAM_CHUNKS + _EVENTS_AROUND),
                         responder=self._paced_answer if stream_seconds else echo)
        self.requests = deque(maxlen=16)  # type: ignore[assignment]  # bodies pile up otherwise
        self._length = STREAM_CHUNKS * chunk_size
        self.stream_ms: list[float] = []
        """How long each completion took here, from its request to its last byte."""

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/bench/report", self._report)

    def _paced_answer(self, messages: list[dict[str, Any]]) -> str:
        """The echo, cut or padded to exactly ``STREAM_CHUNKS`` chunks, ending in END_MARK."""
        head = f"{echo(messages)} "
        body = (head + _FILLER * (self._length // len(_FILLER) + 1))[:self._length - len(END_MARK)]
        return body + END_MARK

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        try:
            return await super()._completions(request)
        finally:
            self.stream_ms.append((time.monotonic() - start) * 1000)

    async def _report(self, request: web.Request) -> web.Response:
        return json_response({"max_in_flight": self.max_in_flight, "in_flight": self.in_flight,
                              "completions": len(self.stream_ms), "stream_ms": self.stream_ms})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_llm")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every completion")
    parser.add_argument("--stream-seconds", type=float, default=0.0,
                        help="spread every streamed answer over this many seconds (0: the "
                             "echo, streamed at once)")
    args = parser.parse_args()
    run_until_signalled(lambda: BenchOpenAI(args.latency, args.stream_seconds))


if __name__ == "__main__":
    main()
