"""The registry finds channel types through the ``pyclaw.channels`` entry points, including
those of other installed packages, and lists the ones whose SDK is missing."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyclaw_app.channels import registry
from pyclaw_app.channels.registry import get_spec
from pyclaw_app.control.admin import channel_types


@pytest.mark.parametrize("name", ["telegram", "discord", "slack"])
def test_manifests_declare_edit(name: str) -> None:
    assert get_spec(name).capabilities.edit


def test_the_built_in_channels_come_from_entry_points() -> None:
    assert {"local", "telegram", "discord", "slack"} <= set(registry.specs())
    assert registry.connector_class("local").__name__ == "LocalConnector"


PLUGIN = '''
from pydantic import SecretStr
from pyclaw_app.channels import ChannelConfig, ConnectorSpec, secret_field

class EchoConfig(ChannelConfig):
    key: SecretStr | None = secret_field("Echo key")

SPEC = ConnectorSpec("echo", "Echo (plugin)", EchoConfig, runtime="pyclaw_channel_echo:SPEC")
NEEDS_SDK = ConnectorSpec("faxline", "Fax line", EchoConfig, runtime="pyclaw_channel_echo:X",
                          requires=("faxline_sdk_that_is_not_installed",),
                          install="pip install pyclaw-channel-echo[fax]")
'''


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[None]:
    """A package installed beside pyclaw: its module and its dist-info with entry points."""
    (tmp_path / "pyclaw_channel_echo.py").write_text(textwrap.dedent(PLUGIN), "utf-8")
    info = tmp_path / "pyclaw_channel_echo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pyclaw-channel-echo\n"
                                   "Version: 0.1\n", "utf-8")
    (info / "entry_points.txt").write_text(
        "[pyclaw.channels]\necho = pyclaw_channel_echo:SPEC\n"
        "faxline = pyclaw_channel_echo:NEEDS_SDK\n", "utf-8")
    sys.path.insert(0, str(tmp_path))
    registry._discover.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pyclaw_channel_echo", None)
        registry._discover.cache_clear()


def test_a_channel_from_another_package_appears_with_no_core_change(plugin: None) -> None:
    assert get_spec("echo").title == "Echo (plugin)"
    assert "telegram" in registry.specs()  # the built-ins are still there


def test_a_type_whose_sdk_is_missing_is_listed_with_its_install_command(plugin: None) -> None:
    missing = registry.unavailable()["faxline"]
    assert missing.install == "pip install pyclaw-channel-echo[fax]"
    assert "faxline_sdk_that_is_not_installed" in missing.reason
    with pytest.raises(KeyError, match="pip install pyclaw-channel-echo"):
        get_spec("faxline")
    types = channel_types()
    row = next(t for t in types if t.type == "faxline")
    assert row.install == missing.install and row.title == "Fax line"


def test_an_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known types: .*telegram"):
        get_spec("nope")
