"""The attachment pipeline's parts on their own: type sniffing, documents, the files and
their retention, and what the providers make of pictures."""

from __future__ import annotations

import base64
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.agent.providers import ChatMessage
from pyclaw_app.agent.providers.anthropic import to_anthropic_messages
from pyclaw_app.agent.providers.openai_compat import to_openai_messages
from pyclaw_app.attachments import (
    AttachmentFiles,
    AttachmentPipeline,
    AttachmentsConfig,
    AttachmentSweeper,
    ImageInput,
    PreparedMedia,
    checked_type,
)
from pyclaw_app.attachments.documents import DocumentError, pdf_text, plain_text
from pyclaw_app.attachments.download import DownloadFailed, TooBig, download
from pyclaw_app.attachments.sniff import is_text, sniff
from pyclaw_app.channels.contract import (
    AttachmentSource,
    AttachmentUnavailable,
    ChannelConfig,
    Connector,
    ConnectorSpec,
)
from pyclaw_app.config import Config, ProviderConfig, RetentionConfig, load_config
from pyclaw_app.model import Address, Attachment, Inbound
from pyclaw_app.store import Store
from pyclaw_app.store.retention import Pruner

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(
    range(256)) * 2 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(32)
OGG = b"OggS\x00\x02" + bytes(20) + b"OpusHead" + bytes(100)
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(80)
DAY = 86_400.0


def make_pdf(pages: list[str]) -> bytes:
    """A small valid PDF with one line of Helvetica text per page (built by hand, so the
    tests need no PDF writer)."""
    n = len(pages)
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>",
                            ("<< /Type /Pages /Kids [" + " ".join(
                                f"{3 + 2 * i} 0 R" for i in range(n))
                             + f"] /Count {n} >>").encode()]
    font = 3 + 2 * n
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append((f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents "
                        f"{4 + 2 * i} 0 R /Resources << /Font << /F1 {font} 0 R >> >> >>"
                        ).encode())
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream
                       + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            ).encode()
    return bytes(out)


# ---- what a file is -----------------------------------------------------------------------

