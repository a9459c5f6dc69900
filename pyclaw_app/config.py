"""The YAML config, validated section by section so one bad part disables only itself.

A typo in the Slack section must not keep Telegram from starting: each channel
and provider is validated on its own, and every problem becomes a
:class:`ConfigError` naming the file, the line and the field. Secrets never
come from here: secret fields are filled from the :class:`SecretStore`
(or ``PYCLAW_<NAME>_<FIELD>`` environment variables) after validation.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from pyclaw_app.attachments.config import AttachmentsConfig
from pyclaw_app.budgets import BudgetConfig
from pyclaw_app.channels import ChannelConfig, registry
from pyclaw_app.config_file import write_config_file
from pyclaw_app.config_mcp import SENSITIVE_NAME, McpServerConfig, mcp_secret_env, mcp_secret_key
from pyclaw_app.config_storage import STORAGE_PASSWORD_ENV, STORAGE_PASSWORD_KEY, StorageConfig
from pyclaw_app.errors import ConfigError
from pyclaw_app.profiles import PROFILE_NAME, FallbackConfig, ProfileConfig, check_profiles
from pyclaw_app.secrets import SecretStore, redactor

__all__ = [
    "AgentConfig",
    "AttachmentRetention",
    "ChannelEntry",
    "ChannelLogRetention",
    "Config",
    "DeadLettersRetention",
    "FallbackConfig",
    "LlmCallsRetention",
    "ModelPrice",
    "ProviderConfig",
    "RetentionConfig",
    "ServerConfig",
    "TableRetention",
    "channel_secret_key",
    "load_config",
    "provider_secret_key",
    "save_config",
]

DEFAULT_SYSTEM_PROMPT = (
    "You are pyclaw, a helpful assistant reachable from the user's chat apps. "
    "Answer concisely and in the language the user writes in."
)


class ModelPrice(BaseModel):
    """US dollars per million tokens, as providers publish their prices."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)


class ProviderConfig(BaseModel):
    """One LLM endpoint: OpenAI or any OpenAI-compatible server (Ollama, vLLM, LM Studio,
    OpenRouter...), or Anthropic's Messages API."""

    model_config = ConfigDict(extra="forbid")

    # Titles, option labels and "group" are what the Settings form shows (views/forms.py).
    name: str = Field(..., min_length=1, title="Name",
                      description="What the fallback chain, usage and logs call this provider")
    kind: Literal["openai", "anthropic"] = Field(
        "openai", title="API type", description="The protocol the endpoint speaks",
        json_schema_extra={"group": "essentials", "options": {
            "openai": "OpenAI or OpenAI-compatible (Ollama, vLLM, LM Studio, OpenRouter)",
            "anthropic": "Anthropic Messages API"}})
    base_url: str | None = Field(None, title="Base URL",
                                 description="e.g. http://localhost:11434/v1 for Ollama; blank: "
                                 "the provider's own (api.openai.com, api.anthropic.com)",
                                 json_schema_extra={"group": "essentials"})
    model: str = Field(..., min_length=1, title="Model",
                       description="The model name the endpoint knows (Test connection lists "
                       "them)")
    api_key: SecretStr | None = Field(
        None, title="API key", description="Kept in the system keyring, never in the config "
        "file; blank for a local server that needs none", json_schema_extra={"secret": True})
    timeout: float = Field(60.0, gt=0, title="Timeout (seconds)",
                           description="How long one request may take before it counts as "
                           "failed")
    max_retries: int = Field(2, ge=0, le=10, title="Retries",
                             description="Our own retries of this provider before failing over")
    max_output_tokens: int = Field(1024, ge=1, title="Longest reply (tokens)",
                                   description="Longest reply (Anthropic needs it)")
    context_window: int | None = Field(
        None, ge=512, title="Context window (tokens)",
        description="The model's context in tokens; the prompt is trimmed to fit")
    tools: bool = Field(True, title="Offer tools",
                        description="Offer pyclaw's tools (needs function calling)")
    vision: Literal["auto", "on", "off"] = Field(
        "auto", title="Takes pictures", description="Send pictures as image input; a model "
        "without vision gets a line saying a picture was sent. auto: on for Anthropic and "
        "for OpenAI-compatible models whose name says vision (gpt-4o, gpt-4.1, gpt-5, o3, "
        "o4, llava, pixtral, gemma3, qwen-vl, ...), off otherwise",
        json_schema_extra={"options": {"auto": "Guess from the model's name",
                                       "on": "Yes: send pictures", "off": "No: describe them"}})

    @field_validator("vision", mode="before")
    @classmethod
    def _vision_as_bool(cls, value: object) -> object:
        """``vision: true`` / ``false`` in YAML mean on / off."""
        if value is None:
            return "auto"
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) \
            else value

    def takes_images(self) -> bool:
        """``vision``, or the guess from ``kind`` and ``model`` when it is ``auto``."""
        if self.vision != "auto":
            return self.vision == "on"
        return self.kind == "anthropic" or bool(_VISION_MODELS.search(self.model))
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, title="Prices",
        description="Per model name ('*' for any): $ per million tokens")


