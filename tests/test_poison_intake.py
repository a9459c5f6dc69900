"""The intake with a poison message: repaired and answered, or kept as a dead letter while
the channel goes on; a failing database still holds the message (issue 17)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pyclaw_app.control.chat import ask
from pyclaw_app.errors import StoreError
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, Attachment, Inbound
from pyclaw_app.store import Store, UnstorableMessage
from pyclaw_app.store.dead_letters import MAX_PAGE
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually
from tests.test_cli import run_cli


@pytest.fixture
async def gateway(fake_llm: FakeOpenAI, make_gateway) -> Gateway:
    gw: Gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    return gw


def local(gateway: Gateway, chat: str, pid: str, text: str, **fields: object) -> Inbound:
    return Inbound(Address("local", chat, "local"), pid, text, sender_id="ann",
                   **fields)  # type: ignore[arg-type]


def replies(gateway: Gateway, chat: str) -> list[str]:
    connector = gateway.channels["local"].connector
    return [r.text for r in connector.sent if r.chat == chat]  # type: ignore[union-attr]


async def test_unencodable_content_is_replaced_noted_and_answered(gateway: Gateway) -> None:
    inbound = local(gateway, "c1", "p1", "bad \ud800 text", sender_name="Ann \udc00",
                    attachments=(Attachment("file", name="a\ud83d\ude00\ud800.txt"),))
    result = await gateway.intake.accept(inbound)
    assert not result.quarantined and result.journal_id
    (reply,) = await eventually(lambda: replies(gateway, "c1"))
    assert reply == ("Echo: bad \ufffd text\n\n(I could not read what you sent: a😀\ufffd.txt: "
                     "pyclaw cannot download files from Local chat yet.)")  # the file, named

    row = await gateway.store.journal.get(result.journal_id)
    assert row is not None
    assert (row.text, row.sender_name, row.sender_id) == ("bad \ufffd text", "Ann \ufffd", "ann")
    assert row.to_inbound().attachments[0].name == "a😀\ufffd.txt"  # a pair is joined
    assert json.loads(row.meta or "{}")["repaired"] == ["text", "sender_name", "attachments"]
    notes = await eventually(lambda: gateway.store.logs.page(channel="local", level="warning"))
    assert (f"message {result.journal_id}: text, sender_name, attachments held characters UTF-8 "
            "cannot encode (lone surrogates); each was replaced with U+FFFD"
            ) in [note["message"] for note in notes]


async def test_a_message_with_an_unencodable_id_is_a_dead_letter_and_the_channel_goes_on(
        gateway: Gateway) -> None:
    inbound = local(gateway, "room \ud800", "p\udfff", "hello", sender_name="Ann \ud800")
    result = await gateway.intake.accept(inbound)
    assert (result.journal_id, result.duplicate, result.quarantined) == (0, False, True)
    assert await gateway.store.journal.recent(10) == []  # nothing half-stored

    (letter,) = await gateway.store.dead_letters.list()
    assert (letter.channel, letter.platform_id) == ("local", "p\ufffd")
    assert letter.reason == "chat holds U+D800 at index 5, which UTF-8 cannot encode"
    full = await gateway.store.dead_letters.get(letter.id)
    assert full is not None and full.raw is not None and full.size == len(full.raw)
    raw = json.loads(full.raw)  # kept exactly as it arrived, surrogates and all
    assert (raw["address"]["chat"], raw["platform_id"], raw["sender_name"]) == (
        "room \ud800", "p\udfff", "Ann \ud800")
    errors = await eventually(lambda: gateway.store.logs.page(channel="local", level="error"))
    assert errors[0]["message"].startswith(f"dead letter {letter.id}: message p\ufffd could "
                                           f"not be stored ({letter.reason})")
    assert errors[0]["data"] == {"dead_letter": letter.id, "platform_id": "p\ufffd"}

    assert await ask(gateway, "still there?", timeout=10) == "Echo: still there?"


async def test_a_field_of_the_wrong_type_is_a_dead_letter_with_the_reason(
        gateway: Gateway) -> None:
    broken = local(gateway, "c2", "p2", "hi", sender_name=None)
    assert (await gateway.intake.accept(broken)).quarantined
    not_json = local(gateway, "c2", "p3", "hi", attachments=(Attachment("file", size=b"x"),))
    assert (await gateway.intake.accept(not_json)).quarantined  # type: ignore[arg-type]
    reasons = [d.reason for d in await gateway.store.dead_letters.list()]
    assert reasons[1] == "sender_name is NoneType, not text"
    assert reasons[0].startswith("its details or attachments are not JSON")


async def test_a_message_too_big_for_the_database_is_kept_cut_and_the_rest_stored(
        gateway: Gateway) -> None:
    await gateway.store.db.write(lambda conn: conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000))
    result = await gateway.intake.accept(local(gateway, "c3", "big", "x" * 12_000))
    assert result.quarantined
    (letter,) = await gateway.store.dead_letters.list()
    assert letter.reason.startswith("too big for the database (string or blob too big) "
                                    "(raw cut to its first 5,000 of 12,")
    assert letter.size == 5_000  # half the row limit: the reason and ids fit beside it
    assert await ask(gateway, "small one", timeout=10) == "Echo: small one"


async def test_a_failing_database_holds_the_message_unacknowledged_and_keeps_no_dead_letter(
        gateway: Gateway) -> None:
    await gateway.store.db.pragma("query_only=ON")  # every write now fails, not transiently
    with pytest.raises(StoreError) as failed:
        await gateway.intake.accept(local(gateway, "c4", "held", "hello"))
    assert not isinstance(failed.value, UnstorableMessage)
    await gateway.store.db.pragma("query_only=OFF")
    assert await gateway.store.dead_letters.count() == 0
    # The platform was not acknowledged, so it delivers the message again: now it is stored.
    again = await gateway.intake.accept(local(gateway, "c4", "held", "hello"))
    assert not again.quarantined and not again.duplicate
    await eventually(lambda: replies(gateway, "c4") == ["Echo: hello"])


async def test_the_journal_names_the_field_it_cannot_store(tmp_path: Path) -> None:
    store = await Store(tmp_path).open()
    try:
        for inbound, reason in (
                (Inbound(Address("c", "x"), "1", "a\udc80b"),
                 "text holds U+DC80 at index 1, which UTF-8 cannot encode"),
                (Inbound(Address("c", "x"), 2, "hi"),  # type: ignore[arg-type]
                 "platform_id is int, not text"),
                (Inbound(Address("c", "x", thread=b"t"), "3", "hi"),  # type: ignore[arg-type]
                 "thread is bytes, not text")):
            with pytest.raises(UnstorableMessage) as refused:
                await store.journal.submit(inbound)
            assert refused.value.reason == reason
        assert await store.journal.recent(10) == []
    finally:
        await store.close()


async def test_dead_letters_list_count_get_and_page(tmp_path: Path) -> None:
    store = await Store(tmp_path).open()
    try:
        for i in range(5):
            await store.dead_letters.add("a" if i % 2 else "b", f"p{i}", f"why {i}", b"r" * i)
        assert await store.dead_letters.count() == 5
        assert await store.dead_letters.count("a") == 2
        newest = await store.dead_letters.list(limit=2)
        assert [d.platform_id for d in newest] == ["p4", "p3"] and newest[0].raw is None
        older = await store.dead_letters.list(before_id=newest[-1].id, limit=2)
        assert [d.platform_id for d in older] == ["p2", "p1"]
        assert [d.reason for d in await store.dead_letters.list(channel="a")] == ["why 3",
                                                                                  "why 1"]
        assert len(await store.dead_letters.list(limit=-1)) == 1  # clamped, never "all"
        assert MAX_PAGE >= 5 and len(await store.dead_letters.list(limit=10**9)) == 5
        one = await store.dead_letters.get(newest[0].id)
        assert one is not None and (one.raw, one.size) == (b"rrrr", 4)
        assert await store.dead_letters.get(999) is None
    finally:
        await store.close()


async def test_the_cli_lists_and_shows_dead_letters(tmp_path: Path) -> None:
    store = await Store(tmp_path).open()
    try:
        letter = await store.dead_letters.add("tg", "1001:7", "chat holds U+D800",
                                              b'{"text": "bad \\ud800"}')
    finally:
        await store.close()
    data = ("--data-dir", str(tmp_path))
    code, out, err = await run_cli("dead-letters", "list", *data)
    assert code == 0, err
    assert f"{letter.id}  " in out and "tg  1001:7  22 bytes  chat holds U+D800" in out
    code, out, _ = await run_cli("dead-letters", "show", str(letter.id), *data)
    assert code == 0
    assert "reason: chat holds U+D800" in out and '{"text": "bad \\ud800"}' in out
    assert (await run_cli("dead-letters", "show", "99", *data))[0] == 1
    assert (await run_cli("dead-letters", "show", *data))[0] == 2
    code, out, _ = await run_cli("dead-letters", "list", "--channel", "other", *data)
    assert code == 0 and out.strip() == "no dead letters"
