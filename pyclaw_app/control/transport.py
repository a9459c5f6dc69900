"""Whether the control API may be served on the configured address, and over what.

The control API's bearer tokens travel in every request, so beyond loopback they need
TLS: built in (``server.tls_cert`` and ``server.tls_key``) or a deliberate
``server.allow_insecure_http: true`` (then the log and the UI say so, every start). Without
either, the control API is not served; webhooks on the same server are unaffected (they
carry their platforms' signatures, and usually arrive through a TLS reverse proxy).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from pyclaw_app.channels.net import is_loopback
from pyclaw_app.config import ServerConfig
from pyclaw_app.errors import ConfigError

__all__ = ["ControlApiPlan", "is_loopback", "plan_control_api", "tls_context"]


def tls_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The server's TLS context from ``tls_cert``/``tls_key``; None when they are unset."""
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(server.tls_cert, server.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {server.tls_cert} with the key "
                          f"{server.tls_key}: {exc}", "server.tls_cert") from exc
    return context


@dataclass(frozen=True, slots=True)
class ControlApiPlan:
    serve: bool
    notice: str = ""
    """For the log and the UI's banner: why it is not served, or why serving it is risky."""


def plan_control_api(server: ServerConfig) -> ControlApiPlan:
    if not server.control_api:
        return ControlApiPlan(False)
    if server.tls_cert is not None or is_loopback(server.host):
        return ControlApiPlan(True)
    where = f"{server.host}:{server.port}"
    if server.allow_insecure_http:
        return ControlApiPlan(True, (
            f"Security: the control API is served over plain http on {where} "
            "(server.allow_insecure_http), so anyone on that network can read its tokens and "
            "everything the monitor shows. Set server.tls_cert and server.tls_key for https."))
    return ControlApiPlan(False, (
        f"The control API is not served: server.host {server.host} is reachable from other "
        "machines and the monitor's token would cross the network unencrypted. Set "
        "server.tls_cert and server.tls_key (https), or keep server.host 127.0.0.1 behind a "
        "TLS reverse proxy, or set server.allow_insecure_http: true on a trusted network."))
