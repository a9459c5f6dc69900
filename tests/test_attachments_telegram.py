"""Pictures, voice notes and documents sent on Telegram, end to end.

The real Telegram connector (python-telegram-bot) polls the fake Bot API, which holds
the files as Telegram does (getFile, then ``/file/bot<token>/<file_path>``); the real
gateway downloads, checks and stores them, and the real OpenAI SDK carries them to the
OpenAI fake as image parts or through ``/v1/audio/transcriptions``.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from pyclaw_app.gateway import Gateway
from pyclaw_app.model import ChannelState
from tests.conftest import GatewayFactory, provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.fakes.telegram_api import FakeTelegram
from tests.support import eventually
from tests.test_attachments import JPEG, OGG, PNG, ZIP, make_pdf

WAIT = 20.0
CHAT = 1001


async def online(harness: TelegramHarness, llm: FakeOpenAI, make_gateway: GatewayFactory,
                 data: Path, *, provider: dict[str, Any] | None = None,
                 **attachments: Any) -> Gateway:
    gateway = await make_gateway({
        "providers": [provider_section(llm, **(provider or {}))],
        "attachments": {"voice": {"provider": "fake"}, **attachments},
        "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                  "rate_limit_per_minute": 0, "stream_replies": False,
                                  **harness.channel_config()}}},
        data_dir=data)
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


async def send(harness: TelegramHarness, gateway: Gateway, **fields: Any) -> str:
    """A message with ``fields`` (photo, voice, document, caption...) from the user of CHAT;
    returns the reply the user got, once the gateway is done with the message."""
    before = len(harness.fake.sent_to(CHAT))
    message = harness.fake.inject_message(CHAT, fields.pop("text", None), extra=fields)
    pid = f"{CHAT}:{message['message_id']}"

    async def settled() -> bool:
        row = await gateway.store.db.fetchone(
            "SELECT status FROM messages WHERE direction='in' AND platform_id=?", (pid,))
        return row is not None and row["status"] in ("replied", "skipped", "failed")

    await eventually(settled, timeout=WAIT)
    await gateway.lanes.join()
    sent = await eventually(lambda: harness.fake.sent_to(CHAT)[before:], timeout=WAIT)
    return sent[-1].text


def photo(fake: FakeTelegram, data: bytes) -> list[dict[str, Any]]:
    """Telegram's PhotoSize list, smallest first (the connector takes the largest)."""
    thumb = fake.add_file(data[:64], folder="photos", extension=".jpg")
    full = fake.add_file(data, folder="photos", extension=".jpg")
    return [{**thumb, "width": 90, "height": 60}, {**full, "width": 1280, "height": 853}]


def last_user_content(llm: FakeOpenAI) -> Any:
    return [m for m in llm.requests[-1]["messages"] if m["role"] == "user"][-1]["content"]


async def channel_log(gateway: Gateway, search: str) -> list[str]:
    """Telegram's log lines containing ``search`` (written in batches: waited for)."""
    rows = await eventually(lambda: gateway.store.logs.page(channel="telegram", search=search),
                            timeout=WAIT)
    return [str(r["message"]) for r in rows]


async def test_a_photo_reaches_a_vision_model_as_an_image_part_and_is_stored_privately(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = await online(telegram, fake_llm, make_gateway, data, provider={"vision": True})
    reply = await send(telegram, gateway, photo=photo(telegram.fake, JPEG),
                       caption="what is this?")

    assert reply == "Echo: what is this?"
    assert fake_llm.images == [("image/jpeg", JPEG)]  # the largest size, byte for byte
    parts = last_user_content(fake_llm)
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert telegram.fake.downloads == ["photos/file_2.jpg"]

    files = list((data / "attachments" / "telegram").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == JPEG
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "attachments").stat().st_mode) == 0o700
    row = await gateway.store.db.fetchone("SELECT * FROM attachment_files")
    assert row["path"] == f"telegram/{files[0].name}" and row["mime"] == "image/jpeg"
    assert row["size"] == len(JPEG)

    # The gateway's retention pass removes it once it is older than retention.attachments.
    await gateway.store.db.execute("UPDATE attachment_files SET created_at = created_at - ?",
                                   (31 * 86_400,))
    removed = await gateway.retention.prune(gateway.config.retention)
    assert removed["attachment files"] == 1 and not files[0].exists()
    await gateway.stop()  # everything written and checkpointed: now read the database bytes
    for db_file in data.glob("pyclaw.sqlite3*"):
        assert JPEG[16:48] not in db_file.read_bytes(), db_file  # the bytes are not in SQLite


