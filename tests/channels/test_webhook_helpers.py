"""The kit's webhook checks: HMAC in constant time over the raw body, replay windows."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyclaw_app.channels import (
    WebhookRejected,
    WebhookRequest,
    fresh_timestamp,
    same_secret,
    verify_hmac,
)

# GitHub's documented example for X-Hub-Signature-256 (the scheme Meta's WhatsApp and
# Messenger webhooks use too): secret, payload and the signature the docs print.
DOC_SECRET = "It's a Secret to Everybody"
DOC_PAYLOAD = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_the_published_example_signature_verifies() -> None:
    assert verify_hmac(DOC_SECRET, DOC_PAYLOAD, DOC_SIGNATURE, prefix="sha256=")
    assert not verify_hmac(DOC_SECRET, DOC_PAYLOAD + b" ", DOC_SIGNATURE, prefix="sha256=")
    assert not verify_hmac("another secret", DOC_PAYLOAD, DOC_SIGNATURE, prefix="sha256=")
    assert not verify_hmac(DOC_SECRET, DOC_PAYLOAD, DOC_SIGNATURE[7:], prefix="sha256=")


@given(st.binary(max_size=512), st.text(min_size=1, max_size=40))
def test_base64_signatures_round_trip_and_reject_any_change(body: bytes, secret: str) -> None:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    good = base64.b64encode(digest).decode()
    assert verify_hmac(secret, body, good, encoding="base64")
    flipped = base64.b64encode(bytes([digest[0] ^ 1]) + digest[1:]).decode()
    assert not verify_hmac(secret, body, flipped, encoding="base64")


@given(st.one_of(st.none(), st.text(max_size=80)))
def test_missing_or_garbage_signatures_are_refused_not_raised(signature: str | None) -> None:
    assert not verify_hmac("secret", b"{}", signature, prefix="v0=")


def test_an_empty_secret_never_verifies() -> None:
    empty = hmac.new(b"", b"x", hashlib.sha256).hexdigest()
    assert not verify_hmac("", b"x", empty)
    assert not same_secret("", "")
    assert same_secret("abc", "abc") and not same_secret("abc", "abd")
    assert not same_secret(None, "abc")


def test_timestamps_outside_the_window_are_replays() -> None:
    now = 1_700_000_000.0
    assert fresh_timestamp(str(int(now) - 299), now=now)
    assert not fresh_timestamp(str(int(now) - 301), now=now)
    assert not fresh_timestamp(str(int(now) + 400), now=now)
    assert not fresh_timestamp("soon", now=now)
    assert not fresh_timestamp(None, now=now)


def test_headers_are_case_insensitive_and_bad_json_is_a_400() -> None:
    request = WebhookRequest("POST", b"{not json", {"X-Line-Signature": "abc"})
    assert request.header("x-line-signature") == "abc"
    try:
        request.json()
    except WebhookRejected as exc:
        assert exc.status == 400
    else:
        raise AssertionError("bad JSON was accepted")


def test_a_body_nested_too_deeply_is_a_400_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(WebhookRejected) as refused:
        WebhookRequest("POST", deep).json()
    assert refused.value.status == 400 and "too deeply" in refused.value.message
