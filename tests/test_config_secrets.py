"""Secrets outside the secret store: written into the YAML, or given by the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

import cli
from pyclaw_app.config import load_config
from pyclaw_app.secrets import FileSecretStore, redactor


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(text, "utf-8")
    return path


def test_a_secret_in_the_yaml_works_but_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  tg:\n    type: telegram\n"
                 "    token: 123456:yaml-written-token-value\n")
    cfg = load_config(path, FileSecretStore(tmp_path / "s.json"))
    assert not cfg.errors
    assert cfg.channels["tg"].config is not None  # still works
    assert [str(w) for w in cfg.warnings] == [
        f"{path}:4 [channels.tg.token]: a secret is written in the config file, which is not "
        "private: store it with `pyclaw secret set channels.tg.token` and delete it from the "
        "file"]
    assert "yaml-written-token-value" not in redactor("sent with 123456:yaml-written-token-value")


def test_a_provider_key_in_the_yaml_is_reported_too(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  - name: main\n    model: m\n"
                 "    api_key: plain-yaml-provider-key\n")
    cfg = load_config(path, None)
    assert [w.where for w in cfg.warnings] == [f"{path}:4 [providers.main.api_key]"]


def test_pyclaw_check_prints_the_warning(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "channels:\n  tg:\n    type: telegram\n    token: 1:abcdefgh\n")
    assert cli._check(path, tmp_path / "data") == 0
    assert "warning: " in capsys.readouterr().out


def test_a_secret_from_the_environment_is_redacted_from_logs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCLAW_TG_TOKEN", "env-given-secret-token-42")
    path = write(tmp_path, "channels:\n  tg:\n    type: telegram\n")
    cfg = load_config(path, FileSecretStore(tmp_path / "s.json"))
    assert cfg.channels["tg"].config.token.get_secret_value() == "env-given-secret-token-42"
    assert "env-given-secret-token-42" not in redactor("failed with env-given-secret-token-42")
    assert not cfg.warnings
