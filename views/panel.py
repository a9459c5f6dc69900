"""What the shell needs from each view, so adding a destination is one registry line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import flet as ft

from pyclaw_app.control import ControlPlane
from pyclaw_app.model import Event

__all__ = ["Destination", "Panel"]


class Panel(Protocol):
    """A view: one root control, a snapshot load, and batched live events.

    ``apply`` only changes controls; the caller sends ONE page update per batch,
    which is why views never call ``update()`` from there themselves.
    """

    @property
    def root(self) -> ft.Control: ...

    async def load(self) -> None:
        """Fetch the initial state from the plane (also after a web client reconnects)."""
        ...

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Apply a batch (possibly empty: a clock tick at wall time ``now``)."""
        ...


@dataclass(frozen=True, slots=True)
class Destination:
    route: str
    label: str
    icon: ft.IconData
    selected_icon: ft.IconData
    build: Callable[[ControlPlane], Panel]
