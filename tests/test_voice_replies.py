"""Voice replies on Telegram: a voice note in, its transcript answered, and the answer sent
as text and, spoken by the OpenAI fake's ``/audio/speech``, as a voice message (sendVoice,
an Ogg/Opus upload). When speech fails the text still goes out and the log says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, Attachment, ChannelState, Inbound
from tests.conftest import GatewayFactory, StoreFactory, provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.support import eventually
from tests.test_attachments import OGG
from tests.test_attachments_telegram import CHAT, channel_log, send

WAIT = 20.0


async def online(harness: TelegramHarness, llm: FakeOpenAI, make_gateway: GatewayFactory,
                 data: Path, speech: dict[str, Any]) -> Gateway:
    gateway = await make_gateway({
        "providers": [provider_section(llm)],
        "attachments": {"voice": {"provider": "fake"}, "speech": speech},
        "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                  "rate_limit_per_minute": 0, "stream_replies": False,
                                  "voice_replies": True, **harness.channel_config()}}},
        data_dir=data)
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


def voice_note(harness: TelegramHarness) -> dict[str, Any]:
    held = harness.fake.add_file(OGG, folder="voice", extension=".oga")
    return {**held, "duration": 2, "mime_type": "audio/ogg"}


async def test_a_voice_note_is_answered_in_text_and_in_a_voice_message(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    fake_llm.transcriber = lambda data, name: "what time is it"
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data",
                           {"provider": "fake"})
    reply = await send(telegram, gateway, voice=voice_note(telegram))
    await eventually(lambda: telegram.fake.uploads, timeout=WAIT)
    await gateway.lanes.join()

    assert reply == "Echo: what time is it"
    [spoken] = fake_llm.speeches
    assert (spoken.model, spoken.voice, spoken.response_format, spoken.input) == (
        "tts-1", "alloy", "opus", "Echo: what time is it")
    [upload] = telegram.fake.uploads
    assert (upload.method, upload.field, upload.filename) == ("sendVoice", "voice", "reply.ogg")
    assert upload.data == spoken.data and upload.data.startswith(b"OggS")
    asked = telegram.fake.sent_to(CHAT)[-1]
    question = await gateway.store.db.fetchone(
        "SELECT platform_id FROM messages WHERE direction='in'")
    assert upload.reply_to_message_id == int(question["platform_id"].split(":")[1])
    out = await gateway.store.db.fetchone("SELECT id, status FROM messages WHERE direction='out'")
    assert out["status"] == "sent"
    parts = await gateway.store.journal.parts(out["id"])
    assert [(p.idx, p.text, p.status) for p in parts] == [
        (1, "[voice message: reply.ogg]", "sent")]  # part 0 is the reply's own row
    assert parts[0].platform_id == f"{CHAT}:{upload.message_id}" != f"{CHAT}:{asked.message_id}"
    lines = await channel_log(gateway, "voice reply sent")
    assert lines

    # A typed message on the same channel is answered in text only.
    assert await send(telegram, gateway, text="thanks") == "Echo: thanks"
    assert len(fake_llm.speeches) == 1 and len(telegram.fake.uploads) == 1


@pytest.mark.parametrize(("fault", "said"), [
    (Fault(status=500), "the speech service answered HTTP 500"),
    (Fault(drop=True), "the speech service could not be reached"),
])
async def test_when_speech_fails_the_text_still_goes_and_the_log_says_why(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path, fault: Fault, said: str) -> None:
    async with FakeOpenAI() as speech:
        speech.faults.append(fault)
        gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data",
                               {"base_url": speech.base_url, "format": "mp3"})
        reply = await send(telegram, gateway, voice=voice_note(telegram))
        await gateway.lanes.join()

        assert reply == "Echo: (speech in voice.ogg)"  # the transcript, answered in text
        assert telegram.fake.uploads == [] and speech.speeches == []
        lines = await channel_log(gateway, "no voice reply")
        assert any(said in line for line in lines), lines
        row = await gateway.store.db.fetchone(
            "SELECT status FROM messages WHERE direction='in'")
        assert row["status"] == "replied"


async def test_a_voice_reply_without_a_speech_service_is_explained_once_per_message(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data", {})
    reply = await send(telegram, gateway, voice=voice_note(telegram))

    assert reply.startswith("Echo: ")
    assert telegram.fake.uploads == [] and fake_llm.speeches == []
    lines = await channel_log(gateway, "attachments.speech names no speech service")
    assert len(lines) == 1


async def test_a_voice_upload_cut_by_a_crash_is_uncertain_after_the_restart(
        tmp_path: Path, open_store: StoreFactory, make_gateway: GatewayFactory) -> None:
    """The text reply was recorded sent, the voice part after it was pending when the
    process died: the next start marks it uncertain (never uploaded again), and says so."""
    store = await open_store(tmp_path / "data")
    address = Address("local", "app")
    inbound = await store.journal.submit(Inbound(address, "v-1", "", attachments=(
        Attachment("audio", mime="audio/ogg", platform_id="voice-1"),)))
    out_id = await store.journal.add_outbound(inbound.journal_id, address, "the answer",
                                              first_part="the answer")
    await store.journal.complete_reply(out_id, inbound.journal_id, ["p0"], "the answer",
                                       (0, "p0"))
    await store.journal.begin_part(out_id, 1, "voice reply")
    await store.close()

    gateway = await make_gateway({})
    parts = await gateway.store.journal.parts(out_id)
    assert [(p.idx, p.status) for p in parts] == [(0, "sent"), (1, "uncertain")]
    assert "not sent again" in (parts[1].error or "")
    logged = await eventually(lambda: gateway.store.logs.page(channel="gateway",
                                                              search="marked uncertain"))
    assert logged
