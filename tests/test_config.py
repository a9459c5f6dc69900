"""Bad config: an error naming file, line and field; the rest of the app still starts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from pyclaw_app.config import ChannelEntry, load_config, save_config
from pyclaw_app.control.chat import ask
from pyclaw_app.model import ChannelState
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI

BAD = """\
agent:
  history_tokens: 50
providers:
  - name: fake
    model: fake-model
    tempreature: 0.3
channels:
  local:
    type: local
  chat2:
    type: local
    max_text: lots
  mystery:
    type: carrier-pigeon
"""


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(BAD)
    cfg = load_config(path)
    messages = sorted(str(e) for e in cfg.errors)
    assert f"{path}:2 [agent.history_tokens]: Input should be greater than or equal to 200" \
        in messages
    assert f"{path}:6 [providers.0.tempreature]: unknown field" in messages
    assert any(m.startswith(f"{path}:12 [channels.chat2.max_text]: Input should be a valid "
                            "integer") for m in messages)
    unknown = next(m for m in messages if "carrier-pigeon" in m)
    assert unknown.startswith(f"{path}:14 [channels.mystery.type]: unknown channel type")
    assert "known types:" in unknown and "local" in unknown and "telegram" in unknown
    # the valid parts survive
    assert cfg.channels["local"].config is not None
    assert cfg.channels["chat2"].config is None and cfg.channels["mystery"].config is None
    assert cfg.agent.history_tokens == 4000  # the invalid section falls back to defaults


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("channels:\n  local:\n    type: local\n   bad indent: [\n")
    cfg = load_config(path)
    assert len(cfg.errors) == 1
    assert str(cfg.errors[0]).startswith(f"{path}:4") and "not valid YAML" in str(cfg.errors[0])
    assert list(cfg.channels) == ["local"]  # the zero-token default still works


def test_missing_file_gives_working_defaults(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "nope.yaml")
    assert cfg.errors == [] and cfg.providers == []
    assert list(cfg.channels) == ["local"]


async def test_app_starts_with_bad_parts_disabled(tmp_path: Path, fake_llm: FakeOpenAI,
                                                  make_gateway) -> None:
    doc = yaml.safe_load(BAD)
    doc["providers"] = [provider_section(fake_llm)]
    gateway = await make_gateway(doc)
    assert gateway.channels["local"].state == ChannelState.ONLINE
    assert gateway.channels["chat2"].state == ChannelState.OFFLINE
    assert "max_text" in gateway.channels["chat2"].reason
    assert "known types" in gateway.channels["mystery"].reason
    reply = await ask(gateway, "still works?", timeout=10)
    assert reply == "Echo: still works?"


def test_secrets_come_from_store_or_env_and_never_go_to_yaml(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = FileSecretStore(tmp_path / "secrets.json")
    secrets.set("providers.main.api_key", "sk-from-keyring-0123456789abcdef")
    path = tmp_path / "pyclaw.yaml"
    path.write_text("providers:\n  - name: main\n    model: m\n  - name: other\n    model: m\n")
    monkeypatch.setenv("PYCLAW_OTHER_API_KEY", "sk-from-env-0123456789abcdef")
    cfg = load_config(path, secrets)
    keys = {p.name: p.api_key.get_secret_value() for p in cfg.providers if p.api_key}
    assert keys == {"main": "sk-from-keyring-0123456789abcdef",
                    "other": "sk-from-env-0123456789abcdef"}
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600

    cfg.channels["second"] = ChannelEntry("second", "local", cfg.channels["local"].config)
    save_config(cfg, secrets)
    written = path.read_text()
    assert "sk-from" not in written and "api_key" not in written
    reloaded = load_config(path, secrets)
    assert set(reloaded.channels) == {"local", "second"}
    assert reloaded.errors == []


@pytest.mark.parametrize(("old", "expected"), [
    ({"group_mode": "mention"}, "reply"), ({"group_mode": "all"}, "all"),
    ({"guild_mode": "all"}, "all"), ({"require_mention": True}, "reply"),
    ({"require_mention": False}, "all"), ({}, "reply"), ({"group_reply": "mention"}, "mention"),
])
def test_the_old_group_keys_still_read_as_group_reply(old: dict[str, object],
                                                      expected: str) -> None:
    from pyclaw_app.channels import ChannelConfig

    assert ChannelConfig.model_validate(old).group_reply == expected


def test_a_bad_old_group_key_value_is_an_error_naming_the_new_key() -> None:
    from pydantic import ValidationError

    from pyclaw_app.channels import ChannelConfig

    with pytest.raises(ValidationError, match="group_reply"):
        ChannelConfig.model_validate({"group_mode": "sometimes"})
