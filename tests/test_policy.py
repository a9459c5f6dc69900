"""Strangers are kept out: pairing, allowlists, group policy and the per-sender rate limit."""

from __future__ import annotations

import re
import time
from pathlib import Path

from pyclaw_app.gateway import Gateway
from pyclaw_app.policy import AccessPolicy
from pyclaw_app.store.access import (
    CODE_ALPHABET,
    CODE_TTL,
    MAX_CODES_PER_SENDER,
    SENDER_WINDOW,
    PairingRequest,
)
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.test_cli import run_cli

CODE = re.compile(rf"pairing code: ([{CODE_ALPHABET}]{{8}})\n")


def config(llm: FakeOpenAI, **local: object) -> dict[str, object]:
    return {"providers": [provider_section(llm)],
            "channels": {"local": {"type": "local", **local}}}


async def say(gateway: Gateway, text: str, sender: str, chat: str | None = None) -> list[str]:
    """Post as ``sender`` and return what was sent back to that chat for it."""
    connector = gateway.channels["local"].connector
    before = len(connector.sent)
    await connector.post(text, chat=chat or f"dm-{sender}", sender=sender)
    await gateway.lanes.join()
    return [r.text for r in list(connector.sent)[before:]]


async def test_pairing_code_then_approval_lets_the_sender_in(
        fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway(config(fake_llm, dm_policy="pairing"))
    first = await say(gateway, "hello?", "stranger")
    assert len(first) == 1 and "This assistant is private" in first[0]
    code = CODE.search(first[0]).group(1)  # type: ignore[union-attr]
    again = await say(gateway, "hello again", "stranger")
    assert CODE.search(again[0]).group(1) == code  # type: ignore[union-attr]
    assert fake_llm.requests == []  # strangers cost no tokens

    rows = await gateway.store.db.fetchall(
        "SELECT status, error FROM messages WHERE direction='in' ORDER BY id")
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert f"pairing code {code}" in rows[0]["error"]

    approved = await gateway.store.access.approve(code.lower())
    assert approved is not None and approved.sender_id == "stranger"
    assert await say(gateway, "now?", "stranger") == ["Echo: now?"]
    assert await gateway.store.access.approve(code) is None  # a code works once


async def test_at_most_three_pending_codes_and_codes_expire(fake_llm: FakeOpenAI,
                                                            make_gateway) -> None:
    gateway = await make_gateway(config(fake_llm, dm_policy="pairing"))
    notices = [(await say(gateway, "hi", f"s{i}"))[0] for i in range(4)]
    assert all(CODE.search(n) for n in notices[:3])
    assert "too many pending pairing requests" in notices[3]
    pending = await gateway.store.access.pending()
    assert len(pending) == 3
    late = pending[0].expires_at + 1
    assert await gateway.store.access.approve(pending[0].code, now=late) is None
    assert await gateway.store.access.pending(now=late) == []


async def test_allowlist_is_silent_for_strangers(fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway(config(fake_llm, dm_policy="allowlist", allow_from=["friend"]))
    assert await say(gateway, "hi", "friend") == ["Echo: hi"]
    assert await say(gateway, "hi", "stranger") == []
    logs = await gateway.store.logs.page(channel="local", search="not on the allowlist")
    assert logs


async def test_disabled_dms(fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway(config(fake_llm, dm_policy="disabled"))
    assert await say(gateway, "hi", "anyone") == []
    assert fake_llm.requests == []


async def test_rate_limit_gives_one_polite_notice(fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway = await make_gateway(config(fake_llm, rate_limit_per_minute=3))
    now = [1000.0]
    gateway.policy = AccessPolicy(gateway.store.access, clock=lambda: now[0])
    replies = [await say(gateway, f"m{i}", "fast", chat="c") for i in range(6)]
    assert replies[:3] == [["Echo: m0"], ["Echo: m1"], ["Echo: m2"]]
    assert "faster than I can answer" in replies[3][0]
    assert replies[4:] == [[], []]  # one notice, then quiet
    now[0] += 20  # a third of a minute refills one message
    assert await say(gateway, "later", "fast", chat="c") == ["Echo: later"]


async def test_cli_lists_and_approves(tmp_path: Path, fake_llm: FakeOpenAI,
                                      make_gateway) -> None:
    data = tmp_path / "data"
    gateway = await make_gateway(config(fake_llm, dm_policy="pairing"), data_dir=data)
    notice = (await say(gateway, "let me in", "newcomer"))[0]
    code = CODE.search(notice).group(1)  # type: ignore[union-attr]
    code_list, out, _ = await run_cli("pairing", "--data-dir", str(data), "list")
    assert code_list == 0 and code in out and "newcomer" in out
    status, out, err = await run_cli("pairing", "--data-dir", str(data), "approve", code)
    assert status == 0, err
    assert await say(gateway, "in now?", "newcomer") == ["Echo: in now?"]
    status, _, err = await run_cli("pairing", "--data-dir", str(data), "approve", "ZZZZZZZZ")
    assert status == 1 and "no pending" in err


async def test_pairing_codes_are_rate_limited_per_sender(fake_llm: FakeOpenAI,
                                                         make_gateway) -> None:
    """Three strangers cannot hold every slot hour after hour: each sender gets at most
    MAX_CODES_PER_SENDER codes a day, then silence (and still no tokens spent)."""
    gateway = await make_gateway(config(fake_llm, dm_policy="pairing"))
    access = gateway.store.access
    start = time.time() - MAX_CODES_PER_SENDER * (CODE_TTL + 1)
    for i in range(MAX_CODES_PER_SENDER):  # codes that came and expired unanswered
        request = await access.request_code("local", "squatter", "", "dm-squatter",
                                            now=start + i * (CODE_TTL + 1))
        assert isinstance(request, PairingRequest)
    assert await say(gateway, "again", "squatter") == []
    assert await access.pending() == []  # no slot held
    rows = await gateway.store.db.fetchall("SELECT error FROM messages WHERE direction='in'")
    assert "too many pairing codes" in rows[-1]["error"]
    later = start + SENDER_WINDOW + MAX_CODES_PER_SENDER * (CODE_TTL + 1)
    assert isinstance(await access.request_code("local", "squatter", "", "dm-squatter",
                                                now=later), PairingRequest)  # a day on
    assert CODE.search((await say(gateway, "hi", "newcomer"))[0])  # others are not affected
    assert fake_llm.requests == []


async def test_the_owner_rejects_a_pending_code_and_frees_its_slot(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway) -> None:
    data = tmp_path / "data"
    gateway = await make_gateway(config(fake_llm, dm_policy="pairing"), data_dir=data)
    codes = [CODE.search((await say(gateway, "hi", f"s{i}"))[0]).group(1)  # type: ignore[union-attr]
             for i in range(3)]
    assert "too many pending" in (await say(gateway, "hi", "late"))[0]

    status, out, err = await run_cli("pairing", "--data-dir", str(data), "list")
    assert status == 0 and all(c in out for c in codes) and "expires" in out
    status, out, err = await run_cli("pairing", "--data-dir", str(data), "reject", codes[0])
    assert status == 0, err
    assert "rejected" in out and "s0" in out
    assert [p.code for p in await gateway.store.access.pending()] == codes[1:]

    assert CODE.search((await say(gateway, "hi", "late"))[0])  # the slot is free again
    assert await say(gateway, "let me in", "s0") == []  # no new code for the rejected sender
    assert await gateway.store.access.approve(codes[0]) is None
    status, _, err = await run_cli("pairing", "--data-dir", str(data), "reject", codes[0])
    assert status == 1 and "no pending" in err
    assert fake_llm.requests == []
