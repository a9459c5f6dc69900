"""Fuzz the control API over HTTP: every method with arguments of the right shape and of
any shape, any body, any Authorization header. Whatever comes in, the answer is a 4xx
with a reason or a result, never a 5xx (a traceback in the gateway).

The gateway is real (GatewayHost on SQLite with the fake LLM) and runs on its own event
loop in a thread, so hypothesis can drive it with plain blocking requests. Nothing it
generates can make the gateway reach the internet: channel types other than ``local``
are never named, and no generated object holds both ``name`` and ``model`` (a provider
that could be called).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import types
import typing
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyclaw_app.channels import registry
from pyclaw_app.control.api import CALLS, ControlApi
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.rights import READ_ONLY, Tokens
from pyclaw_app.control.throttle import AuthThrottle
from pyclaw_app.control.webhooks import WebhookServer
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI

TOKENS = Tokens(monitor="monitor-" + "m" * 40, admin="admin-" + "a" * 40)
ANSWERS = {200, 400, 403, 404, 422}
REMOTE_TYPES = frozenset(registry.specs()) - {"local"}
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass
class Served:
    port: int
    client: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A gateway with the control API, on a loop in its own thread. Its throttle never
    blocks: the fuzzer sends thousands of wrong tokens from one address on purpose."""
    tmp = tmp_path_factory.mktemp("fuzz")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-gateway", daemon=True)
    thread.start()

    def on_loop(work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, loop).result(60)

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYCLAW_SECRETS", "file")
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                    "all_proxy"):
            env.delenv(var, raising=False)
        llm = FakeOpenAI()
        on_loop(llm.__aenter__())
        config = tmp / "pyclaw.yaml"
        config.write_text(yaml.safe_dump({"providers": [provider_section(llm)]}))
        host = on_loop(GatewayHost.start(config, tmp / "data"))
        api = ControlApi(host.plane, TOKENS, throttle=AuthThrottle(free_failures=10**9))
        server = WebhookServer(host.runtime.gateway, "127.0.0.1", 0)
        on_loop(server.start(api.install))
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                yield Served(server.port, client)
        finally:
            on_loop(server.stop())
            on_loop(host.stop())
            on_loop(llm.__aexit__(None, None, None))
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def _not_a_provider(value: dict[str, Any]) -> bool:
    return not {"name", "model"} <= set(value)


texts = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)  # surrogates too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(texts, inner, max_size=4).filter(_not_a_provider),
    max_leaves=16)


def from_hint(name: str, hint: Any) -> st.SearchStrategy[Any]:
    """Values of the type a parameter declares (so the method body runs), edges included."""
    if name == "type_name":
        return st.just("local") | texts.filter(lambda t: t not in REMOTE_TYPES)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(from_hint(name, a) for a in typing.get_args(hint)))
    if origin is list:
        (item,) = typing.get_args(hint)
        return st.lists(from_hint(name, item), max_size=3)
    if origin is dict or hint is dict:
        return st.dictionaries(texts, json_values, max_size=4).filter(_not_a_provider)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        type(None): st.none(), bool: st.booleans(),
        int: st.integers() | st.sampled_from([-1, 0, 1, 2**63 - 1, -(2**63), 2**64]),
        float: st.floats(), str: texts | st.sampled_from(["local", "jsonl", "csv", ""])}
    return simple.get(hint, json_values)


def _arguments(method: str) -> st.SearchStrategy[dict[str, Any]]:
    function = getattr(LocalControlPlane, method)
    hints = typing.get_type_hints(function)
    names = [n for n in hints if n != "return"]
    shaped = st.fixed_dictionaries({}, optional={n: from_hint(n, hints[n]) for n in names})
    anything = st.dictionaries(st.sampled_from([*names, "extra"]) | texts, json_values,
                               max_size=4).filter(_not_a_provider)
    return shaped | anything


calls = st.sampled_from(sorted(CALLS)).flatmap(
    lambda m: st.tuples(st.just(m), _arguments(m)))


def _post(served: Served, path: str, content: bytes, token: str = TOKENS.admin
          ) -> httpx.Response:
    return served.client.post(path, content=content,
                              headers={"Authorization": f"Bearer {token}"})


def _answered(resp: httpx.Response) -> None:
    assert resp.status_code in ANSWERS, (resp.status_code, resp.text)
    body = resp.json()
    if resp.status_code == 200:
        assert set(body) == {"result"}
    else:
        assert isinstance(body["error"], str) and body["error"]
        assert "Traceback" not in body["error"]


@FUZZ
@given(call=calls)
def test_every_method_answers_any_arguments_with_a_result_or_a_reason(
        served: Served, call: tuple[str, dict[str, Any]]) -> None:
    method, kwargs = call
    _answered(_post(served, f"/api/v1/call/{method}", json.dumps(kwargs).encode()))


@FUZZ
@given(call=calls)
def test_the_monitor_token_gets_reads_answered_and_changes_refused(
        served: Served, call: tuple[str, dict[str, Any]]) -> None:
    method, kwargs = call
    resp = _post(served, f"/api/v1/call/{method}", json.dumps(kwargs).encode(),
                 TOKENS.monitor)
    _answered(resp)
    assert (resp.status_code == 403) == (method not in READ_ONLY)


@FUZZ
@given(method=st.sampled_from(sorted(CALLS)) | st.from_regex(r"[A-Za-z_-]{1,20}",
                                                             fullmatch=True),
       body=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_to_any_method_name_is_answered(served: Served, method: str,
                                                 body: bytes) -> None:
    _answered(_post(served, f"/api/v1/call/{method}", body))


@settings(max_examples=200, deadline=None)
@given(header=st.binary(max_size=60).filter(lambda b: not {0, 10, 13} & set(b)))
def test_any_authorization_header_is_a_4xx_or_accepted(served: Served, header: bytes) -> None:
    """Raw bytes, as an attacker sends them (an HTTP client would refuse most of them)."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/call/channels HTTP/1.1\r\nHost: x\r\nConnection: close"
                     b"\r\nAuthorization: " + header + b"\r\nContent-Length: 0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status in {200, 400, 401}, answer[:300]


def test_the_fuzzer_names_no_channel_type_that_would_go_online() -> None:
    assert "telegram" in REMOTE_TYPES and "local" not in REMOTE_TYPES
    assert not _not_a_provider({"name": "x", "model": "y"})
