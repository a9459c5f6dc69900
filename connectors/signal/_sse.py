"""Server-sent events as signal-cli's daemon writes them, decoded from bytes as they arrive.

The framing is the WHATWG event-stream format: lines end in LF, CRLF or CR; ``field:value``
(one optional space after the colon); ``data`` lines of one event are joined with LF; a
blank line ends the event; a line starting with ``:`` is a comment (signal-cli's keep-alive,
``:`` every 15 s). signal-cli writes ``event:receive`` and one ``data:`` line per message
and no ``id:`` (``ServerSentEventSender``, ``HttpServerHandler`` in AsamK/signal-cli), so
there is no ``Last-Event-ID`` to resume from: the id and retry fields are read and
ignored. The decoder never raises; a line longer than ``max_line`` bytes is dropped up to
its end and counted in ``oversized``, so a broken stream cannot fill the memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_LINE", "SseDecoder", "SseEvent"]

MAX_LINE = 8 * 1024 * 1024
"""Bytes of one line: far above any envelope (attachments travel as ids, not bytes)."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str


@dataclass
class SseDecoder:
    max_line: int = MAX_LINE
    oversized: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: bool = False
    _after_cr: bool = False
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events that ``chunk`` completes, in order."""
        events: list[SseEvent] = []
        for line in self._lines(chunk):
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _lines(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        if self._after_cr and chunk[:1] == b"\n":
            start = 1  # the LF of a CRLF split between two chunks
        self._after_cr = False
        i = start
        while i < len(chunk):
            byte = chunk[i]
            if byte in (0x0A, 0x0D):
                self._take(chunk[start:i], lines)
                if byte == 0x0D:
                    if i + 1 == len(chunk):
                        self._after_cr = True
                    elif chunk[i + 1] == 0x0A:
                        i += 1
                start = i + 1
            i += 1
        self._grow(chunk[start:])
        return lines

    def _take(self, tail: bytes, lines: list[bytes]) -> None:
        self._grow(tail)
        if self._skipping:
            self._skipping = False
        else:
            lines.append(bytes(self._buffer))
        self._buffer.clear()

    def _grow(self, part: bytes) -> None:
        if self._skipping:
            return
        self._buffer.extend(part)
        if len(self._buffer) > self.max_line:
            self.oversized += 1
            self._skipping = True
            self._buffer.clear()
            self._event, self._data = "", []  # the event it belonged to is incomplete

    def _line(self, raw: bytes) -> SseEvent | None:
        line = raw.decode("utf-8", "replace")
        if not line:
            event = SseEvent(self._event or "message", "\n".join(self._data)) \
                if self._data else None
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None
