from hypothesis import given, settings
from hypothesis import strategies as st

from pyclaw_app.channels import split_text, utf16_len


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=2, max_value=500))
@settings(max_examples=300)
def test_parts_fit_and_reassemble(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert "".join(parts) == text
    assert all(1 <= len(p) <= limit for p in parts) or parts == [""]


@given(st.text(min_size=1, max_size=2000), st.integers(min_value=4, max_value=300))
@settings(max_examples=200)
def test_utf16_limit_respected(text: str, limit: int) -> None:
    parts = split_text(text, limit, utf16_len)
    assert "".join(parts) == text
    assert all(utf16_len(p) <= limit for p in parts)


def test_prefers_paragraph_then_sentence_then_word() -> None:
    text = "First paragraph here.\n\nSecond one. It has two sentences."
    assert split_text(text, 40) == ["First paragraph here.\n\n",
                                    "Second one. It has two sentences."]
    assert split_text("One two. Three four five six", 12) == ["One two. ", "Three four ",
                                                             "five six"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_emoji_never_cut_in_half_for_utf16() -> None:
    text = "😀" * 10
    parts = split_text(text, 5, utf16_len)
    assert "".join(parts) == text
    assert all(utf16_len(p) <= 5 for p in parts)
