"""View state as plain data: what the live views show, kept apart from Flet to be tested alone.

The views are functions of these objects. Events from the ControlPlane are
applied here in batches (design §5: at most ~10 applications a second, one
bounded window of rows), and the Flet side only mirrors what changed.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pyclaw_app.control import ChannelStatus, Counters, TrafficRow
from pyclaw_app.control.types import ChatFile
from pyclaw_app.model import ChannelState, Event, EventKind

__all__ = [
    "CHAT_WINDOW",
    "LOCAL_CHANNEL",
    "LOCAL_CHAT",
    "ChannelBoard",
    "ChatLine",
    "ChatState",
    "Clock",
    "CountersState",
    "FeedRow",
    "LiveBatcher",
    "MessageRate",
    "TrafficWindow",
    "feed_row_from_event",
    "feed_row_from_traffic",
]

Clock = Callable[[], float]

LOCAL_CHANNEL = "local"
LOCAL_CHAT = "app"
CHAT_WINDOW = 500


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One line of the live traffic feed; ``direction`` is "in", "out" or "failed"."""

    key: str
    ts: float
    direction: str
    channel: str
    chat: str
    sender: str
    text: str
    latency_ms: float | None = None
    error: str = ""


def feed_row_from_traffic(row: TrafficRow) -> FeedRow:
    """A journal row as the feed shows it; a failed one is shown as a red "failed" row."""
    failed = row.status == "failed" or bool(row.error)
    return FeedRow(
        key=f"{'failed' if failed else row.direction}:{row.id}",
        ts=row.ts,
        direction="failed" if failed else row.direction,
        channel=row.channel,
        chat=row.chat,
        sender=row.sender or ("assistant" if row.direction == "out" else ""),
        text=f"{row.text} — {row.error}" if row.error and row.text else row.text or row.error or "",
        latency_ms=row.latency_ms,
        error=row.error or "",
    )


def feed_row_from_event(event: Event) -> FeedRow | None:
    """The feed row an event stands for, or None when the event is not traffic."""
    data = event.data
    if event.kind is EventKind.MESSAGE_RECEIVED:
        return FeedRow(key=f"in:{data.get('id')}", ts=float(data.get("ts") or event.ts),
                       direction="in", channel=event.channel, chat=str(data.get("chat", "")),
                       sender=str(data.get("sender", "")), text=str(data.get("text", "")))
    if event.kind is EventKind.REPLY_SENT:
        latency = data.get("latency_ms")
        return FeedRow(key=f"out:{data.get('id')}", ts=event.ts, direction="out",
                       channel=event.channel, chat=str(data.get("chat", "")), sender="assistant",
                       text=str(data.get("text", "")),
                       latency_ms=float(latency) if latency is not None else None)
    if event.kind is EventKind.MESSAGE_FAILED:
        error = str(data.get("error", ""))
        return FeedRow(key=f"failed:{data.get('id')}", ts=event.ts, direction="failed",
                       channel=event.channel, chat=str(data.get("chat", "")), sender="",
                       text=error, error=error)
    return None


class TrafficWindow:
    """The newest ``maxlen`` feed rows; pushing reports exactly what to add and what fell out.

    A view mirrors the window by inserting the added rows and dropping the
    evicted count from the old end, so it never rebuilds all rows per batch.
    """

    def __init__(self, maxlen: int = 300) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self._rows: deque[FeedRow] = deque()
        self._keys: set[str] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    @property
    def rows(self) -> list[FeedRow]:
        """Oldest first."""
        return list(self._rows)

    def push(self, rows: Iterable[FeedRow]) -> tuple[list[FeedRow], int]:
        """Append rows (oldest first); returns (rows now in the window, how many old rows left it).

        A row whose key is already shown is skipped: the snapshot loaded at start
        and the live subscription opened just before it may both carry it.
        """
        new: list[FeedRow] = []
        seen: set[str] = set()
        for row in rows:
            if row.key not in self._keys and row.key not in seen:
                new.append(row)
                seen.add(row.key)
        new = new[-self.maxlen:]
        overflow = max(0, len(self._rows) + len(new) - self.maxlen)
        for _ in range(overflow):
            self._keys.discard(self._rows.popleft().key)
        self._rows.extend(new)
        self._keys.update(row.key for row in new)
        return new, overflow

    def clear(self) -> None:
        self._rows.clear()
        self._keys.clear()


