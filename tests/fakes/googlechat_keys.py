"""Keys for the fake Google: an RSA key with a self-signed x509 certificate per signer.

Google publishes its token-signing certificates as ``{key id: PEM x509 certificate}``
(``/service_accounts/v1/metadata/x509/<account>`` and ``/oauth2/v1/certs``), and a service
account key is a JSON file with a PKCS#8 PEM ``private_key``. Generating RSA keys takes a
noticeable fraction of a second, so each is made once per test run.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["SigningKey", "signing_key"]


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    certificate_pem: str
    public_pem: str


@functools.cache
def signing_key(label: str) -> SigningKey:
    """The key called ``label`` (one per signer: Google Chat, Google's ID tokens, a service
    account, an impostor), with a certificate valid around now."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256()))
    return SigningKey(
        kid=hashlib.sha1(label.encode()).hexdigest(),
        private_pem=key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode(),
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        public_pem=key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode())
