"""The registry finds channel types through the ``pyclaw.channels`` entry points."""

from __future__ import annotations

import pytest

from pyclaw_app.channels.registry import get_spec


@pytest.mark.parametrize("name", ["telegram", "discord", "slack"])
def test_manifests_declare_edit(name: str) -> None:
    assert get_spec(name).capabilities.edit