class CountersState:
    """Today's in/out/failed totals, moved on by events and reset when the local day changes."""

    def __init__(self, counters: Counters | None = None, *, today: Callable[[], date] = date.today
                 ) -> None:
        self._today = today
        self.day = today()
        self.counters = counters or Counters()

    def reset(self, counters: Counters) -> None:
        self.day = self._today()
        self.counters = counters

    def apply(self, events: Sequence[Event]) -> bool:
        """Count traffic events of today; returns whether anything changed."""
        changed = False
        for event in events:
            field = _COUNTED.get(event.kind)
            if field is None:
                continue
            day = datetime.fromtimestamp(event.ts).date()
            if day > self.day:
                self.day, self.counters = day, Counters()
            elif day < self.day:
                continue
            value = getattr(self.counters, field) + 1
            self.counters = dataclasses.replace(self.counters, **{field: value})
            changed = True
        return changed


_COUNTED = {
    EventKind.MESSAGE_RECEIVED: "inbound",
    EventKind.REPLY_SENT: "outbound",
    EventKind.MESSAGE_FAILED: "failed",
}


class ChannelBoard:
    """Channel statuses by name, in the order the plane listed them, kept current by events."""

    def __init__(self, channels: Iterable[ChannelStatus] = ()) -> None:
        self.channels: dict[str, ChannelStatus] = {c.name: c for c in channels}

    def reset(self, channels: Iterable[ChannelStatus]) -> None:
        self.channels = {c.name: c for c in channels}

    def apply(self, events: Sequence[Event]) -> set[str]:
        """Apply state changes and message times; returns the names whose status changed."""
        changed: set[str] = set()
        for event in events:
            name = event.channel
            if not name:
                continue
            current = self.channels.get(name)
            if event.kind is EventKind.CHANNEL_STATE:
                state = str(event.data.get("state", ChannelState.OFFLINE))
                reason = str(event.data.get("reason", ""))
                if current is None:
                    current = ChannelStatus(name=name, type="", title=name, icon="", state=state)
                last_error = reason if state in _ERROR_STATES and reason else current.last_error
                self.channels[name] = dataclasses.replace(current, state=state, reason=reason,
                                                          last_error=last_error)
                changed.add(name)
            elif current is not None and event.kind in _TRAFFIC:
                ts = float(event.data.get("ts") or event.ts)
                if current.last_message_ts is None or ts > current.last_message_ts:
                    self.channels[name] = dataclasses.replace(current, last_message_ts=ts)
                    changed.add(name)
        return changed


