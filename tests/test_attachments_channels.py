"""Attachments through Slack and Discord, each with its real SDK against its fake.

Slack: files.info, then ``url_private_download`` with the bot token in the Authorization
header. Discord: the attachment's signed CDN link, fetched with no token at all.
"""

from __future__ import annotations

from typing import Any

from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness import PlatformHarness
from tests.contract.harness_discord import DiscordHarness
from tests.contract.harness_slack import SlackHarness
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually
from tests.test_attachments import OGG, PNG

WAIT = 20.0


async def online(harness: PlatformHarness, llm: FakeOpenAI,
                 make_gateway: GatewayFactory) -> Gateway:
    name = harness.type_name
    gateway = await make_gateway({
        "providers": [provider_section(llm, vision=True)],
        "attachments": {"voice": {"provider": "fake"}},
        "channels": {name: {"type": name, "dm_policy": "open", "rate_limit_per_minute": 0,
                            "stream_replies": False, **harness.channel_config()}}})
    harness.attach(gateway)
    await eventually(lambda: gateway.channels[name].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


async def reply_to(harness: PlatformHarness, chat: str, before: int) -> str:
    sent = await eventually(lambda: harness.sent(chat)[before:], timeout=WAIT)
    return sent[-1].text


async def test_slack_files_are_fetched_with_the_bot_token_and_read(
        slack: SlackHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    fake_llm.transcriber = lambda data, name: "book a table for two"
    await online(slack, fake_llm, make_gateway)
    chat = slack.chat(0)
    picture = slack.fake.add_file(PNG, "chart.png", "image/png")
    await slack.fake.deliver(slack.fake.message_event(chat, "what does it show?",
                                                      files=[picture]))
    assert await reply_to(slack, chat, 0) == "Echo: what does it show?"
    assert fake_llm.images == [("image/png", PNG)]

    clip = slack.fake.add_file(OGG, "audio_message.ogg", "audio/ogg")
    await slack.fake.deliver(slack.fake.message_event(chat, "", files=[clip]))
    assert await reply_to(slack, chat, 1) == "Echo: book a table for two"
    assert slack.fake.downloads == [picture["id"], clip["id"]]
    assert fake_llm.transcriptions[0].filename == "audio_message.ogg"


async def test_a_slack_file_that_is_gone_is_reported(
        slack: SlackHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    await online(slack, fake_llm, make_gateway)
    chat = slack.chat(1)
    await slack.fake.deliver(slack.fake.message_event(chat, "", files=[slack.fake.file()]))
    reply = await reply_to(slack, chat, 0)
    assert reply.startswith("I could not read what you sent: photo.png: Slack no longer has "
                            "the file") and "file_not_found" in reply
    assert fake_llm.requests == []


async def test_discord_attachments_come_from_the_cdn_without_the_token(
        discord_harness: DiscordHarness, fake_llm: FakeOpenAI,
        make_gateway: GatewayFactory) -> None:
    await online(discord_harness, fake_llm, make_gateway)
    fake = discord_harness.fake
    chat = discord_harness.chat(0)
    attachment: dict[str, Any] = fake.attachment(chat, PNG, "map.png", "image/png")
    await fake.inject(fake.user_message(chat, "where is this?", attachments=[attachment]))
    assert await reply_to(discord_harness, chat, 0) == "Echo: where is this?"
    assert fake_llm.images == [("image/png", PNG)]
    assert [auth for _, auth in fake.cdn_requests] == [None]  # the bot token stayed home

    expired = {**fake.attachment(chat, PNG, "old.png", "image/png")}
    expired["url"] = expired["url"].split("&hm=")[0]  # a link whose signature is gone
    await fake.inject(fake.user_message(chat, "and this?", attachments=[expired]))
    reply = await reply_to(discord_harness, chat, 1)
    assert reply == ("Echo: and this?\n\n(I could not read what you sent: old.png: the file "
                     "is no longer there on 127.0.0.1 (HTTP 404).)")
