"""Small, valid audio files made deterministically, for the fake ``/audio/speech``.

Each format is built from its published layout, so a real player (and pyclaw's sniffer)
takes it: RIFF/WAVE with 16-bit PCM, raw PCM (24 kHz, 16-bit, mono, as the OpenAI
reference says ``pcm`` is), Ogg/Opus (RFC 7845: an ``OpusHead`` page, an ``OpusTags``
page, then 20 ms silence packets, RFC 6716's code-0 CELT frame ``f8 ff fe``; pages carry
the Ogg CRC of RFC 3533), MPEG-1 Layer III frames of silence (128 kbit/s, 44.1 kHz,
mono: 417 bytes each), FLAC (``fLaC`` and a STREAMINFO block, no frames) and AAC in
ADTS frames. The tone (or length) follows from the text, so the same text gives the same
bytes and different texts differ.
"""

from __future__ import annotations

import hashlib
import math
import struct

__all__ = ["CONTENT_TYPES", "speech_audio"]

RATE = 24_000
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac",
                 "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}
_OPUS_SILENCE = b"\xf8\xff\xfe"
_PRE_SKIP = 312


def speech_audio(text: str, fmt: str) -> bytes:
    """``text`` "spoken" as ``fmt`` (one of CONTENT_TYPES)."""
    digest = hashlib.sha256(text.encode()).digest()
    frames = 5 + digest[0] % 5  # 100-180 ms
    return {"pcm": lambda: _pcm(digest, frames), "wav": lambda: _wav(_pcm(digest, frames)),
            "opus": lambda: _opus(digest, frames), "mp3": lambda: _mp3(frames),
            "flac": _flac, "aac": lambda: _aac(frames)}[fmt]()


def _pcm(digest: bytes, frames: int) -> bytes:
    tone = 200 + digest[1] * 4
    count = RATE * frames // 50
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * tone * i / RATE)))
                    for i in range(count))


def _wav(pcm: bytes) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm)


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_page(packets: list[bytes], serial: int, sequence: int, granule: int,
              flags: int) -> bytes:
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    header = (b"OggS" + bytes([0, flags]) + struct.pack("<qIII", granule, serial, sequence, 0)
              + bytes([len(lacing)]) + bytes(lacing))
    page = header + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def _opus(digest: bytes, frames: int) -> bytes:
    serial = int.from_bytes(digest[:4], "little")
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, _PRE_SKIP, RATE, 0, 0)
    vendor = b"pyclaw fake speech"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    granule = _PRE_SKIP + frames * 960  # 20 ms at Opus's 48 kHz clock
    return (_ogg_page([head], serial, 0, 0, 0x02) + _ogg_page([tags], serial, 1, 0, 0)
            + _ogg_page([_OPUS_SILENCE] * frames, serial, 2, granule, 0x04))


def _mp3(frames: int) -> bytes:
    header = b"\xff\xfb\x90\xc4"  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono, original
    return (header + bytes(417 - len(header))) * frames


def _flac() -> bytes:
    info = struct.pack(">HH", 4096, 4096) + bytes(6)  # block sizes; frame sizes unknown
    packed = (RATE << 44) | (0 << 41) | (15 << 36)  # rate, channels - 1, bits - 1, 0 samples
    info += packed.to_bytes(8, "big") + bytes(16)  # no MD5
    return b"fLaC" + bytes([0x80, 0, 0, len(info)]) + info


def _aac(frames: int) -> bytes:
    payload = b"\x21\x10\x04\x60\x8c\x1c"  # one silent single-channel element
    length = 7 + len(payload)
    # ADTS: sync, MPEG-4, no CRC; AAC LC, 24 kHz (index 6), one channel; frame length.
    header = bytes([0xFF, 0xF1, (1 << 6) | (6 << 2), (1 << 6) | (length >> 11),
                    (length >> 3) & 0xFF, ((length & 7) << 5) | 0x1F, 0xFC])
    return (header + payload) * frames
