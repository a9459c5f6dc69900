"""The owner's side of scheduled jobs: ``pyclaw schedules`` beside a running gateway, the
in-process control plane and the control API a monitor uses."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from pyclaw_app.config import ChannelEntry, Config
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import RemoteControlPlane, RemoteError
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from pyclaw_app.control.schedules import create_job
from pyclaw_app.schedules import ScheduleError
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually
from tests.test_cli import run_cli
from tests.test_schedules import Factory, FakeClock, clocked, local_config, local_texts, settle

__all__ = ["clocked"]  # the fixture, used here by name

LATER = datetime(2030, 1, 7, 7, 59, tzinfo=UTC).timestamp()
"""Where the gateway's clock stands: after the wall clock the CLI checks times against."""


async def cli(data: Path, config: Path, *args: str) -> tuple[int, str, str]:
    return await run_cli("schedules", "--data-dir", str(data), "--config", str(config), *args)


async def test_the_cli_adds_lists_pauses_resumes_and_deletes_beside_a_running_gateway(
        clocked: Factory, tmp_path: Path) -> None:
    clock = FakeClock(LATER)
    data = tmp_path / "data"
    async with FakeOpenAI() as llm:
        gateway = await clocked(local_config(llm), clock, data_dir=data)
        config = tmp_path / "pyclaw-0.yaml"  # the gateway's own config file
        status, out, err = await cli(data, config, "add", "--channel", "local", "--chat", "cli",
                                     "--text", "from the cli", "--at", "2030-01-07T09:00",
                                     "--tz", "Europe/Paris")
        assert status == 0, err
        assert out.startswith("scheduled job 1: once at 2030-01-07 09:00 CET")
        status, out, err = await cli(data, config, "add", "--channel", "local", "--chat", "cli",
                                     "--task", "weekly report", "--cron", "0 9 * * MON",
                                     "--tz", "Europe/Paris", "--missed", "skip")
        assert status == 0, err
        assert "scheduled job 2: at 09:00 on Monday (Europe/Paris)" in out
        status, out, _ = await cli(data, config, "list")
        assert status == 0
        lines = out.splitlines()
        assert lines[0].startswith("1  local cli  text: 'from the cli'  once at 2030-01-07")
        assert "next 2030-01-07 09:00 CET" in lines[0] and "by owner" in lines[0]
        assert lines[1].startswith("2  local cli  task: 'weekly report'") and "skip" in lines[1]

        status, out, _ = await cli(data, config, "pause", "2")
        assert status == 0 and out.strip() == "paused job 2"
        clock.advance(60)  # 08:00 UTC = 09:00 in Paris: job 1 is due, job 2 would be
        await settle(gateway)  # the CLI wrote from another process: the pass reads it
        await eventually(lambda: local_texts(gateway, "cli") == ["from the cli"])
        await settle(gateway)
        assert local_texts(gateway, "cli") == ["from the cli"]

        status, out, _ = await cli(data, config, "resume", "2")  # from the CLI's own clock
        assert status == 0
        assert re.fullmatch(r"resumed job 2; next run \d{4}-\d\d-\d\d 09:00 CES?T", out.strip())
        status, out, _ = await cli(data, config, "delete", "2")
        assert status == 0 and out.strip() == "deleted job 2"
        assert [job.id for job in await gateway.store.schedules.jobs()] == [1]


async def test_the_cli_refuses_bad_input_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"channels": {"local": {"type": "local"}}}))
    status, out, err = await cli(tmp_path / "d", config, "add", "--channel", "local", "--chat",
                                 "x", "--text", "hi", "--cron", "61 * * * *", "--tz", "UTC")
    assert status == 2 and "is not a cron expression (Bad minute)" in err, (out, err)
    assert "Traceback" not in err


@pytest.mark.parametrize(("when", "expected"), [
    ({"cron": "61 * * * *", "timezone": "UTC"}, "is not a cron expression (Bad minute)"),
    ({"cron": "0 9 * * MON", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"at": "2001-01-01T09:00+00:00"}, "is in the past"),
    ({"at": "tomorrow"}, "is not an ISO 8601 time"),
    ({"cron": "0 9 * * MON"}, "needs the user's time zone"),
    ({}, "exactly one of"),
])
async def test_the_owners_bad_input_is_refused_with_the_reason_and_stores_nothing(
        tmp_path: Path, when: dict[str, str], expected: str) -> None:
    store = await Store(tmp_path / "d").open()
    try:
        config = Config(None, channels={"local": ChannelEntry("local", "local", None)})
        with pytest.raises(ScheduleError, match=re.escape(expected)):
            await create_job(store.schedules, config, LATER, channel="local", chat="x",
                             text="hi", **when)
        assert await store.schedules.jobs() == []
    finally:
        await store.close()


