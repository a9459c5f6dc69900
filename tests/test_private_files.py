"""The data directory and what is in it are readable by their owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def generous_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_database_and_its_folder_are_private(tmp_path: Path,
                                                       generous_umask: None) -> None:
    data = tmp_path / "data"
    store = await Store(data).open()
    try:
        await store.channel_state.of("x").set("k", 1)  # the WAL exists once written
    finally:
        await store.close()
    assert mode(data) == 0o700
    files = [p for p in data.iterdir() if p.name.startswith("pyclaw")]
    assert files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


async def test_an_existing_data_folder_is_made_private_on_open(tmp_path: Path,
                                                               generous_umask: None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    store = await Store(data).open()
    await store.close()
    assert mode(data) == 0o700


def test_the_secrets_file_and_its_folder_are_private(tmp_path: Path,
                                                     generous_umask: None) -> None:
    store = FileSecretStore(tmp_path / "data" / "secrets.json")
    store.set("channels.x.token", "a-secret-value")
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "secrets.json") == 0o600
