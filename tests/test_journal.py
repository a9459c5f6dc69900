"""The journal's promises: durable on return, one row per platform message, resumable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from pyclaw_app.config_storage import StorageConfig
from pyclaw_app.model import Address, Inbound, MessageStatus
from tests.conftest import StoreFactory, provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.stores import ON_EACH_STORE
from tests.support import eventually

REPO = Path(__file__).resolve().parents[1]
pytestmark = ON_EACH_STORE


def inbound(pid: str, text: str = "hi", chat: str = "c1") -> Inbound:
    return Inbound(Address("local", chat, "local"), pid, text, sender_id="u", sender_name="u")


async def test_redelivered_platform_id_is_recognised(tmp_path: Path,
        open_store: StoreFactory) -> None:
    store = await open_store(tmp_path)
    try:
        first = await store.journal.submit(inbound("m1"))
        again = await store.journal.submit(inbound("m1", "different text, same id"))
        other_channel = await store.journal.submit(
            Inbound(Address("telegram", "c1"), "m1", "hi"))
        assert not first.duplicate and again.duplicate
        assert again.journal_id == first.journal_id
        assert not other_channel.duplicate
        rows = await store.db.fetchall("SELECT text FROM messages WHERE platform_id='m1'")
        assert sorted(r["text"] for r in rows) == ["hi", "hi"]
    finally:
        await store.close()


async def test_concurrent_submits_share_commits(tmp_path: Path,
        open_store: StoreFactory) -> None:
    store = await open_store(tmp_path)
    try:
        results = await asyncio.gather(
            *(store.journal.submit(inbound(f"m{i}")) for i in range(200)))
        assert len({r.journal_id for r in results}) == 200
        assert store.db.batches < 200  # batched: fewer commits than writes
        assert store.db.writes == 200
    finally:
        await store.close()


async def test_statuses_and_unfinished(tmp_path: Path,
        open_store: StoreFactory) -> None:
    store = await open_store(tmp_path)
    try:
        a = await store.journal.submit(inbound("a"))
        b = await store.journal.submit(inbound("b"))
        c = await store.journal.submit(inbound("c"))
        await store.journal.set_status(b.journal_id, MessageStatus.PROCESSING)
        out = await store.journal.add_outbound(c.journal_id, Address("local", "c1", "local"), "r")
        await store.journal.complete_reply(out, c.journal_id, ["p1"])
        open_ids = [r.id for r in await store.journal.unfinished()]
        assert open_ids == [a.journal_id, b.journal_id]
        row = await store.journal.get(c.journal_id)
        assert row is not None and row.status == "replied"
        restored = (await store.journal.get(a.journal_id)).to_inbound()  # type: ignore[union-attr]
        assert restored.platform_id == "a" and restored.address.chat == "c1"
    finally:
        await store.close()


SUBMIT_AND_WAIT = textwrap.dedent("""
    import asyncio, os, sys, time
    from pathlib import Path
    from pydantic import SecretStr
    from pyclaw_app.config_storage import StorageConfig
    from pyclaw_app.model import Address, Inbound
    from pyclaw_app.store import Store

    async def main():
        url = os.environ.get("TEST_STORAGE_URL")
        storage = url and StorageConfig(url=url, password=SecretStr(os.environ["PW"]))
        store = await Store(Path(sys.argv[1]), storage or None).open()
        result = await store.journal.submit(Inbound(Address("local", "app", "local"),
                                                    "crash-1", "survive this"))
        print("SUBMITTED", result.journal_id, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
""")


async def test_sigkill_right_after_submit_loses_nothing_and_resumes(
        tmp_path: Path, fake_llm: FakeOpenAI, make_gateway, open_store: StoreFactory,
        storage: StorageConfig | None) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if storage is not None:
        assert storage.url is not None and storage.password is not None
        env |= {"TEST_STORAGE_URL": storage.url, "PW": storage.password.get_secret_value()}
    proc = subprocess.Popen(  # noqa: ASYNC220 - its stdout is read line by line below
        [sys.executable, "-c", SUBMIT_AND_WAIT, str(data)], cwd=REPO,
        stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown: no close(), no checkpoint
    await asyncio.get_running_loop().run_in_executor(None, proc.wait)
    assert line.startswith("SUBMITTED"), line
    journal_id = int(line.split()[1])

    store = await open_store(data)
    rows = await store.journal.unfinished()
    await store.close()
    assert [(r.id, r.text, r.status) for r in rows] == [(journal_id, "survive this", "received")]

    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": {"local": {"type": "local"}}}, data_dir=data)
    await eventually(lambda: _status(gateway, journal_id), timeout=10)
    assert len(fake_llm.requests) == 1
    reply = await gateway.store.journal.reply_of(journal_id)
    assert reply is not None and reply.text == "Echo: survive this" and reply.status == "sent"


async def _status(gateway, journal_id: int) -> bool:
    row = await gateway.store.journal.get(journal_id)
    return row is not None and row.status == "replied"


async def test_history_starts_after_the_summary_point_and_the_reset(tmp_path: Path,
        open_store: StoreFactory) -> None:
    store = await open_store(tmp_path)
    try:
        address = Address("local", "c1", "local")
        ids = []
        for n in range(6):
            accepted = await store.journal.submit(inbound(f"m{n}", f"question {n}"))
            out = await store.journal.add_outbound(accepted.journal_id, address, f"answer {n}")
            await store.journal.complete_reply(out, accepted.journal_id, [f"p{n}"])
            ids.append(accepted.journal_id)
        conv = address.key
        whole = await store.journal.history(conv, before_id=2**62)
        assert [t.text for t in whole][:2] == ["answer 5", "question 5"] and len(whole) == 12

        # the summary point is a question: its answer is summarised with it
        summarised = await store.journal.history(conv, before_id=2**62, after_id=ids[3])
        assert [t.text for t in reversed(summarised)] == [
            "question 4", "answer 4", "question 5", "answer 5"]

        await store.journal.reset_conversation(conv)  # a reset later than the summary wins
        assert await store.journal.history(conv, before_id=2**62, after_id=ids[3]) == []
    finally:
        await store.close()
