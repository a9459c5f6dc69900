"""Tencent's callback crypto, shared by WeChat Official Accounts and WeCom (企业微信) apps.

Both platforms sign a callback with ``sha1`` of the sorted, concatenated strings
(``token, timestamp, nonce`` for the plain signature; ``token, timestamp, nonce,
Encrypt`` for ``msg_signature``) and, in safe mode, wrap the message in one AES
envelope (``WXBizMsgCrypt`` in Tencent's samples, ``wechatpy.crypto`` in wechatpy):

* key: ``base64decode(EncodingAESKey + "=")``, 32 bytes (AES-256); IV: the key's first
  16 bytes; mode CBC;
* plaintext: 16 random bytes, the message's length as 4 bytes big-endian, the message,
  the receive id (the OA's AppID, the WeCom CorpID), PKCS#7-padded to a multiple of
  **32** bytes (not AES's 16);
* ``Encrypt``: the ciphertext in base64.

This module is the one place that knows it (``connectors.wecom`` imports it): an
envelope that does not open (bad base64, length, padding, or a receive id that is
not ours) is a :class:`CryptoError`, never a half-read message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["CryptoError", "Envelope", "signature", "signature_matches"]

BLOCK = 32
"""The padding block of Tencent's PKCS#7 (``PKCS7Encoder.block_size``)."""
_KEY_CHARS = 43
"""An EncodingAESKey is 43 base64 characters (32 bytes once ``=`` is added)."""


class CryptoError(ValueError):
    """An envelope that does not open, or a key that cannot be one; the message says which,
    never the plaintext."""


def signature(*parts: str) -> str:
    """Hex ``sha1`` of ``parts`` sorted and joined, as Tencent signs callbacks (sorted as bytes,
    like wechatpy's ``WeChatSigner``)."""
    return hashlib.sha1(b"".join(sorted(p.encode() for p in parts))).hexdigest()


def signature_matches(given: str | None, *parts: str) -> bool:
    """Does ``given`` equal ``signature(*parts)``? Constant time; a missing one is False."""
    if not given:
        return False
    return hmac.compare_digest(given.strip().lower().encode(), signature(*parts).encode())


class Envelope:
    """The AES envelope of one account: ``seal`` what we send, ``open`` what Tencent sent."""

    def __init__(self, encoding_aes_key: str, receive_id: str) -> None:
        key = encoding_aes_key.strip()
        if len(key) != _KEY_CHARS:
            raise CryptoError(f"an EncodingAESKey has {_KEY_CHARS} characters, this one "
                              f"{len(key)}")
        try:
            self._key = base64.b64decode(key + "=", validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("the EncodingAESKey is not base64 (letters and digits "
                              "only)") from None
        if len(self._key) != 32:  # pragma: no cover - 43 base64 chars are always 32 bytes
            raise CryptoError("the EncodingAESKey does not decode to 32 bytes")
        self.receive_id = receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def seal(self, message: bytes, *, random16: bytes | None = None) -> str:
        """``Encrypt`` for ``message``; ``random16`` only where a published vector fixes it."""
        prefix = os.urandom(16) if random16 is None else random16
        if len(prefix) != 16:
            raise CryptoError("the random prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def open(self, encrypted: str) -> bytes:
        """The message inside ``Encrypt``; CryptoError when it is not an envelope for us."""
        try:
            raw = base64.b64decode(encrypted.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("Encrypt is not base64") from None
        if not raw or len(raw) % BLOCK:
            raise CryptoError(f"Encrypt is {len(raw)} bytes, not a multiple of {BLOCK}")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding: the message was not sealed with this "
                              "EncodingAESKey")
        content = plain[16:-pad]
        if len(content) < 4:
            raise CryptoError("the envelope is too short")
        (length,) = struct.unpack(">I", content[:4])
        if 4 + length > len(content):
            raise CryptoError("the envelope's length field runs past its end")
        message, receive_id = content[4:4 + length], content[4 + length:]
        if receive_id != self.receive_id.encode():
            shown = receive_id[:40].decode("utf-8", "replace")
            raise CryptoError(f"the envelope is for {shown!r}, not {self.receive_id!r}")
        return message
