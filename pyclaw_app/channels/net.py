"""Where a URL points, for the rule that secrets and tokens cross a network only over TLS:
plain HTTP is for loopback (or a deliberate ``allow_insecure_http``)."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str) -> bool:
    """Only this machine can connect: ``localhost`` or a loopback address. A host name
    other than localhost may resolve to anything, so it counts as reachable."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
