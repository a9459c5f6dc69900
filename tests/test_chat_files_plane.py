"""The files the assistant sent in the local chat, through the control plane: listed beside
the chat's history (what they are, never where they are stored), handed over by reply and
part with the rights of chat history, only for that chat and only up to the size cap; in
process and over the control API with the read-only monitor token.

The model is the OpenAI fake calling the real ``send_file`` tool; a picture after the
text goes out the way a voice reply does (the gateway's delivery, as ``turn`` sends it).
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from pyclaw_app.channels.contract import OutboundFile
from pyclaw_app.control.api import to_json
from pyclaw_app.control.chat import ask
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.remote import RemoteControlPlane, RemoteError
from pyclaw_app.control.rights import MONITOR_TOKEN_KEY
from pyclaw_app.control.types import CHAT_FILE_LIMIT, ChatFile
from pyclaw_app.gateway import Gateway
from pyclaw_app.gateway.delivery import Custody
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI, FakeReply, FakeToolCall

WAIT = 20.0
NOTES = "# Shopping\n\n- milk\n- bread\n"


def png(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real PNG (one colour), as the PNG spec lays it out: signature, IHDR, IDAT, IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def writes_notes(messages: list[dict[str, object]]) -> str | FakeReply:
    """A model that puts the list in a file first, then answers."""
    if not any(m.get("role") == "tool" for m in messages):
        return FakeReply(tool_calls=[FakeToolCall("send_file", {
            "name": "shopping.md", "content": NOTES, "caption": "your list"})])
    return "Here is your list."


@pytest.fixture
async def host(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[GatewayHost]:
    fake_llm.responder = writes_notes
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)]}))
    running = await GatewayHost.start(config, tmp_path / "data")
    yield running
    await running.stop()


@pytest.fixture
async def monitor(host: GatewayHost) -> AsyncIterator[RemoteControlPlane]:
    """The phone's plane, with the read-only token: it may read what chat history may."""
    assert host.server is not None
    token = host.runtime.secrets.get(MONITOR_TOKEN_KEY)
    assert token
    plane = await RemoteControlPlane(host.server.url, token).connect()
    yield plane
    await plane.close()


async def picture_after(gateway: Gateway, reply_id: int, data: bytes) -> None:
    """Send a picture as the next part of an answered reply (as a voice reply goes)."""
    row = await gateway.store.journal.get(reply_id)
    assert row is not None and row.reply_to is not None
    inbound = await gateway.store.journal.get(row.reply_to)
    assert inbound is not None
    parts = await gateway.store.journal.parts(reply_id)
    await gateway.delivery.send_file(
        gateway.attachments.outbound, Custody(reply_id, max(p.idx for p in parts) + 1),
        inbound.id, inbound.address,
        OutboundFile(name="chart.png", mime="image/png", kind="image", data=data), None)


async def test_sent_files_are_listed_in_order_and_handed_over(host: GatewayHost) -> None:
    plane, gateway = host.plane, host.runtime.gateway
    assert await ask(gateway, "put my list in a file", chat="app", timeout=WAIT) \
        == "Here is your list."
    history = await plane.chat_history()
    question, answer = history
    [notes] = await plane.chat_files()
    assert notes == ChatFile(reply_id=answer.id, idx=0, reply_to_id=question.id,
                             name="shopping.md", mime="text/markdown", kind="file",
                             size=len(NOTES.encode()), ts=answer.ts, before_text=True,
                             caption="your list", status="sent")
    content = await plane.chat_file(answer.id, 0)
    assert (content.name, content.mime, content.size) == ("shopping.md", "text/markdown",
                                                          len(NOTES.encode()))
    assert base64.b64decode(content.data) == NOTES.encode()

    picture = png()
    await picture_after(gateway, answer.id, picture)
    files = await plane.chat_files()
    assert [(f.name, f.kind, f.idx, f.before_text, f.size) for f in files] == [
        ("shopping.md", "file", 0, True, len(NOTES.encode())),
        ("chart.png", "image", 2, False, len(picture))]
    assert base64.b64decode((await plane.chat_file(answer.id, 2)).data) == picture
    # what they are, never where: no stored path reaches a view
    assert "attachments" not in json.dumps(to_json(files))

    await plane.chat_reset()
    assert await plane.chat_files() == []


async def test_the_monitor_token_reads_them_like_chat_history(
        host: GatewayHost, monitor: RemoteControlPlane) -> None:
    await ask(host.runtime.gateway, "put my list in a file", chat="app", timeout=WAIT)
    [notes] = await monitor.chat_files()
    assert (notes.name, notes.kind, notes.size) == ("shopping.md", "file", len(NOTES.encode()))
    assert notes == (await host.plane.chat_files())[0]
    content = await monitor.chat_file(notes.reply_id, notes.idx)
    assert base64.b64decode(content.data) == NOTES.encode()
    with pytest.raises(RemoteError, match="has no file part 7"):
        await monitor.chat_file(notes.reply_id, 7)
    with pytest.raises(RemoteError, match="needs the admin token"):
        await monitor.chat_send("the phone may not talk")


@pytest.mark.parametrize(("damage", "listed_size", "error"), [
    ("remove", -1, "no longer stored"),
    ("grow", CHAT_FILE_LIMIT + 1, "more than the"),
])
async def test_a_file_gone_or_too_large_is_listed_and_refused_with_the_reason(
        host: GatewayHost, damage: str, listed_size: int, error: str) -> None:
    plane, gateway = host.plane, host.runtime.gateway
    await ask(gateway, "put my list in a file", chat="app", timeout=WAIT)
    [sent] = gateway.channels["local"].connector.files
    assert sent.file.path is not None
    if damage == "remove":
        sent.file.path.unlink()
    else:
        sent.file.path.write_bytes(b"x" * (CHAT_FILE_LIMIT + 1))
    [listed] = await plane.chat_files()
    assert listed.size == listed_size
    with pytest.raises(ValueError, match=error):
        await plane.chat_file(listed.reply_id, listed.idx)


async def test_a_file_of_another_chat_is_not_handed_over(host: GatewayHost) -> None:
    plane, gateway = host.plane, host.runtime.gateway
    await ask(gateway, "put my list in a file", chat="terminal", timeout=WAIT)
    assert await plane.chat_files() == []
    [elsewhere] = await plane.chat_files(chat="terminal")
    with pytest.raises(ValueError, match="not a reply in this chat"):
        await plane.chat_file(elsewhere.reply_id, elsewhere.idx)
    question = (await plane.chat_history(chat="terminal"))[0]
    with pytest.raises(ValueError, match="not a reply in this chat"):
        await plane.chat_file(question.id, 0, chat="terminal")  # a question is no reply
    mine = await plane.chat_file(elsewhere.reply_id, elsewhere.idx, chat="terminal")
    assert base64.b64decode(mine.data) == NOTES.encode()
