"""Editing sent messages (streamed replies) on Slack, through the real slack-sdk.

The connector runs against the fake Slack, which keeps every message's edit
history, so the tests check what a reader would see: edits in order, the last
one equal to the full reply, escaping applied as ``send_part`` applies it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from connectors.slack._parse import escape_text
from connectors.slack.manifest import SlackConfig
from connectors.slack.runtime import SlackConnector
from pyclaw_app.errors import FatalConnectorError, RetryableError
from pyclaw_app.model import Address
from tests.fakes.slack_api import SlackFake
from tests.support import RecordingContext

GROWING = ["Hello", "Hello, **wor", "Hello, **world** — a < b & c", "Hello, **world** — a < b & "
           "c.\n\n```py\nprint(1)\n```"]
"""Drafts of one streamed reply, as the gateway sends them about once a second."""


# ---- Slack --------------------------------------------------------------------------------


@pytest.fixture
async def sl() -> AsyncIterator[SlackFake]:
    async with SlackFake() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def slack(sl: SlackFake) -> AsyncIterator[SlackConnector]:
    config = SlackConfig(bot_token=SecretStr(sl.bot_token), app_token=SecretStr(sl.app_token),
                         base_url=sl.api_url)
    connector = SlackConnector("slack", config)
    await connector.start(RecordingContext(channel="slack"))
    yield connector
    await connector.stop()


async def test_slack_edits_arrive_in_order_escaped_like_send(
        sl: SlackFake, slack: SlackConnector) -> None:
    address = Address("slack", "C0001", thread="1700000000.000001")
    draft = await slack.send_part(address, "…", None)
    channel, _, ts = draft.partition(":")
    for text in [*GROWING, "<!channel> ping"]:
        await slack.edit(address, draft, text)
    expected = [escape_text(t) for t in [*GROWING, "<!channel> ping"]]
    assert sl.edits(channel, ts) == expected
    assert sl.text_of(channel, ts) == "&lt;!channel&gt; ping"  # no @channel ping


async def test_slack_edit_hands_a_429_to_the_gateway(sl: SlackFake, slack: SlackConnector
                                                     ) -> None:
    """The gateway's one retry layer waits out Retry-After; the SDK does not retry."""
    address = Address("slack", "D0001")
    draft = await slack.send_part(address, "…", None)
    sl.fail_next("chat.update", 429, retry_after=1)
    with pytest.raises(RetryableError) as err:
        await slack.edit(address, draft, "too soon")
    assert err.value.retry_after == 1.0 and sl.calls("chat.update") == 1
    await slack.edit(address, draft, "after the wait")
    assert sl.edits(*draft.split(":")) == ["after the wait"]


async def test_slack_edit_of_a_missing_or_foreign_message_is_fatal(
        sl: SlackFake, slack: SlackConnector) -> None:
    address = Address("slack", "C0001")
    with pytest.raises(FatalConnectorError, match="message_not_found"):
        await slack.edit(address, "C0001:1.000099", "text")
    users = sl.message_event("C0001", "written by a person")["event"]
    with pytest.raises(FatalConnectorError, match="cant_update_message"):
        await slack.edit(address, f"C0001:{users['ts']}", "text")
    draft = await slack.send_part(address, "…", None)
    with pytest.raises(FatalConnectorError, match="msg_too_long"):
        await slack.edit(address, draft, "x" * 40_001)
    assert sl.edits(*draft.split(":")) == []