_VISION_MODELS = re.compile(
    r"gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-5|chatgpt-4o|\bo[134](-|$)|vision|llava|bakllava|"
    r"pixtral|gemma-?3|qwen[\d.]*-?vl|minicpm-v|moondream|claude|gemini|llama-?4|-vl\b",
    re.IGNORECASE)
"""Model names that take image input, for ``ProviderConfig.vision: auto``."""


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Titles are what the Settings form shows (views/forms.py).
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, title="System prompt",
                               description="Variables: {channel}, {user}, {date}")
    system_prompts: dict[str, str] = Field(
        default_factory=dict, title="Per-channel system prompts",
        description="Per channel name: a system prompt template (shorthand for a profile "
        "with only a system prompt; a profile's own prompt wins)")
    language: str | None = Field(
        None, title="Answer in", description="A language the assistant always answers in; "
        "blank: the language the user writes in")
    temperature: float | None = Field(
        None, ge=0, le=2, title="Temperature", description="0 to 2, for OpenAI-compatible "
        "providers (Anthropic's API takes none); blank: the provider's default")
    history_tokens: int = Field(4000, ge=200, title="History budget (tokens)",
                                description="Token budget for past turns")
    compaction: bool = Field(True, title="Summarise old turns",
                             description="Summarise older turns instead of dropping them")
    max_concurrent_llm: int = Field(4, ge=1, le=4096, title="Concurrent LLM calls",
                                    description="LLM requests running at once across all "
                                    "conversations; the others wait their turn")
    provider: str | None = Field(None, title="Default provider",
                                 description="Provider name; first configured one if unset")
    fallbacks: list[FallbackConfig] = Field(
        default_factory=list, title="Fallback chain",
        description="Tried in order when the default provider fails or is rate limited")
    tools: list[str] | None = Field(None, title="Enabled tools",
                                    description="Enabled tool names; all built-ins if unset")
    max_tool_rounds: int = Field(5, ge=1, le=50, title="Tool rounds per answer",
                                 description="How many rounds of tool calls one answer may "
                                 "take before the model must reply")
    retry_base: float = Field(0.5, gt=0, title="First retry delay (seconds)",
                              description="First retry delay in seconds")
    retry_max_wait: float = Field(
        20.0, ge=0, title="Longest retry wait (seconds)",
        description="Fail over instead of retrying when asked to wait longer")
    breaker_failures: int = Field(3, ge=1, title="Failures before a model rests",
                                  description="Failures before a model is rested")
    breaker_cooldown: float = Field(60.0, ge=0, title="Rest time (seconds)",
                                    description="Seconds a failing model rests")


