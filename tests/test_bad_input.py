"""Bad input and a sick disk: clear errors, the gateway stays up, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyclaw_app.control.chat import ask
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.gateway import MAX_INBOUND_CHARS, Gateway
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually


async def test_one_megabyte_message_is_truncated_with_a_notice(
        fake_llm: FakeOpenAI, make_gateway) -> None:
    gateway: Gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    huge = "log line with details\n" * 50_000  # about 1.1 MB
    reply = await ask(gateway, huge, timeout=30)
    assert reply.startswith(f"(Your message was {len(huge):,} characters long; I read only "
                            f"the first {MAX_INBOUND_CHARS:,}.)")
    assert len(fake_llm.requests[-1]["messages"][-1]["content"]) == MAX_INBOUND_CHARS
    await gateway.lanes.join()
    row = (await gateway.store.journal.recent(2))[-1]
    assert row.direction == "in" and len(row.text) == MAX_INBOUND_CHARS
    logs = await eventually(lambda: gateway.store.logs.page(channel="local", level="warning"))
    assert "only the first" in logs[0]["message"]


async def test_disk_full_holds_messages_and_recovers_without_loss(
        fake_llm: FakeOpenAI, make_gateway, tmp_path: Path) -> None:
    gateway: Gateway = await make_gateway({"providers": [provider_section(fake_llm)]})
    connector = gateway.channels["local"].connector
    assert await ask(gateway, "warm up", timeout=10) == "Echo: warm up"
    await gateway.lanes.join()
    await asyncio.sleep(0.1)
    sub = gateway.bus.subscribe()
    pages = await gateway.store.db.pragma("page_count")
    await gateway.store.db.pragma(f"max_page_count={pages}")  # the disk is now "full"

    big = "x" * 20_000  # needs new pages
    posts = [asyncio.create_task(connector.post(f"{big} {i}", chat="full")) for i in range(3)]
    await eventually(lambda: gateway.store.db.outage)
    assert "full" in gateway.store.db.outage
    events = await sub.get_batch(100)
    assert any(e.channel == "database" and e.data["level"] == "error" for e in events)
    assert not any(p.done() for p in posts)  # nothing acknowledged while it is not stored
    plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "secrets.json"))
    assert "writes are failing" in plane.config_errors()[-1]  # the app's banner shows it

    await gateway.store.db.pragma("max_page_count=1073741823")  # space freed
    await asyncio.gather(*posts)
    await eventually(lambda: len([r for r in connector.sent if r.chat == "full"]) == 3,
                     timeout=15)
    await gateway.lanes.join()
    assert gateway.store.db.outage is None
    rows = await gateway.store.db.fetchall(
        "SELECT direction, status FROM messages WHERE chat='full' ORDER BY id")
    assert sorted((r["direction"], r["status"]) for r in rows) == \
        [("in", "replied")] * 3 + [("out", "sent")] * 3
