"""The first-run guide's gateway side: find a local LLM server, try a provider, remember the guide.

A new owner's first question is "which model do I use?". Many already run one on the
same machine (Ollama, LM Studio, vLLM, llama.cpp's server, LocalAI), so the guide asks
the usual loopback ports first. Only ports are configurable, never a host: whoever may
call this cannot make the gateway probe another machine (least privilege). The probes
are short and concurrent, so nothing found costs half a second at most.

The provider test is one short chat completion through the same provider classes the
agent uses (``make_provider``): what works here works for the next message. Its
failures are told apart (refused, timed out, key refused, unknown model) because each
has a different fix. It sends only the key typed into the guide, never a stored one.

Whether the guide was skipped or finished is one row of the store's ``settings`` table:
a fact about this installation, not configuration, so it stays out of the YAML.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from pyclaw_app.agent.agent import make_provider
from pyclaw_app.agent.providers import ChatMessage
from pyclaw_app.config import ProviderConfig
from pyclaw_app.control.types import CompletionCheck, FirstRunState, LocalServer
from pyclaw_app.errors import PyclawError
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import redactor

__all__ = ["CANDIDATES_ENV", "CLOSED_KEY", "DEFAULT_CANDIDATES", "PROBE_TIMEOUT",
           "TEST_PROMPT", "TEST_TIMEOUT", "Candidate", "FirstRunAdmin", "classify_failure",
           "format_candidates", "parse_candidates"]

_log = logging.getLogger(__name__)

PROBE_TIMEOUT = 0.5
"""Seconds one port may take to answer: a local server answers in milliseconds."""
TEST_TIMEOUT = 30.0
"""The most a test completion may take, whatever the provider's own timeout says."""
TEST_PROMPT = "Reply with one short sentence to say that you are working."
TEST_MAX_TOKENS = 48
ANSWER_CLIP = 400
CLOSED_KEY = "first_run.closed"
"""The ``settings`` row that says the guide was skipped or finished."""
CLOSED_HOW = ("skipped", "finished")
CANDIDATES_ENV = "PYCLAW_LOCAL_SERVERS"
"""Which loopback ports the guide asks, as ``Label=port,port,...`` (default: the usual)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A loopback port where a local OpenAI-compatible server usually listens."""

    name: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("Ollama", 11434),
    Candidate("LM Studio", 1234),
    Candidate("vLLM", 8000),
    Candidate("llama.cpp server or LocalAI", 8080),  # both default to 8080
)
_LABEL = re.compile(r"^[^=,]{1,60}$")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_candidates(text: str) -> tuple[Candidate, ...]:
    """``"Ollama=11434, 8080"`` -> candidates; a bare port is called "Local server".

    Raises ValueError naming the entry that is not ``[label=]port`` with a port of
    1-65535. Blank text means no candidates at all (detection then finds nothing)."""
    out: list[Candidate] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        label, _, port_text = entry.rpartition("=")
        label = label.strip() or "Local server"
        port_text = port_text.strip()
        if not _PORT.fullmatch(port_text) or not _LABEL.match(label):
            raise ValueError(f"{CANDIDATES_ENV}: {entry!r} is not [label=]port")
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError(f"{CANDIDATES_ENV}: port {port} in {entry!r} is not 1-65535")
        out.append(Candidate(label, port))
    return tuple(out)


def format_candidates(candidates: Sequence[Candidate]) -> str:
    """The text ``parse_candidates`` reads back (for an environment variable)."""
    return ",".join(f"{c.name}={c.port}" for c in candidates)


def configured_candidates(environ: Mapping[str, str]) -> tuple[Candidate, ...]:
    """The ports from ``PYCLAW_LOCAL_SERVERS``, or the usual ones; a bad value is logged and
    the usual ones are asked instead (the guide must work even so)."""
    text = environ.get(CANDIDATES_ENV)
    if text is None:
        return DEFAULT_CANDIDATES
    try:
        return parse_candidates(text)
    except ValueError as exc:
        _log.warning("%s; asking the usual ports instead", exc)
        return DEFAULT_CANDIDATES


