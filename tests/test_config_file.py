"""Saving from the app keeps the user's YAML (issue 18): comments, order and layout survive,
the previous file is kept as ``.bak``, and no noise keys are written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pyclaw_app.config import ChannelEntry, Config, load_config, save_config
from pyclaw_app.secrets import FileSecretStore

HAND_WRITTEN = """\
# My assistant. Ask Ann before changing the providers.
agent:
    system_prompt: You are terse.   # keep it short
    history_tokens: 4000            # the default, written out on purpose

providers:
    # the local one first: it is free
    -   name: local
        base_url: http://127.0.0.1:11434/v1
        model: llama3
    -   name: cloud
        model: gpt-4o-mini     # fallback

channels:
    # the chat in the app
    local:
        type: local
"""


def saved_after(tmp_path: Path, text: str,
                change: Callable[[Config], None] | None = None) -> tuple[str, Path]:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(text, "utf-8")
    secrets = FileSecretStore(tmp_path / "secrets.json")
    cfg = load_config(path, secrets)
    assert cfg.errors == []
    if change is not None:
        change(cfg)
    save_config(cfg, secrets)
    return path.read_text("utf-8"), path


def test_an_unchanged_config_is_left_byte_for_byte(tmp_path: Path) -> None:
    text, path = saved_after(tmp_path, HAND_WRITTEN)
    assert text == HAND_WRITTEN
    assert not path.with_name("pyclaw.yaml.bak").exists()  # nothing changed, nothing to back up


def test_a_change_keeps_comments_order_layout_and_spelled_out_defaults(tmp_path: Path) -> None:
    def change(cfg: Config) -> None:
        cfg.providers[1] = cfg.providers[1].model_copy(update={"model": "gpt-4.1-mini"})
        local = cfg.channels["local"]
        cfg.channels["side"] = ChannelEntry("side", "local", local.config)

    text, path = saved_after(tmp_path, HAND_WRITTEN, change)
    # the comment keeps its column
    assert text == HAND_WRITTEN.replace("model: gpt-4o-mini     # fallback",
                                        "model: gpt-4.1-mini    # fallback") + (
        "    side:\n        type: local\n")
    assert path.with_name("pyclaw.yaml.bak").read_text("utf-8") == HAND_WRITTEN
    assert "server" not in text and "allow_from" not in text and "retention" not in text


def test_a_value_set_back_to_its_default_leaves_the_file(tmp_path: Path) -> None:
    def change(cfg: Config) -> None:
        cfg.agent = cfg.agent.model_copy(update={"system_prompt": type(cfg.agent)().system_prompt})

    text, _ = saved_after(tmp_path, HAND_WRITTEN, change)
    assert "system_prompt" not in text and "keep it short" not in text
    assert "history_tokens: 4000            # the default, written out on purpose" in text


def test_reordered_providers_move_with_their_comments(tmp_path: Path) -> None:
    def change(cfg: Config) -> None:
        cfg.providers.reverse()

    text, path = saved_after(tmp_path, HAND_WRITTEN, change)
    assert text.index("name: cloud") < text.index("name: local")
    assert "model: gpt-4o-mini     # fallback" in text
    reloaded = load_config(path, FileSecretStore(tmp_path / "secrets.json"))
    assert [p.name for p in reloaded.providers] == ["cloud", "local"]


def test_a_secret_written_in_the_file_moves_to_the_secret_store(tmp_path: Path) -> None:
    text, _ = saved_after(tmp_path, HAND_WRITTEN.replace(
        "        model: gpt-4o-mini     # fallback\n",
        "        model: gpt-4o-mini     # fallback\n        api_key: sk-in-the-file-0123456789\n"))
    assert "api_key" not in text and "sk-in-the-file" not in text
    store = FileSecretStore(tmp_path / "secrets.json")
    assert store.get("providers.cloud.api_key") == "sk-in-the-file-0123456789"


def test_a_new_file_gets_no_empty_sections(tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    secrets = FileSecretStore(tmp_path / "secrets.json")
    cfg = load_config(path, secrets)
    cfg.channels["local"] = ChannelEntry("local", "local", cfg.channels["local"].config)
    save_config(cfg, secrets)
    assert path.read_text("utf-8") == "channels:\n  local:\n    type: local\n"
