"""The conversation view's read model: one chat, or one person's direct chats on every linked
channel, read as exchanges, newest page first.

An *exchange* is what a chat shows as one step: a message (a question, a scheduled firing,
or a message the gateway sent on its own), the LLM calls and tool calls its turn made, and
the replies (a retry answers again; a notice is a reply with an error). Exchanges are keyed
by their message's journal id, so in a burst a reply journaled after later questions still
sits under its own question.

A person's timeline holds only their direct conversations: a group they wrote in is someone
else's conversation too, so it is listed (``elsewhere``) and opened on its own, never mixed
in. LLM calls come from ``llm_calls`` (``message_id``), tool calls from the channel log
lines the turn wrote ("message 42: tool calculate({...}) -> 42", see
``gateway/turn.py``). Every text goes through the redactor on the way out, as log lines do
on the way in.

The dataclasses import nothing but the row types, so the Android monitor decodes pages
with them; the queries run on the gateway only and take the store as an argument.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from pyclaw_app.control.types import AccountRow, PersonRow, TrafficRow

if TYPE_CHECKING:
    from pyclaw_app.store.identities import Identity

__all__ = ["DEFAULT_EXCHANGES", "MAX_EXCHANGES", "ChatRow", "ConversationPage", "Exchange",
           "LlmCall", "ToolCall", "describe_chat", "parse_tool_line", "person_row",
           "read_conversation"]

DEFAULT_EXCHANGES = 30
MAX_EXCHANGES = 200
"""The most exchanges one page may hold: a long chat is read page by page, never whole."""
_TOOL_LINE = re.compile(r"^(?:scheduled )?message (\d+): tool ([^\s(]+)\((.*?)\) -> (.*)\Z",
                        re.DOTALL)
_TOOL_PATTERNS = ("message %: tool %", "scheduled message %: tool %")
_TURN_SLACK = 5.0
"""Seconds after an exchange's last write in which its tool lines may still be stamped (the
log is written in batches)."""
_COLUMNS = ("id, direction, channel, chat, thread, conv, sender_id, sender_name, text, status,"
            " error, reply_to, created_at, updated_at")

Redact = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class LlmCall:
    """One provider call a turn made (tool rounds and failover make several)."""

    ts: float
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cost: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool the model ran in a turn; ``arguments`` and ``result`` as the log kept them
    (clipped when long)."""

    ts: float
    name: str
    arguments: str
    result: str
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Exchange:
    message: TrafficRow
    replies: tuple[TrafficRow, ...] = ()
    llm_calls: tuple[LlmCall, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRow:
    """A conversation as the view names and opens it (``conv`` is the journal's key)."""

    conv: str
    channel: str
    chat: str
    thread: str | None
    is_group: bool
    last_ts: float


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of a conversation: ``exchanges`` oldest first; ``older`` is the
    ``before_id`` that reads the page before it (None: this page starts the conversation)."""

    title: str
    chats: tuple[ChatRow, ...]
    """The conversations in this timeline (several for a person on several channels)."""
    exchanges: tuple[Exchange, ...]
    older: int | None = None
    person: PersonRow | None = None
    """Who the timeline is about: set for a person, and for a direct chat with a linked
    account (the view then offers the person's whole timeline)."""
    elsewhere: tuple[ChatRow, ...] = ()
    """The person's group chats: theirs and others', each opened on its own."""


def person_row(identity: Identity) -> PersonRow:
    """An identity as the views list it, named by its own name or its first named account."""
    accounts = tuple(AccountRow(a.channel, a.sender_id, a.sender_name, a.via, a.linked_at)
                     for a in identity.accounts)
    name = identity.name or next((a.sender_name for a in accounts if a.sender_name), "")
    return PersonRow(identity.id, name or (accounts[0].sender_id if accounts else ""), accounts)


def parse_tool_line(message: str) -> tuple[int, str, str, str] | None:
    """(message id, tool, arguments, result) of a turn's tool line; None for any other line."""
    match = _TOOL_LINE.match(message)
    if match is None:
        return None
    return int(match.group(1)), match.group(2), match.group(3), match.group(4)


class _Db(Protocol):
    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...


class _Identities(Protocol):
    async def get(self, identity_id: int) -> Identity | None: ...

    async def identity_of(self, channel: str, sender_id: str) -> Identity | None: ...

    async def conversations_of(self, accounts: Sequence[tuple[str, str]], limit: int = 100
                               ) -> list[Any]: ...


class _Store(Protocol):
    @property
    def db(self) -> _Db: ...

    @property
    def identities(self) -> _Identities: ...


@dataclass(frozen=True, slots=True)
class _Scope:
    title: str
    chats: tuple[ChatRow, ...]
    person: PersonRow | None = None
    elsewhere: tuple[ChatRow, ...] = ()


async def read_conversation(store: _Store, redact: Redact, *, person_id: int | None = None,
                            message_id: int | None = None, conv: str | None = None,
                            before_id: int | None = None, limit: int = DEFAULT_EXCHANGES
                            ) -> ConversationPage | None:
    """The newest ``limit`` exchanges before ``before_id`` of a person's direct chats, of the
    chat a journal message belongs to, or of a conversation key: exactly one of the three.
    None when there is no such person, message or conversation."""
    chosen = [v for v in (person_id, message_id, conv) if v is not None]
    if len(chosen) != 1:
        raise ValueError("name exactly one of person_id, message_id or conv")
    if person_id is not None:
        scope = await _person_scope(store, person_id)
    else:
        scope = await _chat_scope(store, message_id, conv)
    if scope is None:
        return None
    limit = max(1, min(limit, MAX_EXCHANGES))
    exchanges, older = await _exchanges(store.db, redact, [c.conv for c in scope.chats],
                                        before_id, limit)
    return ConversationPage(scope.title, scope.chats, tuple(exchanges), older, scope.person,
                            scope.elsewhere)


# ---- what the page is about ----------------------------------------------------------------

async def _person_scope(store: _Store, person_id: int) -> _Scope | None:
    identity = await store.identities.get(person_id)
    if identity is None:
        return None
    person = person_row(identity)
    rows = await store.identities.conversations_of([a.key for a in identity.accounts])
    chats = [ChatRow(r["conv"], r["channel"], r["chat"], r["thread"], bool(r["is_group"]),
                     r["last_ts"]) for r in rows]
    return _Scope(person.name, tuple(c for c in chats if not c.is_group), person,
                  tuple(c for c in chats if c.is_group))


async def _chat_scope(store: _Store, message_id: int | None, conv: str | None
                      ) -> _Scope | None:
    db = store.db
    if message_id is not None:
        row = await db.fetchone("SELECT conv FROM messages WHERE id=?", (message_id,))
        if row is None:
            return None
        conv = str(row["conv"])
    latest = await db.fetchone(
        "SELECT channel, chat, thread, sender_id, sender_name, meta, created_at FROM messages"
        " WHERE conv=? AND direction='in' ORDER BY id DESC LIMIT 1", (conv,))
    if latest is None:  # only messages the gateway sent on its own (or none at all)
        latest = await db.fetchone(
            "SELECT channel, chat, thread, '' AS sender_id, '' AS sender_name, NULL AS meta,"
            " created_at FROM messages WHERE conv=? ORDER BY id DESC LIMIT 1", (conv,))
        if latest is None:
            return None
    assert conv is not None
    is_group = bool(_meta(latest["meta"]).get("is_group"))
    chat = ChatRow(conv, latest["channel"], latest["chat"], latest["thread"], is_group,
                   latest["created_at"])
    person = None
    if not is_group and latest["sender_id"]:
        identity = await store.identities.identity_of(latest["channel"], latest["sender_id"])
        person = person_row(identity) if identity is not None else None
    # a direct chat is named after the one person in it, a group after the group
    who = "" if is_group else latest["sender_name"] or latest["sender_id"]
    return _Scope(who or describe_chat(chat), (chat,), person)


def describe_chat(chat: ChatRow) -> str:
    """"telegram 1001", "telegram group -100… thread 42"."""
    kind = "group " if chat.is_group else ""
    thread = f" thread {chat.thread}" if chat.thread else ""
    return f"{chat.channel} {kind}{chat.chat}{thread}"


def _meta(raw: str | None) -> dict[str, Any]:
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


# ---- the exchanges -------------------------------------------------------------------------

async def _exchanges(db: _Db, redact: Redact, convs: Sequence[str], before_id: int | None,
                     limit: int) -> tuple[list[Exchange], int | None]:
    if not convs:
        return [], None
    marks = ", ".join("?" for _ in convs)
    # Anchors are what starts an exchange: every message in, and what went out unasked.
    # (conv, id) is indexed, so a page costs the same in a chat of ten or ten thousand rows.
    anchors = await db.fetchall(
        f"SELECT {_COLUMNS} FROM messages WHERE conv IN ({marks}) AND id < ?"
        " AND (direction='in' OR reply_to IS NULL) ORDER BY id DESC LIMIT ?",
        (*convs, before_id if before_id is not None else 2**63 - 1, limit + 1))
    older = None
    if len(anchors) > limit:
        anchors = anchors[:limit]
        older = int(anchors[-1]["id"])
    anchors.reverse()
    if not anchors:
        return [], None
    ids = [int(a["id"]) for a in anchors]
    id_marks = ", ".join("?" for _ in ids)
    replies = await db.fetchall(
        f"SELECT {_COLUMNS} FROM messages WHERE reply_to IN ({id_marks}) AND direction='out'"
        " ORDER BY id", tuple(ids))
    calls = await db.fetchall(
        "SELECT message_id, ts, provider, model, input_tokens, output_tokens, latency_ms, cost,"
        f" error FROM llm_calls WHERE message_id IN ({id_marks}) ORDER BY id", tuple(ids))
    by_id = {int(a["id"]): a for a in anchors}
    replies_of: dict[int, list[TrafficRow]] = defaultdict(list)
    last_write = {i: float(a["updated_at"]) for i, a in by_id.items()}
    for r in replies:
        asked = int(r["reply_to"])
        replies_of[asked].append(_traffic(r, by_id[asked], redact))
        last_write[asked] = max(last_write[asked], float(r["updated_at"]))
    calls_of: dict[int, list[LlmCall]] = defaultdict(list)
    for c in calls:
        error = redact(c["error"]) if c["error"] else None
        calls_of[int(c["message_id"])].append(LlmCall(
            c["ts"], c["provider"], c["model"], c["input_tokens"], c["output_tokens"],
            c["latency_ms"], c["cost"], error))
    # each exchange's time: from its message to the last write of its replies
    turns = [(float(a["created_at"]), last_write[i] + _TURN_SLACK) for i, a in by_id.items()]
    tools_of = await _tool_calls(db, redact, {str(a["channel"]) for a in anchors}, set(ids),
                                 turns)
    return [Exchange(_traffic(a, None, redact), tuple(replies_of[i]), tuple(calls_of[i]),
                     tuple(tools_of[i])) for i, a in zip(ids, anchors, strict=True)], older


async def _tool_calls(db: _Db, redact: Redact, channels: set[str], ids: set[int],
                      turns: Sequence[tuple[float, float]]) -> dict[int, list[ToolCall]]:
    """The tool lines the turns of ``ids`` wrote to their channels' logs.

    Asked by time only, one range per stretch of turns (the ``ts`` index answers each), so
    the cost follows the page, not the size of the log; the channel and the message id are
    checked here."""
    found: dict[int, list[ToolCall]] = defaultdict(list)
    spans: list[list[float]] = []
    for start, end in sorted(turns):
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    ranges = " OR ".join("(ts >= ? AND ts <= ?)" for _ in spans)
    likes = " OR ".join("message LIKE ?" for _ in _TOOL_PATTERNS)
    rows = await db.fetchall(
        f"SELECT ts, channel, level, message FROM channel_log WHERE ({ranges}) AND ({likes})"
        " ORDER BY id", (*(t for span in spans for t in span), *_TOOL_PATTERNS))
    rows = [r for r in rows if r["channel"] in channels]
    for row in rows:
        parsed = parse_tool_line(row["message"])
        if parsed is None or parsed[0] not in ids:
            continue
        message_id, name, arguments, result = parsed
        found[message_id].append(ToolCall(row["ts"], name, redact(arguments), redact(result),
                                          row["level"] in ("warning", "error")))
    return found


def _traffic(row: Any, asked: Any | None, redact: Redact) -> TrafficRow:
    latency = (row["updated_at"] - asked["created_at"]) * 1000 if asked is not None else None
    traffic = TrafficRow(
        id=row["id"], ts=row["created_at"], direction=row["direction"], channel=row["channel"],
        chat=row["chat"], sender=row["sender_name"] or row["sender_id"], text=row["text"],
        status=row["status"], thread=row["thread"], reply_to_id=row["reply_to"],
        latency_ms=latency, error=row["error"])
    return replace(traffic, text=redact(traffic.text),
                   error=redact(traffic.error) if traffic.error else traffic.error)