def _models(body: Any, key: str, field: str) -> tuple[str, ...] | None:
    """The model names in an OpenAI ``{"data": [{"id"}]}`` or Ollama ``{"models":
    [{"name"}]}`` body; None when the body is not that shape (not such a server)."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        return None
    return tuple(sorted({str(m[field]) for m in items if isinstance(m, dict) and m.get(field)}))


async def _get_json(client: httpx.AsyncClient, url: str) -> tuple[int, Any] | None:
    """(status, JSON body or None); None when nothing answered in time."""
    try:
        resp = await client.get(url)
    except httpx.HTTPError:
        return None
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, None


async def _probe(client: httpx.AsyncClient, candidate: Candidate) -> LocalServer | None:
    """The server on ``candidate``'s port if it speaks the OpenAI API (or Ollama's own)."""
    base = candidate.base_url
    answer = await _get_json(client, f"{base}/models")
    if answer is None:
        return None
    status, body = answer
    if status in (401, 403):
        return LocalServer(candidate.name, base, (), f"it wants an API key (HTTP {status})")
    models = _models(body, "data", "id") if status == 200 else None
    if not models:  # an older Ollama lists its models only on its own API
        tags = await _get_json(client, f"http://127.0.0.1:{candidate.port}/api/tags")
        if tags is not None and tags[0] == 200:
            models = _models(tags[1], "models", "name") or models
    if models is None:
        return None  # something else listens there (a web app, a database)
    return LocalServer(candidate.name, base, models,
                       "" if models else "it answers but has no model loaded")


def _where(config: ProviderConfig) -> str:
    if not config.base_url:
        return "api.anthropic.com" if config.kind == "anthropic" else "api.openai.com"
    return urlsplit(config.base_url).netloc or config.base_url


def classify_failure(exc: BaseException, config: ProviderConfig, timeout: float
                     ) -> tuple[str, str]:
    """(failure, message) for a failed test completion, read from the error and its cause
    chain: the SDKs word a refused connection as a time-out or a "connection error",
    but the ``ConnectionRefusedError`` underneath says what happened."""
    where = _where(config)
    refused = timed_out = False
    seen: BaseException | None = exc
    for _ in range(32):  # chains are short; a cycle must not hang the guide
        if seen is None:
            break
        refused = refused or isinstance(seen, ConnectionRefusedError)
        timed_out = timed_out or isinstance(seen, TimeoutError)
        seen = seen.__cause__ or seen.__context__
    status = getattr(exc, "status", None)
    if refused:
        return "refused", (f"Connection refused: nothing is listening at {where}. Is the "
                           "server running, and is the base URL right?")
    if status in (401, 403):
        return "unauthorized", (f"The API key was refused (HTTP {status}): {where} did not "
                                "accept it. Check the key, or make a new one in the "
                                "provider's dashboard.")
    if status == 404:
        return "model", (f"{where} does not know the model {config.model!r} (HTTP 404): "
                         "pick one it lists.")
    if timed_out or "timed out" in str(exc):
        return "timed_out", (f"Timed out: {where} did not answer within {timeout:g} seconds. "
                             "A local server may still be loading the model: try again.")
    return "error", f"The test failed: {redactor(str(exc)) or type(exc).__name__}"


class FirstRunAdmin:
    """Detection, the test completion and the skip flag, for the local control plane."""

    def __init__(self, gateway: Gateway, candidates: Sequence[Candidate] | None = None, *,
                 probe_timeout: float = PROBE_TIMEOUT,
                 clock: Callable[[], float] = time.time) -> None:
        self.gateway = gateway
        self.candidates = tuple(candidates if candidates is not None
                                else configured_candidates(os.environ))
        self.probe_timeout = probe_timeout
        self.clock = clock

    async def state(self) -> FirstRunState:
        closed = await self.closed()
        has_provider = bool(self.gateway.config.providers)
        return FirstRunState(not has_provider and not closed, has_provider, closed)

    async def closed(self) -> str:
        row = await self.gateway.store.db.fetchone("SELECT value FROM settings WHERE key=?",
                                                   (CLOSED_KEY,))
        if row is None:
            return ""
        try:
            how = json.loads(row["value"]).get("how", "")
        except (ValueError, AttributeError):
            how = "skipped"  # a mangled row still means the owner closed the guide once
        return how if how in CLOSED_HOW else "skipped"

    async def close(self, how: str) -> FirstRunState:
        """Remember that the owner skipped (or finished) the guide: it no longer opens by
        itself. Settings can still open it."""
        if how not in CLOSED_HOW:
            raise ValueError(f"how must be one of {', '.join(CLOSED_HOW)}, not {how!r}")
        value = json.dumps({"how": how, "at": self.clock()})
        await self.gateway.store.db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value=excluded.value", (CLOSED_KEY, value))
        return await self.state()

    async def find_local_servers(self) -> list[LocalServer]:
        """Every candidate port that answers like an OpenAI-compatible server, in the
        candidates' order; empty when none does. Loopback only, no proxy."""
        timeout = httpx.Timeout(self.probe_timeout)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False,
                                     follow_redirects=False) as client:
            found = await asyncio.gather(*(_probe(client, c) for c in self.candidates))
        by_url: dict[str, LocalServer] = {}
        for server in found:
            if server is not None and server.base_url not in by_url:
                by_url[server.base_url] = server
        return list(by_url.values())

    async def test_completion(self, provider: dict[str, Any]) -> CompletionCheck:
        """One short chat completion with exactly the values given (a blank key is no key:
        a stored one is never sent from here)."""
        body = {k: v for k, v in provider.items() if v is not None and v != ""}
        try:
            config = ProviderConfig.model_validate(body)
        except ValidationError as exc:
            words = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'provider'}: {e['msg']}"
                              for e in exc.errors())
            return CompletionCheck(False, "invalid", f"Not tested: {words}")
        timeout = min(config.timeout, TEST_TIMEOUT)
        config = config.model_copy(update={"timeout": timeout})
        client = make_provider(config)
        try:
            completion = await asyncio.wait_for(
                client.complete([ChatMessage("user", TEST_PROMPT)],
                                max_tokens=TEST_MAX_TOKENS), timeout + 1)
        except (PyclawError, TimeoutError) as exc:
            failure, message = classify_failure(exc, config, timeout)
            return CompletionCheck(False, failure, redactor(message))
        finally:
            await client.close()
        answer = completion.text.strip()
        if not answer:
            return CompletionCheck(False, "error", f"{_where(config)} answered with no text: "
                                   "is the model a chat model?")
        clipped = answer if len(answer) <= ANSWER_CLIP else answer[:ANSWER_CLIP] + "…"
        return CompletionCheck(True, "", f"{config.model} answered through {_where(config)}.",
                               redactor(clipped))
