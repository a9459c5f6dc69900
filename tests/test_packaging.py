"""pyproject.toml holds each fact once: channel extras, entry points, and the flet lists
generated from them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from pyclaw_app.channels import registry

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]


def test_the_flet_dependency_lists_match_the_extras() -> None:
    result = subprocess.run([sys.executable, str(ROOT / ".ci" / "flet_deps.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_channel_with_an_sdk_has_its_own_extra_and_gateway_pulls_them_all() -> None:
    extras = PROJECT["optional-dependencies"]
    gateway = Requirement(extras["gateway"][0])
    assert gateway.name == "pyclaw"
    for name, spec in registry.specs().items():
        if not spec.requires:
            continue
        assert name in extras, f"no pyclaw[{name}] extra"
        assert name in gateway.extras, f"pyclaw[gateway] does not pull pyclaw[{name}]"
        assert spec.install == f"pip install 'pyclaw[{name}]'"


def test_every_entry_point_names_a_manifest_spec() -> None:
    points = PROJECT["entry-points"][registry.GROUP]
    assert set(points) == {"local", "telegram", "discord", "slack", "line", "whatsapp", "viber",
                           "webhook", "twilio", "teams", "messenger", "googlechat", "wechat",
                           "wecom", "feishu", "nextcloud", "webex", "openai_api", "irc",
                           "mqtt", "xmpp", "email", "matrix", "twitch", "mattermost",
                           "rocketchat", "zulip", "signal", "dingtalk", "qq"}
    for name, value in points.items():
        assert value == f"connectors.{name}.manifest:SPEC"
        assert registry.get_spec(name).runtime.startswith(f"connectors.{name}.runtime:")
