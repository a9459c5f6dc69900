"""The CLI as a user runs it: a real subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI

REPO = Path(__file__).resolve().parents[1]


async def run_cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args, cwd=REPO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("command", [[], ["gateway"], ["chat"], ["check"], ["secret"]])
async def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = await run_cli(*command, "--help")
    assert code == 0 and "usage: pyclaw" in out and "--config" in out


async def test_chat_one_shot_against_a_provider(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"providers": [provider_section(fake_llm)]}))
    code, out, err = await run_cli("chat", "--config", str(config), "--data-dir",
                                   str(tmp_path / "d"), "-m", "ping")
    assert code == 0, err
    assert out.strip() == "Echo: ping"


async def test_check_reports_errors_with_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("channels:\n  x:\n    type: nope\n")
    code, out, _ = await run_cli("check", "--config", str(config), "--data-dir",
                                 str(tmp_path / "d"))
    assert code == 1
    assert f"{config}:3 [channels.x.type]: unknown channel type 'nope'" in out


async def test_secret_set_goes_to_0600_file_not_stdout(tmp_path: Path) -> None:
    code, out, _ = await run_cli("secret", "--data-dir", str(tmp_path), "set",
                                 "providers.main.api_key", stdin="sk-cli-secret-0123456789\n")
    assert code == 0 and "sk-cli" not in out
    stored = tmp_path / "secrets.json"
    assert "sk-cli-secret-0123456789" in stored.read_text()
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
