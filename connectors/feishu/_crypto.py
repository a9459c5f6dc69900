"""The webhook's security: Feishu's request signature and its AES event encryption.

With an Encrypt Key set in the console, Feishu posts ``{"encrypt": base64(iv + AES-256-CBC(
event))}`` with key = SHA-256(encrypt key), a random 16-byte IV in front and PKCS#7 padding,
and signs each request: ``X-Lark-Signature`` = hex SHA-256 of ``X-Lark-Request-Timestamp +
X-Lark-Request-Nonce + encrypt key + raw body`` (a plain hash, not an HMAC). Both as
lark-oapi implements them (``core/utils/decryptor.py``, ``event/dispatcher_handler.py``),
which the tests check against the SDK itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["DecryptError", "decrypt", "signature", "signature_matches"]

_BLOCK = 16


class DecryptError(ValueError):
    """The ciphertext is not one our Encrypt Key produced (wrong key, cut, not base64)."""


def _key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode()).digest()


def decrypt(encrypt_key: str, ciphertext: str) -> bytes:
    """The plaintext of an ``encrypt`` field; DecryptError for anything else."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("not base64") from None
    if len(raw) < 2 * _BLOCK or len(raw) % _BLOCK:
        raise DecryptError("not a whole number of AES blocks after the IV")
    decryptor = Cipher(algorithms.AES(_key(encrypt_key)), modes.CBC(raw[:_BLOCK])).decryptor()
    padded = decryptor.update(raw[_BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise DecryptError("bad padding (a different Encrypt Key?)") from None


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def signature_matches(given: str | None, timestamp: str, nonce: str, encrypt_key: str,
                      body: bytes) -> bool:
    """Compared in constant time; a missing signature is simply False."""
    if not given:
        return False
    expected = signature(timestamp, nonce, encrypt_key, body)
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())
