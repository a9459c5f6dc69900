"""`pyclaw check` names what each channel type cannot run without, before a start fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cli
from pyclaw_app.channels import registry
from pyclaw_app.secrets import open_secret_store

NOTHING_REQUIRED = {
    "local": "the app's own chat window needs no account",
    "openai_api": "clients bring keys issued with `pyclaw api-key`, kept in the database",
}


def check(tmp_path: Path, section: str) -> int:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(f"channels:\n  mine:\n{section}", "utf-8")
    return cli._check(config, tmp_path / "data")


@pytest.mark.parametrize("type_name", sorted(registry.specs()))
def test_a_channel_section_with_only_its_type_is_reported_with_the_missing_field(
        type_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = check(tmp_path, f"    type: {type_name}\n")
    out = capsys.readouterr().out
    if type_name in NOTHING_REQUIRED:
        assert code == 0, out
        return
    assert code == 1, out
    missing = re.findall(r"\[channels\.mine\.(\w+)\]", out)
    assert missing, out
    fields = registry.get_spec(type_name).config_model.model_fields
    assert set(missing) <= set(fields), out


def test_a_stored_secret_satisfies_the_check(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = check(tmp_path, "    type: discord\n")
    assert code == 1
    assert "`pyclaw secret set channels.mine.token`" in capsys.readouterr().out
    open_secret_store(tmp_path / "data").set("channels.mine.token", "a-bot-token")
    code = check(tmp_path, "    type: discord\n")
    assert code == 0, capsys.readouterr().out


def test_a_secret_one_mode_needs_is_required_in_that_mode_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    open_secret_store(tmp_path / "data").set("channels.mine.bot_token", "xoxb-1")
    check(tmp_path, "    type: slack\n    mode: events\n")
    out = capsys.readouterr().out
    assert "[channels.mine.signing_secret]" in out and "app_token" not in out
    check(tmp_path, "    type: slack\n")
    out = capsys.readouterr().out
    assert "[channels.mine.app_token]" in out and "signing_secret" not in out