@pytest.mark.parametrize(("head", "mime"), [
    (JPEG, "image/jpeg"), (PNG, "image/png"), (b"GIF89a\x01\x00", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
    (OGG, "audio/ogg"), (b"ID3\x04\x00", "audio/mpeg"), (b"\xff\xfb\x90\x64", "audio/mpeg"),
    (b"\x00\x00\x00\x20ftypM4A \x00", "audio/mp4"), (b"\x00\x00\x00\x20ftypisom", "video/mp4"),
    (b"\x1a\x45\xdf\xa3\x9f", "audio/webm"), (b"fLaC\x00", "audio/flac"),
    (b"#!AMR\n", "audio/amr"), (b"%PDF-1.7\n", "application/pdf"), (ZIP, "application/zip"),
    (b"hello", None), (b"", None)])
def test_the_first_bytes_decide_the_type(head: bytes, mime: str | None) -> None:
    assert sniff(head) == mime


@given(st.binary(max_size=200))
def test_sniffing_never_fails_on_any_bytes(data: bytes) -> None:
    sniff(data)
    is_text(data)


@given(st.binary(max_size=300), st.sampled_from(["image", "audio", "file", "video"]),
       st.sampled_from(["", "image/jpeg", "audio/ogg", "application/pdf", "text/plain",
                        "application/octet-stream", "text/markdown"]))
def test_the_type_check_answers_a_readable_type_or_says_why_not(data: bytes, kind: str,
                                                                mime: str) -> None:
    try:
        found = checked_type(Attachment(kind, mime=mime), data)
    except DownloadFailed as exc:
        assert exc.permanent and str(exc)
    else:
        assert found in ("image/jpeg", "image/png", "image/gif", "image/webp", "text/plain",
                         "application/pdf") or found.startswith("audio/")


def test_text_is_told_from_binary() -> None:
    assert is_text("Grüße, 日本語 and tabs\tand lines\n".encode())
    assert is_text(("é" * 5000).encode()[:8191])  # a character cut by the sample's end
    assert not is_text(b"abc\x00def")
    assert not is_text(bytes(range(1, 32)) * 10)


@pytest.mark.parametrize(("kind", "mime", "data", "says"), [
    ("image", "image/jpeg", ZIP, "it was sent as image/jpeg but its content is a ZIP archive"),
    ("audio", "audio/ogg", JPEG, "it was sent as audio/ogg but its content is a JPEG picture"),
    ("file", "application/pdf", b"plain words", "sent as application/pdf but its content is text"),
    ("file", "text/plain", JPEG[:100] + b"\x00", "sent as text/plain but its content is a JPEG"),
    ("file", "application/octet-stream", ZIP, "it is a ZIP archive; pyclaw reads pictures"),
])
def test_a_claim_the_bytes_contradict_is_refused(kind: str, mime: str, data: bytes,
                                                says: str) -> None:
    with pytest.raises(DownloadFailed, match=says.replace("(", r"\(")):
        checked_type(Attachment(kind, name="x", mime=mime), data)


def test_a_picture_sent_as_a_file_is_still_a_picture() -> None:
    assert checked_type(Attachment("file", mime="application/octet-stream"), PNG) == "image/png"
    assert checked_type(Attachment("file", mime="text/markdown"), b"# hi\n") == "text/plain"


# ---- documents ----------------------------------------------------------------------------

def test_a_long_text_is_cut_at_a_line_within_the_budget_and_says_so() -> None:
    text = "\n".join(f"line {i} of the notes" for i in range(500)).encode()
    read = plain_text("notes.txt", text, 100)
    assert read.startswith("[the user sent the document notes.txt; its text follows]\nline 0")
    assert read.endswith("[... the rest of notes.txt was left out: it is longer than the 100 "
                         "tokens a document may take]")
    body = read.split("\n")[1:-1]
    assert body == [f"line {i} of the notes" for i in range(len(body))]  # whole lines only
    assert 300 < sum(len(line) + 1 for line in body) <= 400


def test_a_pdf_is_read_page_by_page_until_the_budget_is_spent() -> None:
    pdf = make_pdf(["First page words", "Second page words", "Third page words"])
    whole = pdf_text("a.pdf", pdf, 1000)
    assert "First page words" in whole and "Third page words" in whole
    assert "left out" not in whole
    part = pdf_text("a.pdf", pdf, 20)
    assert "First page words" in part and "Third page words" not in part
    assert part.endswith("it is longer than the 20 tokens a document may take]")


@pytest.mark.parametrize(("data", "says"), [
    (b"%PDF-1.4\n garbage", "not a PDF pypdf can read"),
    (make_pdf([""]), "no text layer"),
])
def test_an_unreadable_pdf_says_why(data: bytes, says: str) -> None:
    with pytest.raises(DocumentError, match=says):
        pdf_text("bad.pdf", data, 1000)


# ---- the files and their retention ------------------------------------------------------

async def test_files_are_private_and_retention_removes_old_ones_but_keeps_the_rows(
        tmp_path: Path) -> None:
    store = await Store(tmp_path).open()
    try:
        await store.db.execute(
            "INSERT INTO messages (id, direction, channel, chat, conv, text, status,"
            " created_at, updated_at) VALUES (1, 'in', 'tg', 'c', 'k', '', 'replied', 0, 0),"
            " (2, 'in', 'tg', 'c', 'k', '', 'replied', 0, 0)")
        now = [1_000_000.0]
        files = AttachmentFiles(store.db, tmp_path / "attachments", clock=lambda: now[0])
        old = files.write("weird/../name", 1, 0, "image/jpeg", JPEG)
        assert old == "weird_.._name/1-0.jpg"  # the channel's name cannot climb out
        await files.record(1, 0, "tg", "audio", "a.ogg", "audio/ogg", 3, path=old,
                           transcript="hello")
        now[0] += 20 * DAY
        new = files.write("tg", 2, 0, "image/png", PNG)
        await files.record(2, 0, "tg", "image", "", "image/png", len(PNG), path=new)
        path = tmp_path / "attachments" / new
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

        config = Config(path=None, retention=RetentionConfig.model_validate(
            {"attachments": {"days": 10}}))
        sweeper = AttachmentSweeper(lambda: config, files)
        pruner = Pruner(store.db, lambda: config.retention, clock=lambda: now[0],
                        sweepers=[sweeper])
        removed = await pruner.prune(config.retention)
        assert removed["attachment files"] == 1
        assert not (tmp_path / "attachments" / old).exists() and path.exists()
        rows = await files.rows([1, 2])
        assert rows[(1, 0)].path is None and rows[(1, 0)].removed_at == now[0]
        assert rows[(1, 0)].transcript == "hello"  # what it said outlives the file
        assert rows[(2, 0)].path == new
        assert files.read(old) is None

        config.retention.attachments.days = None  # kept for ever
        now[0] += 100 * DAY
        assert await sweeper.sweep(now[0]) == 0 and path.exists()
    finally:
        await store.close()


# ---- providers -----------------------------------------------------------------------------

PICTURE = ImageInput("image/png", PNG, "chart.png")


def test_openai_gets_image_url_parts_or_the_note() -> None:
    message = ChatMessage("user", "look", images=(PICTURE,))
    [seen] = to_openai_messages([message], vision=True)
    assert seen["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url",
         "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}]
    [blind] = to_openai_messages([message], vision=False)
    assert blind["content"] == f"look\n[the user sent a picture: chart.png, {len(PNG)} bytes]"


def test_anthropic_gets_base64_image_blocks_before_the_text_or_the_note() -> None:
    message = ChatMessage("user", "look", images=(PICTURE,))
    [seen] = to_anthropic_messages([message], vision=True)
    assert seen["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(PNG).decode()}},
        {"type": "text", "text": "look"}]
    [blind] = to_anthropic_messages([ChatMessage("user", "", images=(PICTURE,))],
                                    vision=False)
    assert blind["content"] == [{"type": "text", "text": PICTURE.note}]


@pytest.mark.parametrize(("kind", "model", "vision", "takes"), [
    ("openai", "gpt-4o-mini", None, True), ("openai", "gpt-3.5-turbo", None, False),
    ("openai", "llava:13b", None, True), ("openai", "llama3.1:8b", None, False),
    ("openai", "qwen2.5vl:7b", None, True), ("anthropic", "claude-x", None, True),
    ("openai", "my-finetune", True, True), ("anthropic", "claude-x", False, False)])
def test_vision_is_guessed_from_the_model_unless_set(kind: str, model: str,
                                                     vision: bool | None, takes: bool) -> None:
    config = ProviderConfig(name="p", kind=kind, model=model, vision=vision)  # type: ignore[arg-type]
    assert config.takes_images() is takes


def test_the_attachments_section_is_read_and_a_bad_value_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text("attachments:\n  max_bytes: 5000000\n  voice:\n    base_url: "
                    "http://localhost:8000/v1\n    model: large-v3\nretention:\n"
                    "  attachments:\n    days: 3\n", "utf-8")
    config = load_config(path)
    assert config.errors == []
    assert config.attachments.max_bytes == 5_000_000
    assert config.attachments.voice.enabled and config.attachments.voice.model == "large-v3"
    assert config.retention.attachments.days == 3
    path.write_text("attachments:\n  max_bytes: -1\n", "utf-8")
    [error] = load_config(path).errors
    assert "attachments.max_bytes" in str(error) and ":2" in str(error)


# ---- the download ------------------------------------------------------------------------

@pytest.fixture
async def files_server() -> AsyncIterator[str]:
    """A server that streams without Content-Length, lies about it, or has nothing."""
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"x" * 1024)
        await resp.write_eof()
        return resp

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=JPEG)

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=502)

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/small", small)
    app.router.add_get("/gone", gone)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_size_cap_holds_while_streaming_whatever_the_platform_said(
        files_server: str) -> None:
    assert await download(AttachmentSource(url=f"{files_server}/small"), 10_000, 5) == JPEG
    with pytest.raises(TooBig, match="over the 4 KB limit"):  # no Content-Length, 10 KB come
        await download(AttachmentSource(url=f"{files_server}/stream", size=100), 4096, 5)
    with pytest.raises(TooBig, match=r"it is 9\.8 KB, over the 4 KB limit"):  # said up front
        await download(AttachmentSource(url=f"{files_server}/stream", size=10_000), 4096, 5)
    with pytest.raises(TooBig):
        await download(AttachmentSource(data=bytes(5000)), 4096, 5)


