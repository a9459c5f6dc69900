"""Files the assistant sends, end to end: the model (the OpenAI fake) calls ``send_file``,
the real gateway stores the file, journals it as a reply part and uploads it through the
channel; the file arrives with its bytes, the custody rows say what went out, and a
crash or a lost answer never sends it twice.

Local chat and Telegram (python-telegram-bot against the fake Bot API, which takes the
uploads as multipart/form-data as "Sending files" describes them).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from connectors.openai_api import keys
from pyclaw_app.control.chat import ask
from pyclaw_app.control.webhooks import WebhookServer
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Address, ChannelState, Inbound
from tests.conftest import GatewayFactory, StoreFactory, provider_section
from tests.contract.harness_telegram import TelegramHarness
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall
from tests.support import eventually
from tests.test_attachments import JPEG
from tests.test_attachments_telegram import CHAT, photo, send

WAIT = 20.0
NOTES = "# Shopping\n\n- milk\n- bread\n"

Responder = Callable[[list[dict[str, Any]]], "str | FakeReply"]


def tool_results(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m["content"]) for m in messages if m.get("role") == "tool"]


def calls(*steps: Callable[[list[str]], FakeToolCall]) -> Responder:
    """A model that makes one tool call per round (each step sees the results so far),
    then answers with the last result."""
    def respond(messages: list[dict[str, Any]]) -> str | FakeReply:
        results = tool_results(messages)
        if len(results) < len(steps):
            return FakeReply(tool_calls=[steps[len(results)](results)])
        return f"Done: {results[-1]}"
    return respond


def write_notes(results: list[str]) -> FakeToolCall:
    return FakeToolCall("send_file", {"name": "shopping.md", "content": NOTES,
                                      "caption": "your list"})


async def telegram_online(harness: TelegramHarness, llm: FakeOpenAI,
                          make_gateway: GatewayFactory, data: Path) -> Gateway:
    gateway = await make_gateway({
        "providers": [provider_section(llm, vision=True)],
        "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                  "rate_limit_per_minute": 0, "stream_replies": False,
                                  **harness.channel_config()}}},
        data_dir=data)
    await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                     timeout=WAIT)
    return gateway


async def parts_of(gateway: Gateway, inbound_platform_id: str) -> list[dict[str, Any]]:
    """The reply's custody rows (with their file reference), in order."""
    rows = await gateway.store.db.fetchall(
        "SELECT p.idx, p.text, p.status, p.platform_id, p.file FROM reply_parts p"
        " JOIN messages o ON o.id = p.out_id JOIN messages i ON i.id = o.reply_to"
        " WHERE i.platform_id=? ORDER BY p.idx", (inbound_platform_id,))
    return [dict(r) for r in rows]


async def test_a_file_the_model_writes_reaches_the_local_chat_under_custody(
        fake_llm: FakeOpenAI, make_gateway: GatewayFactory, tmp_path: Path) -> None:
    fake_llm.responder = calls(write_notes)
    data = tmp_path / "data"
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": {"local": {"type": "local"}}}, data_dir=data)
    answer = await ask(gateway, "put my list in a file", chat="app", timeout=WAIT)

    assert answer == f"Done: sent shopping.md ({len(NOTES.encode())} bytes) to this conversation"
    [sent] = gateway.channels["local"].connector.files
    assert sent.chat == "app" and sent.size == len(NOTES.encode())
    assert (sent.file.name, sent.file.mime, sent.file.caption) == (
        "shopping.md", "text/markdown", "your list")
    assert sent.file.path is not None and sent.file.path.read_bytes() == NOTES.encode()
    assert stat.S_IMODE(sent.file.path.stat().st_mode) == 0o600
    assert sent.file.path.parent == data / "attachments" / "local"

    reply = await gateway.store.db.fetchone(
        "SELECT id, text, status FROM messages WHERE direction='out'")
    assert (reply["text"], reply["status"]) == (answer, "sent")
    parts = await gateway.store.journal.parts(reply["id"])
    assert [(p.idx, p.text, p.status) for p in parts] == [
        (0, "[file: shopping.md]", "sent"), (1, answer, "sent")]
    assert parts[0].platform_id == sent.platform_id
    [reference] = (await gateway.store.journal.part_files(reply["id"])).values()
    assert json.loads(reference) == {"name": "shopping.md", "mime": "text/markdown",
                                     "kind": "file", "caption": "your list",
                                     "path": f"local/{sent.file.path.name}"}
    # Kept on the books of attachment_files, so the retention sweep removes it in time.
    kept = await gateway.store.db.fetchone("SELECT message_id, path FROM attachment_files")
    assert (kept["message_id"], kept["path"]) == (reply["id"], f"local/{sent.file.path.name}")
    logs = await eventually(lambda: gateway.store.logs.page(channel="local",
                                                            search="send_file"))
    assert any("shopping.md" in line["message"] for line in logs)