_ERROR_STATES = {ChannelState.DEGRADED.value, ChannelState.OFFLINE.value}
_TRAFFIC = {EventKind.MESSAGE_RECEIVED, EventKind.REPLY_SENT}


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One bubble in the Chat view: ``role`` is "user", "assistant" or "error".

    ``reply_to`` is the inbound journal id an assistant or error line answers;
    ``streaming`` marks the assistant bubble still being written by the model;
    ``ts`` is when the line was written (sent, received, answered), None if unknown;
    ``file`` is set on an assistant line that is a file it sent (``text`` is its name).
    """

    role: str
    text: str
    reply_to: int | None = None
    streaming: bool = False
    ts: float | None = None
    file: ChatFile | None = None


class ChatState:
    """The local chat conversation and whether a reply is still on its way.

    The user's own lines are shown at once when sent; the gateway echoes them
    back as MESSAGE_RECEIVED, which is then recognised and not shown twice.
    Lines posted to the same chat from elsewhere (the terminal) still appear.

    A reply being written grows one bubble from REPLY_DELTA events, keyed by the
    inbound journal id; REPLY_RESET empties it (the model started over), and
    REPLY_SENT (full text, always right) or MESSAGE_FAILED turn that same bubble
    into the final line, so a streamed reply never shows twice.

    Only the newest ``maxlen`` lines are kept: the Chat view stays mounted while
    hidden and would otherwise grow for as long as the app runs. ``dropped``
    counts the lines cut from the front since the last load, so a view can cut
    its own bubbles to match.
    """

    def __init__(self, chat: str = LOCAL_CHAT, channel: str = LOCAL_CHANNEL, *,
                 maxlen: int = CHAT_WINDOW, clock: Clock = time.time) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._clock = clock  # the time of the user's own line, shown before the gateway has it
        self.chat = chat
        self.channel = channel
        self.maxlen = maxlen
        self.lines: list[ChatLine] = []
        self.dropped = 0
        self._echo_pending: deque[str] = deque()
        self._streams: dict[int, int] = {}  # inbound id -> index in lines of its growing bubble
        self._cut_streams: set[int] = set()  # growing bubbles cut from the window
        self._files: set[tuple[int, int]] = set()  # (reply id, part) of the files placed
        self.waiting = 0

    def load(self, rows: Iterable[TrafficRow], files: Iterable[ChatFile] = ()) -> None:
        self.lines = _chat_lines(rows)[-self.maxlen:]
        self.dropped = 0
        self._echo_pending.clear()
        self._streams.clear()
        self._cut_streams.clear()
        self._files.clear()
        self.waiting = 0
        for file in files:
            self.add_file(file)
        self.dropped = 0  # what a load cuts is never shown, so no view has it to cut

    def add_file(self, file: ChatFile) -> int | None:
        """Place a file the assistant sent beside its reply's text: before it when it went
        first (a tool's file), after it otherwise, after the reply's files placed already;
        at the end while that reply has no line. Returns the index it was inserted at
        (before any cut from the front, which ``dropped`` counts), None when it is shown
        already.

        A file arrives once its reply is done (``ChatView`` asks on REPLY_SENT), so the
        text line it goes next to is final and in place.
        """
        key = (file.reply_id, file.idx)
        if key in self._files:
            return None
        self._files.add(key)
        line = ChatLine("assistant", file.name, reply_to=file.reply_to_id, ts=file.ts, file=file)
        index = self._file_place(file)
        self.lines.insert(index, line)
        self._streams = {k: i + 1 if i >= index else i for k, i in self._streams.items()}
        excess = len(self.lines) - self.maxlen
        if excess > 0:
            self._cut_front(excess)
        return index

    def _file_place(self, file: ChatFile) -> int:
        same = [i for i, line in enumerate(self.lines) if line.reply_to == file.reply_to_id
                and line.role != "user" and file.reply_to_id is not None]
        text = next((i for i in same if self.lines[i].file is None), None)
        if text is None:
            return same[-1] + 1 if same else len(self.lines)
        if file.before_text:
            return text
        after = [i for i in same if i > text]
        return after[-1] + 1 if after else text + 1

    def clear(self) -> None:
        self.load(())

    def sent(self, text: str) -> ChatLine:
        line = ChatLine("user", text, ts=self._clock())
        self._append(line)
        self._echo_pending.append(text)
        self.waiting += 1
        return line

    def send_failed(self, error: str) -> ChatLine:
        """chat_send itself raised: no reply will come for that message."""
        self.waiting = max(0, self.waiting - 1)
        line = ChatLine("error", error, ts=self._clock())
        self._append(line)
        return line

    def apply(self, events: Sequence[Event]) -> list[int]:
        """Apply events of this chat; returns the indexes of ``lines`` added or changed, ascending.

        An index past the end of what the view shows is a new line (appended in
        order); any other one is a bubble to redraw. Lines cut from the front
        meanwhile are counted in ``dropped``, and not listed.
        """
        touched: set[int] = set()  # counted from the first line of the last load
        for event in events:
            if event.channel != self.channel or event.data.get("chat") != self.chat:
                continue
            index = self._apply_one(event)
            if index is not None:
                touched.add(self.dropped + index)
        return sorted(i - self.dropped for i in touched if i >= self.dropped)

    def _apply_one(self, event: Event) -> int | None:
        """One event of this chat; returns the index of the line it added or changed."""
        data = event.data
        if event.kind is EventKind.MESSAGE_RECEIVED:
            text = str(data.get("text", ""))
            if self._echo_pending and self._echo_pending[0] == text:
                self._echo_pending.popleft()
                return None
            return self._append(ChatLine("user", text, ts=float(data.get("ts") or event.ts)))
        if event.kind is EventKind.REPLY_DELTA:
            return self._grow(_int(data.get("id")), str(data.get("delta", "")), event.ts)
        if event.kind is EventKind.REPLY_RESET:
            inbound = _int(data.get("id"))
            index = self._streams.get(inbound) if inbound is not None else None
            if index is not None:
                self.lines[index] = dataclasses.replace(self.lines[index], text="")
            return index
        if event.kind is EventKind.REPLY_SENT:
            inbound = _int(data.get("reply_to_id"))
            return self._finish(inbound, "assistant", str(data.get("text", "")), event.ts)
        if event.kind is EventKind.MESSAGE_FAILED:
            return self._finish(_int(data.get("id")), "error", str(data.get("error", "failed")),
                                event.ts)
        return None

    def _append(self, line: ChatLine) -> int:
        """Add a line, cutting the oldest past ``maxlen``; returns its index."""
        self.lines.append(line)
        excess = len(self.lines) - self.maxlen
        if excess > 0:
            self._cut_front(excess)
        return len(self.lines) - 1

    def _cut_front(self, excess: int) -> None:
        del self.lines[:excess]
        self.dropped += excess
        self._cut_streams.update(k for k, i in self._streams.items() if i < excess)
        self._streams = {k: i - excess for k, i in self._streams.items() if i >= excess}

    def _grow(self, inbound: int | None, delta: str, ts: float) -> int | None:
        """Add ``delta`` to the reply's bubble; a bubble already cut is not started again."""
        if inbound in self._cut_streams:
            return None
        index = self._streams.get(inbound) if inbound is not None else None
        if index is None:
            index = self._append(ChatLine("assistant", delta, reply_to=inbound, streaming=True,
                                          ts=ts))
            if inbound is not None:
                self._streams[inbound] = index
            return index
        line = self.lines[index]
        self.lines[index] = dataclasses.replace(line, text=line.text + delta)
        return index

    def _finish(self, inbound: int | None, role: str, text: str, ts: float) -> int:
        """Reply to ``inbound`` done: its streamed bubble becomes that line, or one is added."""
        self.waiting = max(0, self.waiting - 1)
        line = ChatLine(role, text, reply_to=inbound, ts=ts)
        index = self._streams.pop(inbound, None) if inbound is not None else None
        self._cut_streams.discard(inbound)
        if index is None:
            return self._append(line)
        self.lines[index] = line
        return index


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _chat_lines(rows: Iterable[TrafficRow]) -> list[ChatLine]:
    """Journal rows (oldest first) as bubbles, as they read live: a failed question keeps
    its text, with its error once below it (not again for the notice row sent instead)."""
    lines: list[ChatLine] = []
    failed: set[int] = set()
    for row in rows:
        if row.direction == "in":
            if row.text:
                lines.append(ChatLine("user", row.text, ts=row.ts))
            if row.error:
                failed.add(row.id)
                lines.append(ChatLine("error", row.error, reply_to=row.id, ts=row.ts))
        elif row.error:
            if row.reply_to_id not in failed:
                lines.append(ChatLine("error", row.error, reply_to=row.reply_to_id, ts=row.ts))
        else:
            lines.append(ChatLine("assistant", row.text, reply_to=row.reply_to_id, ts=row.ts))
    return lines


class MessageRate:
    """Messages (received and replied) per minute per channel over the last ``minutes`` minutes.

    Counts live in one small dict per channel keyed by minute number
    (``ts // 60``), so an event costs a dict increment and the chart reads at
    most ``minutes`` values per channel; minutes that leave the window are
    dropped as the clock moves on.
    """

    def __init__(self, minutes: int = 60, *, clock: Clock = time.time) -> None:
        if minutes < 1:
            raise ValueError("minutes must be at least 1")
        self.minutes = minutes
        self._clock = clock
        self._counts: dict[str, dict[int, int]] = {}
        self.partial_before: float | None = None
        """Set when the history loaded was cut short: counts before this time are too low."""

    def current_minute(self) -> int:
        return int(self._clock() // 60)

    def reset(self, rows: Iterable[TrafficRow], *, complete: bool = True) -> None:
        """Start from journal rows; ``complete=False`` says older rows exist that were not read."""
        self._counts.clear()
        oldest: float | None = None
        for row in rows:
            if row.direction in ("in", "out"):
                self.add(row.channel, row.ts)
                oldest = row.ts if oldest is None else min(oldest, row.ts)
        start = (self.current_minute() - self.minutes + 1) * 60
        cut_short = not complete and oldest is not None and oldest > start
        self.partial_before = oldest if cut_short else None

    def add(self, channel: str, ts: float) -> bool:
        """Count one message; False when it is older than the window."""
        now = self.current_minute()
        minute = min(int(ts // 60), now)  # a sender clock slightly ahead counts as now
        if minute <= now - self.minutes:
            return False
        buckets = self._counts.setdefault(channel, {})
        buckets[minute] = buckets.get(minute, 0) + 1
        return True

    def apply(self, events: Sequence[Event]) -> bool:
        """Count message.received and reply.sent events; returns whether any was counted."""
        changed = False
        for event in events:
            if event.kind in _TRAFFIC and event.channel:
                ts = float(event.data.get("ts") or event.ts)
                changed = self.add(event.channel, ts) or changed
        return changed

    def series(self) -> dict[str, list[int]]:
        """Per channel with traffic in the window: counts per minute, oldest first.

        Also forgets the minutes (and channels) that have left the window.
        """
        now = self.current_minute()
        first = now - self.minutes + 1
        out: dict[str, list[int]] = {}
        for channel in list(self._counts):
            buckets = {m: n for m, n in self._counts[channel].items() if m >= first}
            if not buckets:
                del self._counts[channel]
                continue
            self._counts[channel] = buckets
            out[channel] = [buckets.get(m, 0) for m in range(first, now + 1)]
        if self.partial_before is not None and self.partial_before < first * 60:
            self.partial_before = None
        return out


class LiveBatcher:
    """Decides when accumulated events are handed to the views, and when the clock ticks.

    Nothing is released sooner than ``min_interval`` after the previous release,
    so the page updates at most ~10 times a second however fast events come.
    With no events, a bare tick (refreshing "N s ago" labels) is released every
    ``tick_interval``; every release refreshes those labels too.
    """

    def __init__(self, *, min_interval: float = 0.1, tick_interval: float = 1.0,
                 clock: Clock = time.monotonic) -> None:
        self.min_interval = min_interval
        self.tick_interval = tick_interval
        self._clock = clock
        self._pending: list[Event] = []
        now = clock()
        self._last_release = now - min_interval
        self._last_tick = now

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, events: Iterable[Event]) -> None:
        self._pending.extend(events)

    def next_wait(self) -> float:
        """Seconds until something may be due: the reader waits for events at most this long."""
        earliest = self._last_release + self.min_interval
        if not self._pending:
            earliest = max(earliest, self._last_tick + self.tick_interval)
        return max(0.0, earliest - self._clock())

    def take(self) -> list[Event] | None:
        """The batch to apply now (empty for a bare tick), or None when nothing is due yet."""
        now = self._clock()
        if now - self._last_release < self.min_interval:
            return None
        if not self._pending and now - self._last_tick < self.tick_interval:
            return None
        batch, self._pending = self._pending, []
        self._last_release = self._last_tick = now
        return batch