@pytest.mark.parametrize(("path", "permanent", "says"), [
    ("/gone", True, "the file is no longer there on 127.0.0.1 (HTTP 404)"),
    ("/broken", False, "127.0.0.1 answered HTTP 502"),
])
async def test_a_failed_download_says_why_without_the_url(files_server: str, path: str,
                                                          permanent: bool, says: str) -> None:
    with pytest.raises(DownloadFailed) as caught:
        await download(AttachmentSource(url=f"{files_server}{path}?token=SECRET"), 4096, 5)
    assert str(caught.value) == says and caught.value.permanent is permanent
    assert "SECRET" not in repr(AttachmentSource(url="https://x/botSECRET/f"))


async def test_an_unreachable_host_and_a_strange_scheme_are_refused() -> None:
    with pytest.raises(DownloadFailed, match=r"127.0.0.1 could not be reached \(Client"):
        await download(AttachmentSource(url="http://127.0.0.1:9/f"), 4096, 5)
    with pytest.raises(DownloadFailed, match="does not fetch"):
        await download(AttachmentSource(url="file:///etc/passwd"), 4096, 5)


# ---- the pipeline without a platform -----------------------------------------------------

class _Files(Connector):
    """A channel whose attachments are bytes it already holds (``AttachmentSource.data``)."""

    spec = ConnectorSpec(name="memory", title="Memory", config_model=ChannelConfig)

    def __init__(self, held: dict[str, bytes]) -> None:
        super().__init__("memory", ChannelConfig())
        self.held = held
        self.fetched: list[str] = []

    async def start(self, ctx: Any) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def probe(self) -> Any:
        raise NotImplementedError

    async def send_part(self, address: Address, text: str, reply_to: str | None) -> str:
        raise NotImplementedError

    async def fetch_attachment(self, attachment: Attachment) -> AttachmentSource:
        self.fetched.append(attachment.platform_id or "")
        if attachment.platform_id not in self.held:
            raise AttachmentUnavailable("the platform deleted it")
        return AttachmentSource(data=self.held[attachment.platform_id or ""])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store(tmp_path).open()
    try:
        yield opened
    finally:
        await opened.close()