async def test_the_cli_names_a_channel_that_is_not_configured(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"channels": {"local": {"type": "local"}}}))
    status, _, err = await cli(tmp_path / "d", config, "add", "--channel", "telgram", "--chat",
                               "1", "--text", "hi", "--in-minutes", "5")
    assert status == 2 and "no channel named 'telgram'" in err and "local" in err
    status, _, err = await cli(tmp_path / "d", config, "pause")
    assert status == 2 and "needs the job's ID" in err


async def test_the_local_plane_manages_jobs_and_a_paused_one_does_not_fire(
        clocked: Factory, tmp_path: Path) -> None:
    clock = FakeClock()
    async with FakeOpenAI() as llm:
        gateway = await clocked(local_config(llm), clock)
        plane = LocalControlPlane(gateway, FileSecretStore(tmp_path / "secrets.json"))
        row = await plane.create_schedule("local", "p", "hello", in_minutes=5)
        assert (row.id, row.channel, row.chat, row.created_by, row.enabled) == (
            1, "local", "p", "owner", True)
        assert row.next_run == clock() + 300 and row.timing.startswith("once at ")
        paused = await plane.set_schedule_enabled(1, False)
        assert paused is not None and not paused.enabled and paused.next_run is None
        clock.advance(600)
        await settle(gateway)
        assert local_texts(gateway, "p") == []
        resumed = await plane.set_schedule_enabled(1, True)  # its time passed: run_once
        assert resumed is not None and resumed.enabled
        await settle(gateway)
        assert local_texts(gateway, "p") == ["hello"]
        assert [r.id for r in await plane.schedules()] == [1]
        assert await plane.schedules(channel="other") == []
        assert await plane.set_schedule_enabled(7, True) is None
        assert await plane.delete_schedule(1) and not await plane.delete_schedule(1)
        with pytest.raises(ScheduleError, match="no channel named 'nope'") as caught:
            await plane.create_schedule("nope", "p", "x", in_minutes=1)
        assert caught.value.field == "channel"
        with pytest.raises(ScheduleError, match="Bad day-of-week"):
            await plane.create_schedule("local", "p", "x", cron="0 9 * * XYZ", timezone="UTC")
        skip = await plane.create_schedule("local", "p", "x", in_minutes=1, missed="skip")
        await plane.set_schedule_enabled(skip.id, False)
        clock.advance(120)
        with pytest.raises(ScheduleError, match="time has passed"):
            await plane.set_schedule_enabled(skip.id, True)


@pytest.fixture
async def host(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)],
                                      "channels": {"local": {"type": "local"}}}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


async def test_a_monitor_lists_and_the_admin_manages_jobs_over_the_control_api(
        host: GatewayHost) -> None:
    assert host.server is not None
    admin = await RemoteControlPlane(host.server.url,
                                     str(host.runtime.secrets.get(ADMIN_TOKEN_KEY))).connect()
    monitor = await RemoteControlPlane(host.server.url,
                                       str(host.runtime.secrets.get(MONITOR_TOKEN_KEY))).connect()
    try:
        row = await admin.create_schedule("local", "remote", "stand up", cron="0 10 * * *",
                                          timezone="Asia/Tokyo")
        assert row.timing == "at 10:00 every day (Asia/Tokyo)" and row.cron == "0 10 * * *"
        assert [r.id for r in await monitor.schedules()] == [row.id]
        with pytest.raises(RemoteError, match="admin token"):
            await monitor.delete_schedule(row.id)
        with pytest.raises(RemoteError, match="unknown time zone"):
            await admin.create_schedule("local", "remote", "x", cron="0 10 * * *",
                                        timezone="Tokyo")
        paused = await admin.set_schedule_enabled(row.id, False)
        assert paused is not None and not paused.enabled
        assert await admin.delete_schedule(row.id)
        assert await monitor.schedules() == []
    finally:
        await admin.close()
        await monitor.close()
