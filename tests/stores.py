"""Which store a test runs on: SQLite (the default) or a real PostgreSQL database.

``storage`` (in ``tests/conftest.py``) is what ``make_gateway`` and ``open_store`` use;
it is SQLite unless ``PYCLAW_TEST_STORE=postgres`` is set (to run any test on the server).
A module that must hold on both says so::

    pytestmark = ON_EACH_STORE

and each of its tests then runs twice, once per store, each time on an empty database.
"""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from pyclaw_app.config_storage import StorageConfig
from tests.servers.postgres import PASSWORD, shared_postgres

__all__ = ["ON_EACH_STORE", "STORES", "postgres_storage", "storage_for"]

STORES = ("sqlite", "postgres")
ON_EACH_STORE = pytest.mark.each_store
"""Runs each test of a module (or a test) that uses the ``storage`` fixture, directly or
through ``make_gateway``/``open_store``, once per store (``pytest_generate_tests`` in
``tests/conftest.py``); the module's other tests run once."""


async def postgres_storage() -> StorageConfig:
    """A fresh database on the shared test server, with its password as the secret store
    would give it."""
    server = await shared_postgres()
    return StorageConfig(url=server.new_database(), password=SecretStr(PASSWORD))


async def storage_for(kind: str) -> StorageConfig | None:
    if kind == "sqlite":
        return None
    if kind == "postgres":
        return await postgres_storage()
    raise ValueError(f"unknown test store {kind!r} (PYCLAW_TEST_STORE: sqlite or postgres)")


def default_kind() -> str:
    return os.environ.get("PYCLAW_TEST_STORE", "sqlite")