async def test_a_model_without_vision_is_told_a_picture_was_sent(
        telegram: TelegramHarness, make_gateway: GatewayFactory, tmp_path: Path) -> None:
    async with FakeOpenAI(vision_models=()) as llm:  # refuses image parts like the real API
        gateway = await online(telegram, llm, make_gateway, tmp_path / "data")
        reply = await send(telegram, gateway, photo=photo(telegram.fake, JPEG))
        assert llm.images == []
        assert last_user_content(llm) == f"[the user sent a picture: {len(JPEG)} bytes]"
        assert reply == f"Echo: [the user sent a picture: {len(JPEG)} bytes]"


async def test_a_voice_note_is_transcribed_used_as_the_message_and_logged(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    fake_llm.transcriber = lambda data, name: "remind me to buy milk"
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data")
    voice = telegram.fake.add_file(OGG, folder="voice", extension=".oga")
    reply = await send(telegram, gateway,
                       voice={**voice, "duration": 2, "mime_type": "audio/ogg"})

    assert reply == "Echo: remind me to buy milk"
    assert last_user_content(fake_llm) == "remind me to buy milk"
    [upload] = fake_llm.transcriptions
    assert (upload.model, upload.filename, upload.data) == ("whisper-1", "voice.ogg", OGG)
    lines = await channel_log(gateway, "transcribed")
    assert any("remind me to buy milk" in line for line in lines), lines

    # The next turn remembers what the voice note said (history, not a new transcription).
    await send(telegram, gateway, text="what did I just ask?")
    history = [m["content"] for m in fake_llm.requests[-1]["messages"] if m["role"] == "user"]
    assert history[0] == "[voice note] remind me to buy milk"
    assert len(fake_llm.transcriptions) == 1


async def test_a_file_over_the_size_cap_is_not_downloaded_and_the_sender_is_told(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data",
                           max_bytes=2048)
    big = telegram.fake.add_file(b"x" * 5000, extension=".txt")
    reply = await send(telegram, gateway, document={**big, "file_name": "big.txt",
                                                    "mime_type": "text/plain"})

    assert reply == ("I could not read what you sent: big.txt: it is 4.9 KB, over the 2 KB "
                     "limit for files.")
    assert telegram.fake.downloads == [] and fake_llm.requests == []  # no bytes, no tokens
    lines = await channel_log(gateway, "could not be read")
    assert any("big.txt" in line and "over the 2 KB limit" in line for line in lines), lines


async def test_telegrams_own_20_mb_limit_is_reported(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data",
                           max_bytes=50 * 2**20)
    huge = telegram.fake.add_file(b"%PDF-1.4 tiny", size=25 * 2**20, extension=".pdf")
    reply = await send(telegram, gateway, caption="summarise this",
                       document={**huge, "file_name": "huge.pdf", "mime_type": "application/pdf"})

    assert reply.startswith("Echo: summarise this")
    assert reply.endswith("(I could not read what you sent: huge.pdf: Telegram lets bots "
                          "download files of up to 20 MB; this one is bigger.)")
    assert telegram.fake.downloads == []


async def test_a_file_whose_type_is_a_lie_is_refused_and_the_caption_still_answered(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = await online(telegram, fake_llm, make_gateway, data)
    fake_pdf = telegram.fake.add_file(ZIP, extension=".pdf")
    reply = await send(telegram, gateway, caption="what's in the report?",
                       document={**fake_pdf, "file_name": "report.pdf",
                                 "mime_type": "application/pdf"})

    assert reply == ("Echo: what's in the report?\n\n(I could not read what you sent: "
                     "report.pdf: it was sent as application/pdf but its content is a ZIP "
                     "archive.)")
    assert last_user_content(fake_llm) == "what's in the report?"
    lines = await channel_log(gateway, "could not be read")
    assert any("report.pdf" in line and "ZIP archive" in line for line in lines), lines
    assert not (data / "attachments" / "telegram").exists() or not list(
        (data / "attachments" / "telegram").iterdir())  # refused files are not kept


async def test_a_pdf_and_a_markdown_file_are_read_into_the_prompt(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data")
    pdf = telegram.fake.add_file(make_pdf(["Invoice 42", "Total due 99 EUR"]), extension=".pdf")
    await send(telegram, gateway, caption="how much?",
               document={**pdf, "file_name": "invoice.pdf", "mime_type": "application/pdf"})
    content = last_user_content(fake_llm)
    assert content.startswith("how much?\n\n[the user sent the PDF invoice.pdf (2 pages)")
    assert "Invoice 42" in content and "Total due 99 EUR" in content

    notes = telegram.fake.add_file(b"# Shopping\n- milk\n- bread\n", extension=".md")
    await send(telegram, gateway, document={**notes, "file_name": "list.md",
                                            "mime_type": "text/markdown"})
    assert last_user_content(fake_llm) == ("[the user sent the document list.md; its text "
                                           "follows]\n# Shopping\n- milk\n- bread")


async def test_a_retry_after_a_failed_answer_reuses_the_stored_file(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    fake_llm.transcriber = lambda data, name: "call mum"
    gateway = await online(telegram, fake_llm, make_gateway, tmp_path / "data")
    fake_llm.faults.extend([Fault(), Fault(status=500)])  # transcribed, then the answer fails
    voice = telegram.fake.add_file(OGG, folder="voice", extension=".oga")
    reply = await send(telegram, gateway, voice={**voice, "mime_type": "audio/ogg"})
    assert reply.startswith("Sorry, I can't answer right now")
    row = await gateway.store.db.fetchone(
        "SELECT id FROM messages WHERE direction='in' AND status='failed'")

    assert await gateway.retry(row["id"])
    await eventually(lambda: len(telegram.fake.sent_to(CHAT)) == 2, timeout=WAIT)
    assert telegram.fake.sent_to(CHAT)[-1].text == "Echo: call mum"
    assert telegram.fake.downloads == ["voice/file_1.oga"]  # not downloaded again
    assert len(fake_llm.transcriptions) == 1  # nor transcribed (and paid for) again
    stored = await gateway.store.db.fetchone("SELECT transcript, path FROM attachment_files")
    assert stored["transcript"] == "call mum" and stored["path"]
    assert json.loads((await gateway.store.db.fetchone(
        "SELECT attachments FROM messages WHERE id=?", (row["id"],)))["attachments"])


async def test_a_picture_sent_just_before_the_question_is_seen_with_it_in_a_burst(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    """``burst: collect``: the photo and the question after it are one turn; the photo's
    message is an earlier one of the burst, and the model still gets the picture."""
    gateway = await make_gateway({
        "providers": [provider_section(fake_llm, vision=True)],
        "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                  "rate_limit_per_minute": 0, "stream_replies": False,
                                  "burst": "collect", "burst_settle": 0.5,
                                  **telegram.channel_config()}}},
        data_dir=tmp_path / "data")
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    telegram.fake.inject_message(CHAT, None, extra={"photo": photo(telegram.fake, PNG)})
    telegram.fake.inject_message(CHAT, "what is in it?")
    sent = await eventually(lambda: telegram.fake.sent_to(CHAT), timeout=WAIT)
    await gateway.lanes.join()
    assert [s.text for s in telegram.fake.sent_to(CHAT)] == ["Echo: what is in it?"]
    assert len(sent) == 1 and len(fake_llm.requests) == 1
    assert fake_llm.images == [("image/png", PNG)]
    parts = last_user_content(fake_llm)
    assert [p["type"] for p in parts] == ["text", "image_url"]
    rows = await gateway.store.db.fetchall(
        "SELECT id, answered_with FROM messages WHERE direction='in' ORDER BY id")
    assert [r["answered_with"] for r in rows] == [rows[1]["id"]] * 2  # one burst, two rows
