import logging

import pytest

from pyclaw_app.secrets import RedactingFilter, redactor


def test_known_secret_and_token_shapes_are_redacted() -> None:
    redactor.add("my-very-private-value")
    text = ("token my-very-private-value, tg 123456789:AAHk0123456789abcdefghijABCDEFGHIJ_x, "
            "slack xoxb-1234-5678-abcdefgh, key sk-abcdefghijklmnop1234, "
            "Authorization: Bearer abc.def.ghi123456")
    cleaned = redactor(text)
    for leaked in ("my-very-private-value", "AAHk0123", "xoxb-1234", "sk-abcdef", "abc.def.ghi"):
        assert leaked not in cleaned
    assert cleaned.count("***") == 5


def test_log_records_and_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    caplog.handler.addFilter(RedactingFilter())
    try:
        raise RuntimeError("bad token 987654321:AAAbbbCCCdddEEEfffGGGhhhIIIjjjKKKl")
    except RuntimeError:
        logger.exception("call failed with %s", "xapp-1-A0123-secretvalue")
    text = caplog.text
    assert "xapp-1" not in text and "AAAbbb" not in text
    assert "RuntimeError" in text and "***" in text


def test_a_known_secret_inside_a_token_does_not_leave_the_tokens_rest() -> None:
    from pyclaw_app.secrets import Redactor

    fresh = Redactor()
    fresh.add("abcdefgh")  # e.g. a short test secret that happens to be part of a token
    cleaned = fresh("tg 123456789:AAHk0123456789abcdefghijABCDEFGHIJ_x and abcdefgh alone")
    assert "AAHk0123" not in cleaned and "ABCDEFGHIJ" not in cleaned
    assert cleaned == "tg *** and *** alone"