class ServerConfig(BaseModel):
    """The shared HTTP server for webhook-style channels (Telegram webhook, Slack Events API)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Put a TLS reverse proxy in front for the internet")
    port: int = Field(8787, ge=0, le=65535)
    webhooks: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: start only when a channel needs webhooks")
    metrics: Literal["auto", "on", "off"] = Field(
        "auto", description="Prometheus /metrics (no auth: keep it off the internet). auto: "
        "served whenever the server runs for webhooks or the control API; on: also start "
        "the server for it (containers); off: never. /healthz and /readyz are always served")
    control_api: bool = Field(
        False, description="Serve the control API for `pyclaw monitor` / the Android monitor "
        "(bearer tokens: `pyclaw monitor-token`, read-only; `--admin` for full control)")
    tls_cert: Path | None = Field(
        None, description="PEM certificate (chain) file: the server speaks https. Needed to "
        "serve the control API beyond loopback, unless allow_insecure_http is set")
    tls_key: Path | None = Field(None, description="PEM private key file of tls_cert")
    allow_insecure_http: bool = Field(
        False, description="Serve the control API over plain http on a non-loopback host "
        "anyway (its tokens then cross the network readable): a trusted network only")
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client may take to send a request's headers "
        "(and an idle kept-alive connection stays open)")
    max_connections_per_source: int = Field(
        100, ge=1, description="Open connections one address may hold; more are closed at once")

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        return self


_Days = Annotated[float | None, Field(
    gt=0, description="Delete rows older than this many days; null: no age limit")]
_Rows = Annotated[int | None, Field(
    ge=1, description="Keep at most this many of the newest rows; null: no row limit")]


class TableRetention(BaseModel):
    """How long one log table keeps its rows; whichever limit is reached first applies.
    Each table's subclass has its own defaults, so ``channel_log: {days: 7}`` keeps the
    default row limit (and saving writes only what differs from it)."""

    model_config = ConfigDict(extra="forbid")

    days: _Days = None
    rows: _Rows = None


class ChannelLogRetention(TableRetention):
    days: _Days = 30.0
    rows: _Rows = 200_000


class LlmCallsRetention(TableRetention):
    days: _Days = 400.0  # the Usage view's history of costs: over a year
    rows: _Rows = 1_000_000


class DeadLettersRetention(TableRetention):
    days: _Days = 90.0
    rows: _Rows = 1_000  # each keeps a whole raw payload


class AttachmentRetention(BaseModel):
    """How long downloaded attachment files are kept under ``<data>/attachments``; their
    journal rows (with voice transcripts) stay."""

    model_config = ConfigDict(extra="forbid")

    days: float | None = Field(30.0, gt=0, description="Delete files older than this many "
                               "days; null: keep them")


class RetentionConfig(BaseModel):
    """The log tables' limits, pruned in the background. The conversation journal
    (``messages``) is the record of what was said and is never pruned."""

    model_config = ConfigDict(extra="forbid")

    channel_log: ChannelLogRetention = Field(
        default_factory=ChannelLogRetention, description="The channels' log lines (Logs)")
    llm_calls: LlmCallsRetention = Field(
        default_factory=LlmCallsRetention, description="One row per model call (Usage)")
    dead_letters: DeadLettersRetention = Field(
        default_factory=DeadLettersRetention,
        description="Inbound payloads the journal could not store, kept raw")
    attachments: AttachmentRetention = Field(
        default_factory=AttachmentRetention,
        description="Pictures, voice notes and documents people sent, as stored files")
    schedule_runs_days: float | None = Field(
        90.0, gt=0, description="Days a scheduled job's finished runs are kept (null: all); "
        "open ones and each job's latest run always stay")
    every: float = Field(600.0, gt=0, description="Seconds between prunes")
    batch: int = Field(1000, ge=1, le=100_000,
                       description="Rows deleted per write, so writers never wait long")

    def tables(self) -> dict[str, TableRetention]:
        return {"channel_log": self.channel_log, "llm_calls": self.llm_calls,
                "dead_letters": self.dead_letters}


class _TopLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: dict[str, Any] = Field(default_factory=dict)
    storage: dict[str, Any] = Field(default_factory=dict)
    retention: dict[str, Any] = Field(default_factory=dict)
    budgets: dict[str, Any] = Field(default_factory=dict)
    attachments: dict[str, Any] = Field(default_factory=dict)
    agent: dict[str, Any] = Field(default_factory=dict)
    providers: list[dict[str, Any]] = Field(default_factory=list)
    mcp_servers: list[dict[str, Any]] = Field(default_factory=list)
    profiles: dict[Any, Any] = Field(default_factory=dict)  # keys checked one by one
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass
class ChannelEntry:
    """One configured channel: ``config`` is None when its section is invalid (see ``error``)."""

    name: str
    type: str
    config: ChannelConfig | None
    error: ConfigError | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    path: Path | None
    agent: AgentConfig = field(default_factory=AgentConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    budgets: BudgetConfig = field(default_factory=BudgetConfig)
    attachments: AttachmentsConfig = field(default_factory=AttachmentsConfig)
    providers: list[ProviderConfig] = field(default_factory=list)
    mcp_servers: list[McpServerConfig] = field(default_factory=list)
    profiles: dict[str, ProfileConfig] = field(default_factory=dict)
    """Per channel or chat settings (``pyclaw_app.profiles``), by name."""
    channels: dict[str, ChannelEntry] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)
    """Accepted, but not as it should be (a secret written into the YAML)."""


DEFAULT_CHANNELS = {"local": {"type": "local"}}


def channel_secret_key(channel: str, field_name: str) -> str:
    return f"channels.{channel}.{field_name}"


def provider_secret_key(provider: str) -> str:
    return f"providers.{provider}.api_key"


def _env_name(owner: str, field_name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", f"PYCLAW_{owner}_{field_name}".upper())


def _lookup_secret(secrets: SecretStore | None, key: str, env: str) -> str | None:
    value = os.environ.get(env)
    if value:
        redactor.add(value)  # the stores add theirs; a secret from the environment too
        return value
    return secrets.get(key) if secrets else None


def _secret_in_yaml(value: object, key: str, where: str, line: int | None,
                    warnings: list[ConfigError]) -> None:
    """A secret someone wrote into the YAML still works, but is said to be misplaced (and
    kept out of every log line from here on)."""
    redactor.add(str(value))
    warnings.append(ConfigError(
        "a secret is written in the config file, which is not private: store it with "
        f"`pyclaw secret set {key}` and delete it from the file", _where(where, line, key)))


def load_config(path: Path | None, secrets: SecretStore | None = None) -> Config:
    """Read and validate ``path``; a missing file gives the zero-token default."""
    cfg = Config(path=path)
    text = ""
    if path is not None and path.exists():
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            cfg.errors.append(ConfigError(f"cannot read: {exc}", str(path)))
    where = str(path) if path else "<defaults>"
    data, root = _parse(text, where, cfg.errors)
    try:
        top = _TopLevel.model_validate(data)
    except ValidationError as exc:
        cfg.errors.extend(_errors(exc, where, root, ()))
        top = _TopLevel.model_validate(
            {k: v for k, v in data.items() if k in _TopLevel.model_fields
             and isinstance(v, list if k in ("providers", "mcp_servers") else dict)}
        )

    try:
        cfg.agent = AgentConfig.model_validate(top.agent)
    except ValidationError as exc:
        cfg.errors.extend(_errors(exc, where, root, ("agent",)))
    try:
        cfg.server = ServerConfig.model_validate(top.server)
    except ValidationError as exc:
        cfg.errors.extend(_errors(exc, where, root, ("server",)))
    _load_storage(top.storage, secrets, where, root, cfg)
    try:
        cfg.retention = RetentionConfig.model_validate(top.retention)
    except ValidationError as exc:
        cfg.errors.extend(_errors(exc, where, root, ("retention",)))
    try:
        cfg.budgets = BudgetConfig.model_validate(top.budgets)
    except ValidationError as exc:
        cfg.errors.extend(_errors(exc, where, root, ("budgets",)))
    try:
        cfg.attachments = AttachmentsConfig.model_validate(top.attachments)
    except ValidationError as exc:
        cfg.errors.extend(_errors(exc, where, root, ("attachments",)))

    for index, raw in enumerate(top.providers):
        try:
            provider = ProviderConfig.model_validate(raw)
        except ValidationError as exc:
            cfg.errors.extend(_errors(exc, where, root, ("providers", index)))
            continue
        if provider.api_key is not None:
            _secret_in_yaml(provider.api_key.get_secret_value(),
                            provider_secret_key(provider.name), where,
                            _line_of(root, ("providers", index, "api_key")), cfg.warnings)
        else:
            value = _lookup_secret(secrets, provider_secret_key(provider.name),
                                   _env_name(provider.name, "api_key"))
            if value:
                provider = provider.model_copy(update={"api_key": SecretStr(value)})
        cfg.providers.append(provider)

    _load_mcp_servers(top.mcp_servers, secrets, where, root, cfg)

    channels = top.channels or DEFAULT_CHANNELS
    for name, raw in channels.items():
        cfg.channels[name] = _load_channel(name, raw, secrets, where, root, cfg.errors,
                                           cfg.warnings)
    for section in ("channels", "people"):  # a misspelt channel would cap nothing
        for name in getattr(cfg.budgets, section):
            if name not in cfg.channels:
                cfg.warnings.append(ConfigError(
                    f"no channel is called {name!r}: this budget applies to nothing",
                    _where(where, _line_of(root, ("budgets", section, name)),
                           f"budgets.{section}.{name}")))
    _load_profiles(top.profiles, where, root, cfg)
    return cfg


def _load_profiles(raws: dict[Any, Any], where: str, root: yaml.Node | None,
                   cfg: Config) -> None:
    """Each profile on its own (a bad one is left out with its error), then what does not
    add up with the channels, providers and MCP servers (``profiles.check_profiles``)."""
    for key, raw in raws.items():
        name = str(key)  # `123:` in YAML is a number
        at = ("profiles", name)
        if not re.fullmatch(PROFILE_NAME, name):
            cfg.errors.append(ConfigError(
                "a profile's name is letters, digits and single - or _ between them",
                _where(where, _line_of(root, at), f"profiles.{name}")))
            continue
        try:
            cfg.profiles[name] = ProfileConfig.model_validate(raw or {})
        except ValidationError as exc:
            cfg.errors.extend(_errors(exc, where, root, at))
    for problem in check_profiles(cfg.profiles, channels=cfg.channels,
                                  providers=[p.name for p in cfg.providers],
                                  mcp_servers=[s.name for s in cfg.mcp_servers]):
        error = ConfigError(problem.message, _where(
            where, _line_of(root, problem.loc) or _line_of(root, problem.loc[:2]),
            ".".join(str(part) for part in problem.loc)))
        (cfg.errors if problem.error else cfg.warnings).append(error)


def _load_storage(raw: dict[str, Any], secrets: SecretStore | None, where: str, root: Any,
                  cfg: Config) -> None:
    try:
        storage = StorageConfig.model_validate(raw)
    except ValidationError as exc:
        cfg.errors.extend(_errors(exc, where, root, ("storage",)))
        return
    written = storage.password.get_secret_value() if storage.password else \
        storage.password_in_url()
    if written:
        _secret_in_yaml(written, STORAGE_PASSWORD_KEY, where,
                        _line_of(root, ("storage", "password" if storage.password else "url")),
                        cfg.warnings)
    elif storage.is_postgres:
        value = _lookup_secret(secrets, STORAGE_PASSWORD_KEY, STORAGE_PASSWORD_ENV)
        if value:
            storage = storage.model_copy(update={"password": SecretStr(value)})
    cfg.storage = storage


def _load_mcp_servers(raws: list[dict[str, Any]], secrets: SecretStore | None, where: str,
                      root: yaml.Node | None, cfg: Config) -> None:
    """Each server on its own (a bad one is left out with its error); secret header and
    environment values come from the secret store or ``PYCLAW_MCP_...`` variables."""
    for index, raw in enumerate(raws):
        try:
            server = McpServerConfig.model_validate(raw)
        except ValidationError as exc:
            cfg.errors.extend(_errors(exc, where, root, ("mcp_servers", index)))
            continue
        if any(s.name == server.name for s in cfg.mcp_servers):
            cfg.errors.append(ConfigError(f"two MCP servers are called {server.name!r}",
                                          _where(where, _line_of(root, ("mcp_servers", index)),
                                                 f"mcp_servers.{index}.name")))
            continue
        for kind, plain in (("headers", server.headers), ("env", server.env)):
            for name, value in plain.items():
                if SENSITIVE_NAME.search(name):
                    _secret_in_yaml(value, mcp_secret_key(server.name, kind, name), where,
                                    _line_of(root, ("mcp_servers", index, kind, name)),
                                    cfg.warnings)
        values = {}
        for kind, name in server.secret_names():
            key = mcp_secret_key(server.name, kind, name)
            value = _lookup_secret(secrets, key, mcp_secret_env(server.name, kind, name))
            if value:
                values[key] = value
        server = server.with_secrets(values)
        for key in server.missing_secrets():
            cfg.errors.append(ConfigError(
                f"the secret is not set: store it with `pyclaw secret set {key}`",
                _where(where, _line_of(root, ("mcp_servers", index)), key)))
        cfg.mcp_servers.append(server)


def _load_channel(
    name: str,
    raw: dict[str, Any],
    secrets: SecretStore | None,
    where: str,
    root: yaml.Node | None,
    errors: list[ConfigError],
    warnings: list[ConfigError],
) -> ChannelEntry:
    body = dict(raw)
    type_name = str(body.pop("type", name))
    try:
        spec = registry.get_spec(type_name)
    except KeyError as exc:
        line = _line_of(root, ("channels", name, "type")) or _line_of(root, ("channels", name))
        err = ConfigError(exc.args[0], _where(where, line, f"channels.{name}.type"))
        errors.append(err)
        return ChannelEntry(name, type_name, None, err, raw)
    model = spec.config_model
    for field_name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if not (isinstance(extra, dict) and extra.get("secret")):
            continue
        if body.get(field_name) is not None:
            _secret_in_yaml(body[field_name], channel_secret_key(name, field_name), where,
                            _line_of(root, ("channels", name, field_name)), warnings)
            continue
        value = _lookup_secret(secrets, channel_secret_key(name, field_name),
                               _env_name(name, field_name))
        if value:
            body[field_name] = value
    try:
        config = model.model_validate(body)
    except ValidationError as exc:
        found = _errors(exc, where, root, ("channels", name))
        errors.extend(found)
        return ChannelEntry(name, type_name, None, found[0], raw)
    line = _line_of(root, ("channels", name))
    for field_name in config.missing_secrets():
        key = channel_secret_key(name, field_name)
        errors.append(ConfigError(
            f"{field_name} is required and not set: store it with `pyclaw secret set {key}` "
            f"(or the Channels form), or set {_env_name(name, field_name)}",
            _where(where, line, f"channels.{name}.{field_name}")))
    return ChannelEntry(name, type_name, config, None, raw)


def _parse(text: str, where: str, errors: list[ConfigError]
           ) -> tuple[dict[str, Any], yaml.Node | None]:
    if not text.strip():
        return {}, None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        errors.append(ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                  _where(where, line, "")))
        return {}, None
    if data is None:
        return {}, root
    if not isinstance(data, dict):
        errors.append(ConfigError("the top level must be a mapping", _where(where, 1, "")))
        return {}, None
    return data, root


def _errors(exc: ValidationError, where: str, root: yaml.Node | None,
            prefix: tuple[str | int, ...]) -> list[ConfigError]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        line = _line_of(root, loc)
        while line is None and len(loc) > 1:
            loc = loc[:-1]
            line = _line_of(root, loc)
        dotted = ".".join(str(p) for p in prefix + tuple(err["loc"]))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        out.append(ConfigError(message, _where(where, line, dotted)))
    return out


def _where(path: str, line: int | None, dotted: str) -> str:
    text = path if line is None else f"{path}:{line}"
    return f"{text} [{dotted}]" if dotted else text


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (mapping keys and list indexes)."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return None
            key_node = next(k for k, v in node.value if v is match)
            node = match
            last_key_line = key_node.start_mark.line + 1
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and part < len(node.value)):
            node = node.value[part]
            last_key_line = node.start_mark.line + 1
        else:
            return None
    return last_key_line if loc and node is not None else None


def save_config(cfg: Config, secrets: SecretStore) -> None:
    """Write ``cfg`` back into its YAML file, keeping the user's comments, order and layout
    (``config_file``); secret values go to the secret store only."""
    if cfg.path is None:
        raise ConfigError("no config path to save to")
    _store_secrets(cfg, secrets)
    write_config_file(cfg.path, _document(cfg, full=False), _document(cfg, full=True))


def _store_secrets(cfg: Config, secrets: SecretStore) -> None:
    for name, entry in cfg.channels.items():
        if entry.config is None:
            continue
        for field_name, info in type(entry.config).model_fields.items():
            value = getattr(entry.config, field_name)
            if _is_secret(info.json_schema_extra) and isinstance(value, SecretStr):
                secrets.set(channel_secret_key(name, field_name), value.get_secret_value())
    for provider in cfg.providers:
        if provider.api_key is not None:
            secrets.set(provider_secret_key(provider.name), provider.api_key.get_secret_value())
    for server in cfg.mcp_servers:
        for key, value in server.secret_values().items():
            secrets.set(key, value)


def _document(cfg: Config, *, full: bool) -> dict[str, Any]:
    """The config as YAML data without secrets: every value (``full``), or only those that
    differ from their defaults."""
    channels: dict[str, Any] = {}
    for name, entry in cfg.channels.items():
        if entry.config is None:
            channels[name] = entry.raw
            continue
        values = entry.config.model_dump(mode="json")
        body: dict[str, Any] = {"type": entry.type}
        for field_name, info in type(entry.config).model_fields.items():
            if _is_secret(info.json_schema_extra):
                continue
            if full or getattr(entry.config, field_name) != info.get_default(
                    call_default_factory=True):
                body[field_name] = values[field_name]
        channels[name] = body
    providers = [
        provider.model_dump(mode="json", exclude={"api_key"}, exclude_defaults=not full)
        | {"name": provider.name, "model": provider.model}
        for provider in cfg.providers]
    return {
        "server": cfg.server.model_dump(mode="json", exclude_defaults=not full),
        "retention": cfg.retention.model_dump(mode="json", exclude_defaults=not full),
        "budgets": cfg.budgets.model_dump(mode="json", exclude_defaults=not full),
        "attachments": cfg.attachments.model_dump(mode="json", exclude_defaults=not full),
        "agent": cfg.agent.model_dump(mode="json", exclude_defaults=not full),
        "providers": providers,
        "mcp_servers": [server.model_dump(mode="json", exclude_defaults=not full)
                        | {"name": server.name} for server in cfg.mcp_servers],
        "profiles": {name: profile.model_dump(mode="json", exclude_defaults=not full)
                     for name, profile in cfg.profiles.items()},
        "channels": channels,
    }


def _is_secret(extra: object) -> bool:
    return isinstance(extra, dict) and bool(extra.get("secret"))
