"""Reply parts under the journal's custody across a crash: what went out is never sent again."""

from __future__ import annotations

from pathlib import Path

from pyclaw_app.model import Address, Inbound
from tests.conftest import StoreFactory
from tests.stores import ON_EACH_STORE
from tests.support import eventually

pytestmark = ON_EACH_STORE


async def _half_sent_reply(data_dir: Path, open_store: StoreFactory) -> int:
    """The state a crash leaves: part 0 sent, part 1 pending (its request may have gone)."""
    store = await open_store(data_dir)
    try:
        address = Address("local", "crash", "local")
        result = await store.journal.submit(Inbound(address, "p-1", "tell me", "you", "you"))
        out_id = await store.journal.add_outbound(result.journal_id, address,
                                                  "first half. second half.",
                                                  first_part="first half. ")
        await store.journal.part_sent(out_id, (0, "out-1"), next_part=(1, "second half."))
        return result.journal_id
    finally:
        await store.close()


async def test_a_reply_cut_by_a_crash_is_uncertain_and_not_resent(
        tmp_path: Path, make_gateway, open_store: StoreFactory) -> None:
    inbound_id = await _half_sent_reply(tmp_path / "data", open_store)
    gw = await make_gateway({"channels": {"local": {"type": "local"}}})
    row = await eventually(lambda: gw.store.journal.get(inbound_id))

    async def closed() -> object:
        current = await gw.store.journal.get(inbound_id)
        return current if current is not None and current.status == "failed" else None

    row = await eventually(closed)
    assert row.error.startswith("uncertain") and "1 part(s) were delivered" in row.error
    reply = await gw.store.journal.reply_of(inbound_id)
    assert reply is not None
    assert [(p.idx, p.status) for p in await gw.store.journal.parts(reply.id)] == [
        (0, "sent"), (1, "uncertain")]
    await gw.lanes.join()
    assert list(gw.channels["local"].connector.sent) == []  # nothing was sent again
