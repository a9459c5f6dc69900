"""The ``mcp_servers`` section: one MCP server the assistant may use tools from.

Kept beside ``config.py`` rather than in ``pyclaw_app.agent.mcp`` because
``config.py`` loads it, and importing anything under ``pyclaw_app.agent`` pulls in
the whole LLM loop (and ``pyclaw_app.agent`` imports ``config.py``). It imports no
MCP SDK: the SDK loads only when a server is started.

Secret values (an ``Authorization`` header, a ``GITHUB_TOKEN`` for a stdio server)
are never in the YAML: ``secret_headers``/``secret_env`` name them, and their
values live in the secret store under :func:`mcp_secret_key` (or an environment
variable, see :func:`mcp_secret_env`). They are attached to the model after
validation (:meth:`McpServerConfig.with_secrets`) and never dumped.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from pyclaw_app.secrets import redactor

__all__ = ["SENSITIVE_NAME", "TRANSPORT_FIELD", "McpServerConfig", "SecretKind",
           "mcp_secret_env", "mcp_secret_key"]

SecretKind = Literal["headers", "env"]

SERVER_NAME = r"^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$"
"""Letters, digits and single ``-``/``_`` between them: never ``__``, which joins a
server's name to its tools' (``files__read_file``)."""

SENSITIVE_NAME = re.compile(r"(?i)auth|token|secret|passw|api[-_]?key|cookie|credential")
"""Header or variable names whose values are secrets when written in plain ``headers``."""


TRANSPORT_FIELD = "transport"
"""The Settings form's choice between the two kinds of server (``stdio`` or ``http``): not
a field of the model, which tells them apart by ``command`` or ``url``; the control plane
adds it to the form's schema, and these extras show each field only under its transport."""
_STDIO: dict[str, Any] = {"shown_when": {TRANSPORT_FIELD: "stdio"}}
_HTTP: dict[str, Any] = {"shown_when": {TRANSPORT_FIELD: "http"}}
_ESSENTIAL: dict[str, Any] = {"group": "essentials"}


def mcp_secret_key(server: str, kind: SecretKind, name: str) -> str:
    """The secret store key: ``mcp_servers.<server>.headers.<Header>`` or ``...env.<VAR>``."""
    return f"mcp_servers.{server}.{kind}.{name}"


def mcp_secret_env(server: str, kind: SecretKind, name: str) -> str:
    """The environment variable that may hold the value instead, e.g.
    ``PYCLAW_MCP_SEARCH_HEADERS_AUTHORIZATION``."""
    return re.sub(r"[^A-Z0-9]+", "_", f"PYCLAW_MCP_{server}_{kind}_{name}".upper())


