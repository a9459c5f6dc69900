"""One exception tree for the whole gateway, mapped from SDK errors at the boundary.

The split that matters is *fatal* (retrying cannot help: bad token, missing
permission, bad config) against *retryable* (the platform or provider asked us
to wait, or the network blinked). Reconnect loops and the LLM failover read
only these classes, never an SDK's own exceptions.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectorError",
    "FatalConnectorError",
    "ProviderError",
    "PyclawError",
    "RetryableError",
    "StoreError",
]


class PyclawError(Exception):
    """Base of every error pyclaw raises on purpose."""


class ConfigError(PyclawError):
    """A config file or section is invalid; ``where`` names file, line and field."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.detail = message


class StoreError(PyclawError):
    """The store refused a write (locked, disk full, corrupt)."""


class StoreUnreachable(StoreError):
    """The database server cannot be reached: an outage to wait out, not a refusal."""


class ConnectorError(PyclawError):
    """A channel failed in a way the user should read in its log."""


class FatalConnectorError(ConnectorError):
    """Retrying will not help (bad token, revoked bot, missing intent)."""


class DeliveryUncertain(ConnectorError):
    """The send went out but its answer was lost (read time-out, connection cut): the
    platform may have delivered it, and cannot be asked. Never resent automatically;
    the reply is marked ``uncertain`` for a person to decide (Retry in Logs)."""


class RetryableError(ConnectorError):
    """Try again later; ``retry_after`` seconds when the platform said how long."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(PyclawError):
    """The LLM provider failed; ``retryable`` decides between failover and giving up."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
