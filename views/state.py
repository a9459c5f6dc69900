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
from pyclaw_app.model import ChannelState, Event, EventKind

__all__ = [
    "LOCAL_CHANNEL",
    "LOCAL_CHAT",
    "ChannelBoard",
    "ChatLine",
    "ChatState",
    "Clock",
    "CountersState",
    "FeedRow",
    "LiveBatcher",
    "TrafficWindow",
    "feed_row_from_event",
    "feed_row_from_traffic",
]

Clock = Callable[[], float]

LOCAL_CHANNEL = "local"
LOCAL_CHAT = "app"


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
    """One bubble in the Chat view: ``role`` is "user", "assistant" or "error"."""

    role: str
    text: str


class ChatState:
    """The local chat conversation and whether a reply is still on its way.

    The user's own lines are shown at once when sent; the gateway echoes them
    back as MESSAGE_RECEIVED, which is then recognised and not shown twice.
    Lines posted to the same chat from elsewhere (the terminal) still appear.
    """

    def __init__(self, chat: str = LOCAL_CHAT, channel: str = LOCAL_CHANNEL) -> None:
        self.chat = chat
        self.channel = channel
        self.lines: list[ChatLine] = []
        self._echo_pending: deque[str] = deque()
        self.waiting = 0

    def load(self, rows: Iterable[TrafficRow]) -> None:
        self.lines = [_chat_line(row) for row in rows]
        self._echo_pending.clear()
        self.waiting = 0

    def clear(self) -> None:
        self.load(())

    def sent(self, text: str) -> ChatLine:
        line = ChatLine("user", text)
        self.lines.append(line)
        self._echo_pending.append(text)
        self.waiting += 1
        return line

    def send_failed(self, error: str) -> ChatLine:
        """chat_send itself raised: no reply will come for that message."""
        self.waiting = max(0, self.waiting - 1)
        line = ChatLine("error", error)
        self.lines.append(line)
        return line

    def apply(self, events: Sequence[Event]) -> list[ChatLine]:
        """Apply events of this chat; returns the lines added."""
        added: list[ChatLine] = []
        for event in events:
            if event.channel != self.channel or event.data.get("chat") != self.chat:
                continue
            if event.kind is EventKind.MESSAGE_RECEIVED:
                text = str(event.data.get("text", ""))
                if self._echo_pending and self._echo_pending[0] == text:
                    self._echo_pending.popleft()
                    continue
                added.append(ChatLine("user", text))
            elif event.kind is EventKind.REPLY_SENT:
                self.waiting = max(0, self.waiting - 1)
                added.append(ChatLine("assistant", str(event.data.get("text", ""))))
            elif event.kind is EventKind.MESSAGE_FAILED:
                self.waiting = max(0, self.waiting - 1)
                added.append(ChatLine("error", str(event.data.get("error", "failed"))))
        self.lines.extend(added)
        return added


def _chat_line(row: TrafficRow) -> ChatLine:
    if row.error:
        return ChatLine("error", row.error)
    return ChatLine("user" if row.direction == "in" else "assistant", row.text)


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