class McpServerConfig(BaseModel):
    """One MCP server: a program pyclaw starts (stdio: ``command``) or an endpoint it
    connects to (streamable HTTP: ``url``). Its tools reach the model as
    ``<name>__<tool>``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=32, pattern=SERVER_NAME, title="Name", description=(
        "Short name (letters, digits, - or _); the model sees the tools as <name>__<tool>"))
    enabled: bool = Field(True, description="Off: the server is not started and its tools "
                          "are not offered")
    command: str | None = Field(None, min_length=1, title="Command", json_schema_extra=_STDIO,
                                description=("stdio: the program to run, e.g. npx, uvx or a "
                                             "path (set this or url)"))
    args: list[str] = Field(default_factory=list, title="Arguments",
                            json_schema_extra=_STDIO | _ESSENTIAL,
                            description="stdio: the program's arguments")
    env: dict[str, str] = Field(default_factory=dict, title="Environment variables",
                                json_schema_extra=_STDIO, description=(
        "stdio: extra environment variables (not secrets: list those in secret_env)"))
    secret_env: list[str] = Field(default_factory=list, title="Secret environment variables",
                                  json_schema_extra=_STDIO | _ESSENTIAL, description=(
        "stdio: names of environment variables whose values are secrets, kept in the secret "
        "store (`pyclaw secret set mcp_servers.<name>.env.<VAR>`)"))
    cwd: str | None = Field(None, title="Working directory", json_schema_extra=_STDIO,
                            description="stdio: the working directory of the program")
    url: str | None = Field(None, pattern=r"^https?://", title="URL", json_schema_extra=_HTTP,
                            description=(
        "Streamable HTTP: the endpoint, e.g. https://example.com/mcp (set this or command)"))
    headers: dict[str, str] = Field(default_factory=dict, title="Headers",
                                    json_schema_extra=_HTTP, description=(
        "HTTP: headers sent with every request (not secrets: list those in secret_headers)"))
    secret_headers: list[str] = Field(default_factory=list, title="Secret headers",
                                      json_schema_extra=_HTTP | _ESSENTIAL, description=(
        "HTTP: names of headers whose values are secrets (e.g. Authorization), kept in the "
        "secret store (`pyclaw secret set mcp_servers.<name>.headers.<Header>`)"))
    channels: list[str] | None = Field(None, title="Channels allowed", description=(
        "Channels whose conversations may use this server's tools; all channels when unset"))
    tools: list[str] | None = Field(None, title="Tools offered", description=(
        "The server's tools offered to the model, by the server's own names; all when unset"))
    timeout: float = Field(30.0, gt=0, le=600, title="Call timeout (seconds)", description=(
        "Seconds one tool call may take; then the model reads a timeout error"))
    max_output_chars: int = Field(8000, ge=100, le=200_000, title="Longest result (characters)",
                                  description=(
        "Longest tool result the model reads, in characters; longer results are cut"))
    connect_timeout: float = Field(30.0, gt=0, le=600, title="Connect timeout (seconds)",
                                   description=(
        "Seconds to start or reach the server and list its tools"))
    health_interval: float = Field(30.0, gt=0, le=3600, title="Health check every (seconds)",
                                   description=(
        "Seconds between checks that the server still answers (its tool list is refreshed "
        "too); one that does not is restarted"))

    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("set either command (a program to run, stdio) or url "
                             "(streamable HTTP), not both")
        if self.url is None and (self.headers or self.secret_headers):
            raise ValueError("headers and secret_headers are for url servers")
        if self.command is None and (self.args or self.env or self.secret_env or self.cwd):
            raise ValueError("args, env, secret_env and cwd are for command servers")
        for kind, plain, secret in (("headers", self.headers, self.secret_headers),
                                    ("env", self.env, self.secret_env)):
            both = sorted(set(plain) & set(secret))
            if both:
                raise ValueError(f"{', '.join(both)} cannot be in both {kind} and "
                                 f"secret_{kind}: a secret's value goes in the secret store")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    def secret_names(self) -> list[tuple[SecretKind, str]]:
        """Every secret this server needs, as (kind, name)."""
        return ([("headers", h) for h in self.secret_headers]
                + [("env", e) for e in self.secret_env])

    def with_secrets(self, values: dict[str, str]) -> McpServerConfig:
        """A copy carrying secret values, keyed by :func:`mcp_secret_key` (others ignored)."""
        copy = self.model_copy()
        wanted = {mcp_secret_key(self.name, kind, name) for kind, name in self.secret_names()}
        for key in wanted & set(values):
            redactor.add(values[key])
        copy._secrets = {**self._secrets, **{k: SecretStr(v) for k, v in values.items()
                                             if k in wanted and v}}
        return copy

    def secret_values(self) -> dict[str, str]:
        """The secret values this config carries, by secret store key."""
        return {key: value.get_secret_value() for key, value in self._secrets.items()}

    def missing_secrets(self) -> list[str]:
        """Secret store keys this server needs and has no value for."""
        keys = [mcp_secret_key(self.name, kind, name) for kind, name in self.secret_names()]
        return [key for key in keys if key not in self._secrets]

    def request_headers(self) -> dict[str, str]:
        """Plain headers plus the secret ones that have values."""
        return self.headers | self._resolved("headers", self.secret_headers)

    def process_env(self) -> dict[str, str]:
        """Plain variables plus the secret ones that have values."""
        return self.env | self._resolved("env", self.secret_env)

    def _resolved(self, kind: SecretKind, names: list[str]) -> dict[str, str]:
        out = {}
        for name in names:
            value = self._secrets.get(mcp_secret_key(self.name, kind, name))
            if value is not None:
                out[name] = value.get_secret_value()
        return out

    def same_connection(self, other: McpServerConfig) -> bool:
        """True when ``other`` reaches the same server the same way (secrets included), so
        a running connection can be kept; channels, tools and limits may differ."""
        keep = {"channels", "tools", "timeout", "max_output_chars", "health_interval"}
        mine = self.model_dump(exclude=keep)
        theirs = other.model_dump(exclude=keep)
        return mine == theirs and self.secret_values() == other.secret_values()
