"""People over the control API: the monitor reads a person's accounts and conversations (the
nested rows come back whole); linking and unlinking need the admin token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.remote import AdminRequired, RemoteControlPlane, RemoteError
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually


@pytest.fixture
async def host(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)]}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


async def plane(host: GatewayHost, key: str) -> RemoteControlPlane:
    assert host.server is not None
    token = host.runtime.secrets.get(key)
    assert token
    return await RemoteControlPlane(host.server.url, token).connect()


async def test_the_monitor_reads_people_and_only_the_admin_links(host: GatewayHost) -> None:
    admin = await plane(host, ADMIN_TOKEN_KEY)
    monitor = await plane(host, MONITOR_TOKEN_KEY)
    try:
        await admin.chat_send("hello from the app")
        await eventually(lambda: _replied(admin))
        person = await admin.link_accounts("local", "you", "telegram", "1001")
        assert {(a.channel, a.sender_id) for a in person.accounts} == {
            ("local", "you"), ("telegram", "1001")}

        (seen,) = await monitor.people()
        assert seen == person
        detail = await monitor.person_detail(person.id)
        assert detail is not None and detail.person == person
        (conversation,) = detail.conversations
        assert (conversation.channel, conversation.chat, conversation.is_group) == (
            "local", "app", False)
        assert [t.text for t in detail.traffic] == ["Echo: hello from the app",
                                                    "hello from the app"]
        assert await monitor.person_detail(person.id + 1) is None

        with pytest.raises(AdminRequired):
            await monitor.unlink_account("local", "you")
        with pytest.raises(RemoteError, match="itself"):
            await admin.link_accounts("local", "you", "local", "you")
        assert await admin.unlink_account("local", "you") is True
        assert await monitor.people() == []
    finally:
        await admin.close()
        await monitor.close()


async def _replied(remote: RemoteControlPlane) -> bool:
    return any(t.direction == "out" for t in await remote.recent_traffic(10))
