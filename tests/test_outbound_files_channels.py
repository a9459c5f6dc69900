"""Files the assistant sends on Slack and Discord, each through its real SDK against its fake.

Slack: slack-sdk's ``files_upload_v2`` runs the external upload flow (getUploadURLExternal,
the bytes to the upload URL, completeUploadExternal sharing it in the thread). Discord: a
multipart Create Message (``payload_json`` + ``files[0]``) encoded by discord.py.
"""

from __future__ import annotations

import json
from typing import Any

from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness import PlatformHarness
from tests.contract.harness_discord import DiscordHarness
from tests.contract.harness_slack import SlackHarness
from tests.fakes.openai_api import FakeOpenAI, FakeToolCall
from tests.support import eventually
from tests.test_attachments import PNG
from tests.test_outbound_files import NOTES, calls, write_notes

WAIT = 20.0


async def online(harness: PlatformHarness, llm: FakeOpenAI,
                 make_gateway: GatewayFactory) -> Gateway:
    name = harness.type_name
    gateway = await make_gateway({
        "providers": [provider_section(llm, vision=True)],
        "channels": {name: {"type": name, "dm_policy": "open", "group_policy": "open",
                            "rate_limit_per_minute": 0, "stream_replies": False,
                            **harness.channel_config()}}})
    harness.attach(gateway)
    await eventually(lambda: gateway.channels[name].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


async def part_statuses(gateway: Gateway) -> list[tuple[int, str, str]]:
    rows = await gateway.store.db.fetchall(
        "SELECT idx, text, status FROM reply_parts ORDER BY out_id, idx")
    return [(r["idx"], r["text"], r["status"]) for r in rows]


async def test_slack_uploads_through_the_external_flow_into_the_thread(
        slack: SlackHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake_llm.responder = calls(write_notes)
    gateway = await online(slack, fake_llm, make_gateway)
    channel, thread = slack.thread_target()
    await slack.inject_message(channel, "make me a file", thread=thread)
    await eventually(lambda: slack.sent(channel), timeout=WAIT)
    await gateway.lanes.join()

    [shared] = slack.fake.uploads
    assert (shared.filename, shared.title, shared.data) == ("shopping.md", "shopping.md",
                                                            NOTES.encode())
    assert (shared.channel, shared.thread_ts, shared.initial_comment) == (channel, thread,
                                                                          "your list")
    assert [slack.fake.calls(m) for m in ("files.getUploadURLExternal",
                                          "files.completeUploadExternal")] == [1, 1]
    [answer] = slack.sent(channel)
    assert answer.thread == thread and answer.text.startswith("Done: sent shopping.md")
    assert await part_statuses(gateway) == [(0, "[file: shopping.md]", "sent"),
                                            (1, answer.text, "sent")]
    part = await gateway.store.db.fetchone("SELECT platform_id FROM reply_parts WHERE idx=0")
    assert part["platform_id"] == shared.file_id


async def test_slack_upload_whose_completion_answer_is_lost_is_never_repeated(
        slack: SlackHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake_llm.responder = calls(write_notes)
    gateway = await online(slack, fake_llm, make_gateway)
    slack.fake.lose_next_answer("files.completeUploadExternal")
    chat = slack.chat(0)
    await slack.inject_message(chat, "make me a file")
    await eventually(lambda: slack.sent(chat), timeout=WAIT)
    await gateway.lanes.join()

    assert len(slack.fake.uploads) == 1  # shared once; the gateway did not try again
    assert slack.fake.calls("files.getUploadURLExternal") == 1
    assert "may or may not have arrived" in slack.sent(chat)[0].text
    assert [status for _, _, status in await part_statuses(gateway)] == ["uncertain", "sent"]


async def test_discord_sends_a_picture_back_as_a_multipart_attachment(
        discord_harness: DiscordHarness, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    def send_back(results: list[str]) -> FakeToolCall:
        [listed] = json.loads(results[0])
        return FakeToolCall("send_file", {"file_id": listed["id"], "caption": "the map"})

    gateway = await online(discord_harness, fake_llm, make_gateway)
    fake = discord_harness.fake
    chat = discord_harness.chat(0)
    attachment: dict[str, Any] = fake.attachment(chat, PNG, "map.png", "image/png")
    await fake.inject(fake.user_message(chat, "look", attachments=[attachment]))
    await eventually(lambda: discord_harness.sent(chat), timeout=WAIT)
    await gateway.lanes.join()

    fake_llm.responder = calls(lambda results: FakeToolCall("list_files"), send_back)
    fake.fail_next("create_message", 429, retry_after=0.1)  # the upload is retried, once
    asked = await fake.inject(fake.user_message(chat, "send the map back"))
    await eventually(lambda: len(discord_harness.sent(chat)) == 3, timeout=WAIT)
    await gateway.lanes.join()

    [upload] = fake.uploads
    assert len(fake.rate_limit_log) == 1  # the 429 was waited out, and the form built anew
    assert (upload.field, upload.filename, upload.data) == ("files[0]", "map.png", PNG)
    assert (upload.content, upload.reply_to) == ("the map", asked)
    message = fake.messages[upload.message_id]
    assert [a["filename"] for a in message["attachments"]] == ["map.png"]
    assert discord_harness.sent(chat)[-1].text == (f"Done: sent map.png ({len(PNG)} bytes) "
                                                   "to this conversation")
    assert [status for _, _, status in await part_statuses(gateway)][-2:] == ["sent", "sent"]