@pytest.mark.parametrize(("arguments", "error"), [
    ({"name": "../etc/passwd", "content": "x"}, "plain file name"),
    ({"name": "big.txt", "content": "x" * (256 * 1024 + 1)}, "at most 256 KB"),
    ({"file_id": 999}, "there is no file 999 in this conversation"),
    ({}, "give either file_id"),
])
async def test_bad_file_requests_are_told_to_the_model_and_nothing_is_sent(
        fake_llm: FakeOpenAI, make_gateway: GatewayFactory, arguments: dict[str, Any],
        error: str) -> None:
    fake_llm.responder = calls(lambda results: FakeToolCall("send_file", arguments))
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": {"local": {"type": "local"}}})
    answer = await ask(gateway, "send it", chat="app", timeout=WAIT)

    assert answer.startswith("Done: error: ") and error in answer
    assert list(gateway.channels["local"].connector.files) == []
    parts = await gateway.store.db.fetchall("SELECT * FROM reply_parts")
    assert parts == []  # nothing was journaled as going out


async def test_a_picture_the_user_sent_goes_back_as_a_telegram_photo(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    def send_back(results: list[str]) -> FakeToolCall:
        [listed] = json.loads(results[0])
        return FakeToolCall("send_file", {"file_id": listed["id"], "caption": "here it is"})

    gateway = await telegram_online(telegram, fake_llm, make_gateway, tmp_path / "data")
    await send(telegram, gateway, photo=photo(telegram.fake, JPEG), caption="keep this")
    fake_llm.responder = calls(lambda results: FakeToolCall("list_files"), send_back)
    message = telegram.fake.inject_message(CHAT, "send me that picture again")
    pid = f"{CHAT}:{message['message_id']}"
    await eventually(lambda: len(telegram.fake.sent_to(CHAT)) == 2, timeout=WAIT)
    await gateway.lanes.join()

    [upload] = telegram.fake.uploads
    assert (upload.method, upload.field, upload.chat_id) == ("sendPhoto", "photo", CHAT)
    assert upload.data == JPEG and upload.caption == "here it is"
    assert upload.reply_to_message_id == message["message_id"]  # it answers the request
    assert telegram.fake.sent_to(CHAT)[-1].text == (f"Done: sent picture.jpg ({len(JPEG)} "
                                                    "bytes) to this conversation")
    parts = await parts_of(gateway, pid)
    assert [(p["idx"], p["text"], p["status"]) for p in parts] == [
        (0, "[picture: picture.jpg]", "sent"), (1, parts[1]["text"], "sent")]
    assert parts[0]["platform_id"] == f"{CHAT}:{upload.message_id}"
    # The reference points at the stored inbound file: nothing was copied.
    assert json.loads(parts[0]["file"])["path"].startswith("telegram/")
    assert len(list((tmp_path / "data" / "attachments" / "telegram").iterdir())) == 1


async def test_a_written_file_goes_as_a_telegram_document_with_its_bytes(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    fake_llm.responder = calls(write_notes)
    gateway = await telegram_online(telegram, fake_llm, make_gateway, tmp_path / "data")
    reply = await send(telegram, gateway, text="make me a file")

    assert reply == f"Done: sent shopping.md ({len(NOTES.encode())} bytes) to this conversation"
    [upload] = telegram.fake.uploads
    assert (upload.method, upload.field, upload.filename) == ("sendDocument", "document",
                                                              "shopping.md")
    assert upload.data == NOTES.encode() and upload.caption == "your list"


async def test_a_lost_upload_answer_is_uncertain_and_never_sent_again(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    fake_llm.responder = calls(write_notes)
    gateway = await telegram_online(telegram, fake_llm, make_gateway, tmp_path / "data")
    telegram.fake.lose_next_answer("sendDocument")
    message = telegram.fake.inject_message(CHAT, "make me a file")
    await eventually(lambda: telegram.fake.sent_to(CHAT), timeout=WAIT)
    await gateway.lanes.join()

    assert len(telegram.fake.uploads) == 1  # it arrived once and was not uploaded again
    told = telegram.fake.sent_to(CHAT)[-1].text
    assert "shopping.md may or may not have arrived" in told and "do not send it again" in told
    parts = await parts_of(gateway, f"{CHAT}:{message['message_id']}")
    assert [(p["idx"], p["status"]) for p in parts] == [(0, "uncertain"), (1, "sent")]
    assert "not sent again" in (await gateway.store.db.fetchone(
        "SELECT error FROM reply_parts WHERE idx=0"))["error"]


async def _crashed_mid_upload(data: Path, open_store: StoreFactory) -> int:
    """What a crash during an upload leaves: the file stored, its part pending."""
    store = await open_store(data)
    try:
        address = Address("telegram", str(CHAT), "")
        result = await store.journal.submit(Inbound(address, f"{CHAT}:77", "make me a file",
                                                    str(CHAT), "User"))
        folder = data / "attachments" / "telegram"
        folder.mkdir(parents=True)
        (folder / "out-1-abcd.txt").write_bytes(NOTES.encode())
        reference = json.dumps({"name": "shopping.md", "mime": "text/markdown",
                                "kind": "file", "caption": "",
                                "path": "telegram/out-1-abcd.txt"})
        await store.journal.add_outbound_file(result.journal_id, address,
                                              "[file: shopping.md]", reference)
        return result.journal_id
    finally:
        await store.close()


async def test_a_restart_after_a_crash_mid_upload_does_not_send_the_file_twice(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        open_store: StoreFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    inbound_id = await _crashed_mid_upload(data, open_store)
    gateway = await telegram_online(telegram, fake_llm, make_gateway, data)

    async def closed() -> Any:
        row = await gateway.store.journal.get(inbound_id)
        return row if row is not None and row.status == "failed" else None

    row = await eventually(closed, timeout=WAIT)
    assert row.error.startswith("uncertain")
    reply = await gateway.store.journal.reply_of(inbound_id)
    assert reply is not None and reply.status == "failed"
    assert [(p.idx, p.status) for p in await gateway.store.journal.parts(reply.id)] == [
        (0, "uncertain")]
    await gateway.lanes.join()
    assert telegram.fake.uploads == [] and telegram.fake.sent_to(CHAT) == []
    assert fake_llm.requests == []  # not answered again either: a person decides (Retry)


async def test_retry_of_a_half_sent_reply_sends_only_what_did_not_go_out(
        telegram: TelegramHarness, fake_llm: FakeOpenAI, make_gateway: GatewayFactory,
        tmp_path: Path) -> None:
    second = FakeToolCall("send_file", {"name": "prices.csv", "content": "milk,1.20\n"})
    fake_llm.responder = calls(write_notes, lambda results: second)
    gateway = await telegram_online(telegram, fake_llm, make_gateway, tmp_path / "data")
    telegram.fake.fail_next("sendDocument", 400, skip=1)  # the second file is refused...
    telegram.fake.fail_next("sendMessage", 400)  # ...and so is the answer
    message = telegram.fake.inject_message(CHAT, "make me two files")
    pid = f"{CHAT}:{message['message_id']}"
    row = await eventually(lambda: gateway.store.db.fetchone(
        "SELECT id, status FROM messages WHERE platform_id=? AND status='failed'", (pid,)),
        timeout=WAIT)
    await gateway.lanes.join()
    assert [u.filename for u in telegram.fake.uploads] == ["shopping.md"]
    assert [(p["idx"], p["status"]) for p in await parts_of(gateway, pid)] == [
        (0, "sent"), (1, "failed"), (2, "failed")]

    assert await gateway.retry(row["id"])
    await eventually(lambda: telegram.fake.sent_to(CHAT), timeout=WAIT)
    await gateway.lanes.join()

    # The file that went out is not sent again; the refused one and the answer are.
    assert [u.filename for u in telegram.fake.uploads] == ["shopping.md", "prices.csv"]
    assert telegram.fake.uploads[1].data == b"milk,1.20\n"
    [answer] = telegram.fake.sent_to(CHAT)
    assert answer.text.startswith("Done: error: prices.csv was not sent")
    assert [(p["idx"], p["status"]) for p in await parts_of(gateway, pid)] == [
        (0, "sent"), (3, "sent"), (4, "sent")]
    assert fake_llm.requests and len(fake_llm.requests) == 3  # no new answer was written
    final = await gateway.store.journal.get(row["id"])
    assert final is not None and final.status == "replied"


async def test_a_channel_that_cannot_send_files_tells_the_model_so(
        fake_llm: FakeOpenAI, make_gateway: GatewayFactory) -> None:
    """The OpenAI-compatible API channel answers in the HTTP response: no files there."""
    fake_llm.responder = calls(write_notes)
    gateway = await make_gateway({"providers": [provider_section(fake_llm)],
                                  "channels": {"api": {"type": "openai_api"}}})
    await eventually(lambda: gateway.channels["api"].state == ChannelState.ONLINE)
    key = await keys.issue(gateway.store.channel_state.of("api"), "laptop")
    server = WebhookServer(gateway, "127.0.0.1", 0)
    await server.start()
    try:
        client = openai.AsyncOpenAI(base_url=f"{server.url}/webhook/api/v1", api_key=key,
                                    max_retries=0, timeout=20)
        answer = await client.chat.completions.create(
            model="pyclaw", messages=[{"role": "user", "content": "make me a file"}])
        await client.close()
    finally:
        await server.stop()

    assert answer.choices[0].message.content == (
        "Done: error: this OpenAI-compatible API channel cannot send files; tell the user in "
        "words instead")
    assert await gateway.store.db.fetchall("SELECT * FROM reply_parts") == []
    assert list((gateway.store.data_dir / "attachments").glob("*/*")) == []


async def test_a_file_sent_while_a_draft_streams_keeps_every_part_in_its_place(
        telegram: TelegramHarness, make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """The draft is part 0, the file part 1, the rest of a long answer part 2."""
    preamble = "Let me write that down for you. " * 30  # streamed for ~0.2 s: a draft
    final = " ".join(f"item{i}" for i in range(900))  # ~6,300 characters: two parts

    def respond(messages: list[dict[str, Any]]) -> str | FakeReply:
        if not tool_results(messages):
            return FakeReply(preamble, [write_notes([])])
        return final

    async with FakeOpenAI(chunk_size=50, chunk_delay=0.01, responder=respond) as llm:
        gateway = await make_gateway({
            "providers": [provider_section(llm)],
            "channels": {"telegram": {"type": "telegram", "dm_policy": "open",
                                      "rate_limit_per_minute": 0,
                                      **telegram.channel_config()}}},
            data_dir=tmp_path / "data")
        gateway.stream_interval = 0.05
        await eventually(lambda: gateway.channels["telegram"].state == ChannelState.ONLINE,
                         timeout=WAIT)
        message = telegram.fake.inject_message(CHAT, "write it down")
        await eventually(lambda: len(telegram.fake.sent_to(CHAT)) == 2, timeout=WAIT)
        await gateway.lanes.join()

    draft, rest = telegram.fake.sent_to(CHAT)
    [upload] = telegram.fake.uploads
    assert upload.filename == "shopping.md" and draft.message_id < upload.message_id \
        < rest.message_id
    shown = telegram.fake.text_of(CHAT, draft.message_id)
    assert final.startswith(shown) and final.endswith(rest.text)  # the answer, in two
    parts = await parts_of(gateway, f"{CHAT}:{message['message_id']}")
    assert [(p["idx"], p["status"], p["file"] is not None) for p in parts] == [
        (0, "sent", False), (1, "sent", True), (2, "sent", False)]
    assert parts[0]["platform_id"] == f"{CHAT}:{draft.message_id}"
    assert parts[0]["text"] == shown and parts[2]["text"] == rest.text
    out = await gateway.store.db.fetchone("SELECT text, status FROM messages WHERE "
                                          "direction='out'")
    assert (out["text"], out["status"]) == (final, "sent")
