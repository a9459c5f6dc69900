"""A job keeps its creator's rights: once the owner revokes them, the job stops at its next
firing, says why in the journal, the channel log, Schedules and the CLI, and waits paused.

End to end on a real gateway (local chat, the OpenAI fake calling the schedule tool, a
:class:`FakeClock` moved by the test), and the rules one by one against a real store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyclaw_app.agent import Agent, build_chain
from pyclaw_app.bus import Bus
from pyclaw_app.channels.contract import ChannelConfig
from pyclaw_app.config import load_config
from pyclaw_app.control import ScheduleRow
from pyclaw_app.control.chat import ask
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.schedules import create_job
from pyclaw_app.gateway import Gateway
from pyclaw_app.gateway.scheduler import access_refusal
from pyclaw_app.model import Address
from pyclaw_app.schedules import OWNER, When
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from pyclaw_app.store.schedules import Job
from tests.conftest import StoreFactory, provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.stores import ON_EACH_STORE
from tests.test_cli import run_cli
from tests.test_schedules import FakeClock, ToolScript
from views.schedules import next_run_text

HOURLY = {"every hour": ("schedule_message", {
    "message": "Drink some water", "cron": "0 * * * *", "timezone": "UTC"})}

Start = Callable[[FakeOpenAI, FakeClock], Awaitable[Gateway]]

pytestmark = ON_EACH_STORE  # the tests of the rules (the end-to-end one runs on SQLite)


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """A gateway whose local channel pairs strangers (``dm_policy: pairing``)."""
    running: list[tuple[Gateway, Store]] = []

    async def factory(llm: FakeOpenAI, clock: FakeClock) -> Gateway:
        path = tmp_path / "pyclaw.yaml"
        path.write_text(yaml.safe_dump({
            "providers": [provider_section(llm)],
            "channels": {"local": {"type": "local", "dm_policy": "pairing",
                                   "rate_limit_per_minute": 0}}}), "utf-8")
        loaded = load_config(path, FileSecretStore(tmp_path / "secrets.json"))
        store = await Store(tmp_path / "data").open()
        agent = Agent(build_chain(loaded), store.journal, store.usage, config=loaded.agent,
                      now=clock.now)
        gateway = Gateway(loaded, store, Bus(), agent=agent, wall_clock=clock)
        await gateway.start()
        running.append((gateway, store))
        return gateway

    yield factory
    for gateway, store in reversed(running):
        await gateway.stop()
        await store.close()


def sent_to(gateway: Gateway, chat: str) -> list[str]:
    connector = gateway.channels["local"].connector
    assert connector is not None
    return [r.text for r in connector.sent if r.chat == chat]  # type: ignore[attr-defined]


async def settle(gateway: Gateway, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    await gateway.scheduler.tick()
    await gateway.lanes.join()


async def test_a_revoked_creators_job_is_skipped_paused_and_says_why(
        start: Start, tmp_path: Path) -> None:
    clock = FakeClock()
    async with FakeOpenAI(responder=ToolScript(HOURLY)) as llm:
        gateway = await start(llm, clock)
        access = gateway.store.access
        await access.allow("local", "ann", "Ann")
        answer = await ask(gateway, "every hour remind me to drink", chat="ann",
                           sender="ann", timeout=10)
        assert "Scheduled job 1" in answer
        owners = await create_job(gateway.store.schedules, gateway.config, clock(),
                                  channel="local", chat="ann", text="The owner's note",
                                  cron="0 * * * *", timezone="UTC")
        await gateway.lanes.join()

        await settle(gateway, clock, 3600)  # 09:00: Ann may still talk: both fire
        assert sent_to(gateway, "ann")[1:] == ["Drink some water", "The owner's note"]

        await access.revoke("local", "ann")  # the owner unpairs Ann
        await settle(gateway, clock, 3600)  # 10:00
        await settle(gateway, clock, 3600)  # 11:00: paused, nothing more is tried
        assert sent_to(gateway, "ann")[1:] == ["Drink some water", "The owner's note",
                                               "The owner's note", "The owner's note"]
        reason = "its creator ann may no longer talk to the assistant on local"
        job = await gateway.store.schedules.get(1)
        assert job is not None and not job.enabled and job.next_run is None
        assert job.paused_reason is not None and job.paused_reason.startswith(reason)
        runs = await gateway.store.schedules.runs(1)
        assert [(r.status, (r.reason or "")[:len(reason)]) for r in runs] == [
            ("skipped", reason), ("fired", "")]
        row = await gateway.store.db.fetchone(
            "SELECT status, error FROM messages WHERE id=?", (runs[0].message_id,))
        assert row is not None and row["status"] == "skipped"
        assert row["error"].startswith(reason)
        lines = await gateway.store.db.fetchall(
            "SELECT level, message FROM channel_log WHERE channel='local' AND message LIKE"
            " 'schedule 1:%' ORDER BY id")
        assert [r["level"] for r in lines] == ["warning"]
        assert "is skipped and the job paused: " + reason in lines[0]["message"]
        assert "pyclaw schedules resume 1" in lines[0]["message"]
        assert (await gateway.store.schedules.get(owners.id)).enabled  # type: ignore[union-attr]

        plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "plane.json"))
        [mine] = [r for r in await plane.schedules() if r.id == 1]
        assert mine.paused_reason.startswith(reason) and not mine.enabled
        code, out, _ = await run_cli("schedules", "--data-dir", str(tmp_path / "data"),
                                     "--config", str(tmp_path / "pyclaw.yaml"), "list")
        assert code == 0 and f"paused ({reason}" in out

        await access.allow("local", "ann", "Ann")  # the owner lets Ann back and resumes
        resumed = await plane.set_schedule_enabled(1, True)
        assert resumed is not None and resumed.enabled and resumed.paused_reason == ""
        await settle(gateway, clock, 3600)  # 12:00
        assert sent_to(gateway, "ann").count("Drink some water") == 2


# ---- the rules, one by one ------------------------------------------------------------------

def job(*, group: bool = False, created_by: str = "ann", chat: str = "") -> Job:
    return Job(1, Address("tg", chat or ("g1" if group else "ann")), created_by, "Ann", group,
               "text", "hi", When(None, "0 * * * *", "UTC"), "run_once", True, 0.0, None, 0.0)


def channel(**policy: Any) -> ChannelConfig:
    return ChannelConfig.model_validate(policy)


@pytest.fixture
async def store(tmp_path: Path, open_store: StoreFactory) -> Store:
    return await open_store(tmp_path / "data")


@pytest.mark.parametrize(("policy", "allowed"), [
    ({"dm_policy": "open"}, True),
    ({"dm_policy": "pairing"}, False),
    ({"dm_policy": "allowlist", "allow_from": ["ann"]}, True),
    ({"dm_policy": "allowlist", "allow_from": ["bob"]}, False),
    ({"dm_policy": "disabled", "allow_from": ["ann"]}, False),
])
async def test_a_direct_job_follows_its_creators_access(
        store: Store, policy: dict[str, Any], allowed: bool) -> None:
    refusal = await access_refusal(job(), channel(**policy), store.access)
    assert (refusal is None) is allowed
    await store.access.allow("tg", "ann")  # paired: allowed unless DMs are off altogether
    paired = await access_refusal(job(), channel(**policy), store.access)
    assert (paired is None) is (policy["dm_policy"] != "disabled")


async def test_a_group_job_follows_the_groups_standing(store: Store) -> None:
    allowlist = channel(group_policy="allowlist")
    assert await access_refusal(job(group=True), allowlist, store.access) == (
        "group g1 is no longer allowed on channel tg")
    assert await access_refusal(job(group=True),
                                channel(group_policy="allowlist", allow_groups=["g1"]),
                                store.access) is None
    assert await access_refusal(job(group=True), channel(group_policy="open"),
                                store.access) is None
    assert "disabled" in str(await access_refusal(job(group=True),
                                                  channel(group_policy="disabled"),
                                                  store.access))
    await store.access.admit_group("tg", "g1", requested_by="ann")
    await store.access.approve_group("tg", "g1")
    assert await access_refusal(job(group=True), allowlist, store.access) is None
    await store.access.reject_group("tg", "g1")  # the owner changed their mind
    assert await access_refusal(job(group=True), allowlist, store.access) is not None


async def test_the_owners_jobs_and_unconfigured_channels_are_not_checked(store: Store) -> None:
    closed = channel(dm_policy="disabled", group_policy="disabled")
    assert await access_refusal(job(created_by=OWNER), closed, store.access) is None
    assert await access_refusal(job(group=True, created_by=OWNER), closed, store.access) is None
    assert await access_refusal(job(), None, store.access) is None


@pytest.mark.parametrize(("reason", "words"), [
    ("", "Paused: it runs again only when resumed"),
    ("group g1 is no longer allowed on channel tg",
     "Paused by the gateway: group g1 is no longer allowed on channel tg. It runs again only "
     "when resumed"),
])
def test_the_schedules_view_says_why_the_gateway_paused_a_job(reason: str, words: str) -> None:
    row = ScheduleRow(id=1, channel="tg", chat="g1", thread=None, created_by="Ann",
                      action="text", body="hi", timing="every hour", cron="0 * * * *", at=None,
                      timezone="UTC", missed="run_once", enabled=False, next_run=None,
                      last_run=None, created_at=0.0, paused_reason=reason)
    assert next_run_text(row, 0.0) == words
