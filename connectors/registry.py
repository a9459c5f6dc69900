"""The only place the gateway learns which channel types exist.

Manifests are imported eagerly (they hold just a pydantic model and metadata,
no SDK), runtimes lazily, so listing channels in the UI never pays for, or
fails on, an SDK import.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache

from connectors.base import Connector, ConnectorSpec

__all__ = ["connector_class", "get_spec", "known_types", "register", "specs", "unregister"]

_log = logging.getLogger(__name__)

# type name -> package holding manifest.py (SPEC) and runtime.py (the Connector)
_PACKAGES: dict[str, str] = {
    "local": "connectors.local",
    "telegram": "connectors.telegram",
    "discord": "connectors.discord",
    "slack": "connectors.slack",
}


def register(type_name: str, package: str) -> None:
    """Add a channel type from another package (a plugin, or a test's misbehaving connector)."""
    _PACKAGES[type_name] = package
    specs.cache_clear()


def unregister(type_name: str) -> None:
    _PACKAGES.pop(type_name, None)
    specs.cache_clear()


@cache
def specs() -> dict[str, ConnectorSpec]:
    found: dict[str, ConnectorSpec] = {}
    for type_name, package in _PACKAGES.items():
        try:
            module = importlib.import_module(f"{package}.manifest")
        except ImportError as exc:
            _log.warning("connector %s unavailable: %s", type_name, exc)
            continue
        found[type_name] = module.SPEC
    return found


def known_types() -> list[str]:
    return sorted(specs())


def get_spec(type_name: str) -> ConnectorSpec:
    try:
        return specs()[type_name]
    except KeyError:
        raise KeyError(
            f"unknown channel type {type_name!r}; known types: {', '.join(known_types())}"
        ) from None


def connector_class(type_name: str) -> type[Connector]:
    get_spec(type_name)
    module = importlib.import_module(f"{_PACKAGES[type_name]}.runtime")
    cls: type[Connector] = module.CONNECTOR
    return cls