async def prepared(store: Store, config: Config, channel: _Files, *attachments: Attachment,
                   text: str = "") -> tuple[PreparedMedia, list[tuple[str, str]]]:
    inbound = Inbound(Address("memory", "c"), f"p{len(channel.fetched)}", text,
                      attachments=attachments)
    result = await store.journal.submit(inbound)
    pipeline = AttachmentPipeline(lambda: config, AttachmentFiles(
        store.db, store.data_dir / "attachments"), lambda name: channel)
    logs: list[tuple[str, str]] = []
    media, _ = await pipeline.prepare(inbound, result.journal_id, [],
                                      lambda level, line: logs.append((level, line)), 1000)
    return media, logs


async def test_what_pyclaw_does_not_read_is_described_not_downloaded(store: Store) -> None:
    channel = _Files({})
    media, _ = await prepared(store, Config(path=None), channel,
                              Attachment("location", name="52.5,13.4"),
                              Attachment("video", name="clip.mp4", size=3 * 2**20),
                              Attachment("sticker"))
    assert media.texts == ("[the user shared a location: 52.5,13.4]",
                           "[the user sent a video (clip.mp4, 3 MB); you cannot open it]",
                           "[the user sent a sticker; you cannot open it]")
    assert channel.fetched == [] and not media.problems

    off = Config(path=None, attachments=AttachmentsConfig(enabled=False))
    media, _ = await prepared(store, off, channel, Attachment("image", platform_id="a"))
    assert media.texts == ("[the user sent a picture; you cannot open it]",)
    assert channel.fetched == []


async def test_without_transcription_a_voice_note_is_explained(store: Store) -> None:
    channel = _Files({"v": OGG})
    media, _ = await prepared(store, Config(path=None), channel,
                              Attachment("audio", platform_id="v"))
    assert media.nothing_to_answer("")
    assert media.notice == ("I could not read what you sent: the voice note: voice notes are "
                            "not transcribed here (the owner has not set up transcription).")

    wrong = Config(path=None, attachments=AttachmentsConfig.model_validate(
        {"voice": {"provider": "nope"}}))
    media, logs = await prepared(store, wrong, channel, Attachment("audio", platform_id="v"))
    assert ("error", "attachments.voice.provider 'nope' is not a configured OpenAI-compatible "
            "provider; voice notes are not transcribed") in logs


async def test_several_problems_are_listed_and_the_readable_rest_still_used(
        store: Store) -> None:
    channel = _Files({"ok": PNG, "zip": ZIP})
    media, logs = await prepared(store, Config(path=None), channel,
                                 Attachment("image", name="a.png", platform_id="ok"),
                                 Attachment("file", name="b.zip", platform_id="zip"),
                                 Attachment("file", name="c.pdf", platform_id="gone"),
                                 text="here you go")
    assert [i.data for i in media.images] == [PNG]
    assert not media.nothing_to_answer("here you go")
    assert media.notice == (
        "I could not read everything you sent:\n"
        "- b.zip: it is a ZIP archive; pyclaw reads pictures, voice notes, PDF and text files\n"
        "- c.pdf: the platform deleted it")
    assert sum(level == "warning" for level, _ in logs) == 2


def test_a_picture_over_the_providers_limit_is_described_not_sent() -> None:
    big = ImageInput("image/png", PNG + bytes(5 * 1024 * 1024), "poster.png")
    message = ChatMessage("user", "see", images=(big, PICTURE))
    [anthropic] = to_anthropic_messages([message], vision=True)
    assert [b["type"] for b in anthropic["content"]] == ["image", "text"]  # chart.png only
    assert anthropic["content"][1]["text"] == f"see\n{big.note}"
    [openai] = to_openai_messages([message], vision=True)  # 20 MB there: both go
    assert [p["type"] for p in openai["content"]] == ["text", "image_url", "image_url"]


async def test_only_the_first_files_of_a_message_are_downloaded(store: Store) -> None:
    channel = _Files({str(i): PNG for i in range(6)})
    config = Config(path=None, attachments=AttachmentsConfig(max_files=2))
    media, _ = await prepared(store, config, channel,
                              *(Attachment("image", name=f"{i}.png", platform_id=str(i))
                                for i in range(4)), text="all of them")
    assert channel.fetched == ["0", "1"] and len(media.images) == 2
    assert media.problems == ("2.png: only the first 2 files of a message are read",
                              "3.png: only the first 2 files of a message are read")
