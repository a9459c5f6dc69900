"""Which channel types exist: found through the ``pyclaw.channels`` entry points.

Each entry point names a channel's ``ConnectorSpec`` (its manifest: a pydantic
model and metadata, no SDK), so listing channels never pays for, or fails on,
an SDK import. A channel published as its own package registers the same way
and appears in the UI with no change here. A type whose SDK is missing is
listed as unavailable with the command that installs it, not hidden.

When pyclaw runs from a source tree that was never installed (a ``flet build``
bundle), there is no package metadata; the same entry-point table is then read
from the ``pyproject.toml`` beside the code, so it is still the one list.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from pyclaw_app.channels.contract import Connector, ConnectorSpec

__all__ = [
    "GROUP",
    "Unavailable",
    "connector_class",
    "get_spec",
    "known_types",
    "register",
    "specs",
    "unavailable",
    "unregister",
]

GROUP = "pyclaw.channels"
_log = logging.getLogger(__name__)
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_extra: dict[str, ConnectorSpec] = {}


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A channel type that cannot run here, and what would fix it."""

    type: str
    title: str
    reason: str
    install: str
    spec: ConnectorSpec | None = None
    """The manifest, when it loaded and only the SDK is missing (the catalog still shows
    the type's category and icon)."""


def register(spec: ConnectorSpec) -> None:
    """Add a channel type in-process (a test's misbehaving connector)."""
    _extra[spec.name] = spec
    _discover.cache_clear()


def unregister(type_name: str) -> None:
    _extra.pop(type_name, None)
    _discover.cache_clear()


def _entry_points() -> list[EntryPoint]:
    found = list(entry_points(group=GROUP))
    if any(ep.dist is not None and ep.dist.name == "pyclaw" for ep in found):
        return found
    if _PYPROJECT.exists():  # an uninstalled source tree: the same table, read from the file
        table = tomllib.loads(_PYPROJECT.read_text("utf-8"))
        local = table.get("project", {}).get("entry-points", {}).get(GROUP, {})
        names = {ep.name for ep in found}
        found += [EntryPoint(name, value, GROUP) for name, value in local.items()
                  if name not in names]
    return found


def _load(ep: EntryPoint) -> ConnectorSpec | Unavailable:
    """One entry point's manifest, or why its type cannot run here."""
    try:
        spec = ep.load()
    except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the rest
        _log.warning("channel type %s could not be loaded: %r", ep.name, exc)
        return Unavailable(ep.name, ep.name, f"its manifest failed to load: {exc!r}", "")
    if not isinstance(spec, ConnectorSpec):
        return Unavailable(ep.name, ep.name, f"entry point {ep.value} is not a ConnectorSpec", "")
    absent = [m for m in spec.requires if importlib.util.find_spec(m) is None]
    if absent:
        return Unavailable(spec.name, spec.title,
                           f"needs {', '.join(absent)}, which is not installed",
                           spec.install or f"pip install {' '.join(absent)}", spec)
    return spec


class _Catalog:
    """The entry points, read once; each manifest is loaded when first asked for.

    A gateway that runs two channel types loads two manifests, not thirty (each is a
    pydantic model, and a plugin's may import more); listing every type loads all.
    """

    def __init__(self) -> None:
        self._points = {ep.name: ep for ep in _entry_points()}
        self._loaded: dict[str, ConnectorSpec | Unavailable] = {}
        self._every: tuple[dict[str, ConnectorSpec], dict[str, Unavailable]] | None = None

    def one(self, type_name: str) -> ConnectorSpec | None:
        """The spec of ``type_name`` when its entry point (named after the type) loads and
        can run; None otherwise, so the caller can fall back to ``every`` for the reason."""
        if type_name in _extra:
            return _extra[type_name]
        ep = self._points.get(type_name)
        if ep is None:
            return None
        if type_name not in self._loaded:
            self._loaded[type_name] = _load(ep)
        found = self._loaded[type_name]
        return found if isinstance(found, ConnectorSpec) and found.name == type_name else None

    def every(self) -> tuple[dict[str, ConnectorSpec], dict[str, Unavailable]]:
        if self._every is None:
            ready: dict[str, ConnectorSpec] = {}
            missing: dict[str, Unavailable] = {}
            for name, ep in self._points.items():
                if name not in self._loaded:
                    self._loaded[name] = _load(ep)
                found = self._loaded[name]
                if isinstance(found, ConnectorSpec):
                    ready[found.name] = found
                else:
                    missing[found.type] = found
            ready.update(_extra)
            self._every = ready, missing
        return self._every


@cache
def _discover() -> _Catalog:
    return _Catalog()


def specs() -> dict[str, ConnectorSpec]:
    """The channel types that can run here, by type name."""
    return _discover().every()[0]


def unavailable() -> dict[str, Unavailable]:
    return _discover().every()[1]


def known_types() -> list[str]:
    return sorted(specs())


def get_spec(type_name: str) -> ConnectorSpec:
    spec = _discover().one(type_name) or specs().get(type_name)
    if spec is not None:
        return spec
    missing = unavailable().get(type_name)
    if missing is not None:
        fix = f"; install it with: {missing.install}" if missing.install else ""
        raise KeyError(f"channel type {type_name!r} is not available: {missing.reason}{fix}")
    raise KeyError(f"unknown channel type {type_name!r}; known types: "
                   f"{', '.join(known_types())}")


def connector_class(type_name: str) -> type[Connector]:
    """The runtime class, imported only now (this is where the SDK is loaded)."""
    spec = get_spec(type_name)
    if not spec.runtime:
        raise KeyError(f"channel type {type_name!r} names no runtime in its spec")
    module_name, _, attr = spec.runtime.partition(":")
    cls: type[Connector] = getattr(importlib.import_module(module_name), attr or "CONNECTOR")
    return cls
