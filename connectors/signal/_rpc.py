"""signal-cli's JSON-RPC over ``POST /api/v1/rpc``, and the one place its errors become pyclaw's.

The daemon answers every request with HTTP 200 and a JSON-RPC 2.0 response; a failed call
is ``{"error": {"code", "message", "data"}}``, with the codes of signal-cli's
``SignalJsonRpcCommandHandler`` and ``JsonRpcResponse.Error``:

- -32700 / -32600 / -32601 / -32602: a request signal-cli cannot take (the account it does
  not have is -32602) -> fatal, with what to change;
- -32603: an unexpected error while carrying the command out (an IOException talking to
  Signal) -> retryable;
- -1 user error (a recipient not on Signal, not a group member...) -> fatal, unless every
  recipient failed with NETWORK_FAILURE (nothing went out: retryable); -3 I/O error ->
  retryable; -4 untrusted identity -> fatal, with the trust command; -5 Signal's rate
  limit -> retryable after the largest ``retryAfterSeconds`` of the per-recipient results
  in ``data.response.results`` (a CAPTCHA challenge token there is named in the error,
  with the command that lifts it); -6 CAPTCHA rejected -> fatal.

HTTP itself is ChannelHttp's (refused, lost answers, a reverse proxy's 401/403/5xx), plus
what the daemon says in HTTP: 421 when the Host header is not the address it listens on,
404 when there is no ``/api/v1/rpc`` (not an HTTP daemon), 415 for a wrong content type.
"""

from __future__ import annotations

import itertools
from typing import Any

from pyclaw_app.channels import ChannelHttp, HttpAnswer
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    RetryableError,
)

__all__ = ["RPC_PATH", "SignalRpc", "classify_http", "rpc_error"]

RPC_PATH = "/api/v1/rpc"
_IDS = itertools.count(1)


def _results(error: dict[str, Any]) -> list[dict[str, Any]]:
    data = error.get("data")
    response = data.get("response") if isinstance(data, dict) else None
    results = response.get("results") if isinstance(response, dict) else None
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def _who(result: dict[str, Any]) -> str:
    address = result.get("recipientAddress")
    address = address if isinstance(address, dict) else {}
    return str(address.get("number") or address.get("uuid") or address.get("username")
               or result.get("groupId") or "a recipient")


def _rate_limit(method: str, message: str, results: list[dict[str, Any]]) -> RetryableError:
    waits = [r["retryAfterSeconds"] for r in results
             if isinstance(r.get("retryAfterSeconds"), int | float)]
    wait = float(max(waits)) if waits else None
    token = next((r["token"] for r in results if isinstance(r.get("token"), str)), None)
    said = f"Signal rate limit on {method}" + (f": retry after {wait:g}s" if wait else "")
    if token:
        said += (f"; Signal asks for a CAPTCHA: solve one at https://signalcaptchas.org/"
                 f"challenge/generate.html and run `signal-cli submitRateLimitChallenge "
                 f"--challenge {token} --captcha <the signalcaptcha:// link>`")
    return RetryableError(f"{said} ({message})", retry_after=wait)


def rpc_error(method: str, error: object, *, account: str) -> ConnectorError:
    """A JSON-RPC error answer to ``method`` in pyclaw's terms."""
    body = error if isinstance(error, dict) else {}
    code = body.get("code")
    message = str(body.get("message") or "no message")
    results = _results(body)
    said = f"signal-cli refused {method} ({code}: {message})"
    if code == -5:
        return _rate_limit(method, message, results)
    if code == -32603 or code == -3:
        return RetryableError(f"signal-cli could not carry out {method} ({code}: {message})")
    if code == -1 and results and all(r.get("type") == "NETWORK_FAILURE" for r in results):
        return RetryableError(f"Signal could not be reached for {method} ({message}: network "
                              "failure for every recipient)")
    if code == -4 or any(r.get("type") == "IDENTITY_FAILURE" for r in results):
        who = next((_who(r) for r in results if r.get("type") == "IDENTITY_FAILURE"),
                   "the recipient")
        return FatalConnectorError(
            f"{said}: the safety number of {who} changed; check it, then run "
            f"`signal-cli -a {account} trust -a {who}` (or trust -v SAFETY_NUMBER)")
    if any(r.get("type") == "UNREGISTERED_FAILURE" for r in results):
        who = next(_who(r) for r in results if r.get("type") == "UNREGISTERED_FAILURE")
        return FatalConnectorError(f"{said}: {who} is not on Signal")
    if code == -32602 and "account" in message:
        return FatalConnectorError(
            f"{said}: the daemon has no account {account}; register or link it with "
            f"signal-cli (`signal-cli -a {account} register`, or `signal-cli link`), or set "
            "`account` to the number the daemon serves")
    if code == -32601:
        return FatalConnectorError(f"{said}: this signal-cli is too old for pyclaw; update it")
    if code == -6:
        return FatalConnectorError(f"{said}: the CAPTCHA was not accepted; solve a new one")
    return FatalConnectorError(said)


def classify_http(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    """What the daemon itself says in HTTP statuses (ChannelHttp sorts the rest)."""
    if answer.status == 421:
        return FatalConnectorError(
            f"{what}: signal-cli refused the Host header (HTTP 421): it answers only to the "
            "address it listens on (--http HOST:PORT); use that address in url, or have the "
            "reverse proxy pass it as Host")
    if answer.status in (404, 405, 415):
        return FatalConnectorError(
            f"{what} answered HTTP {answer.status}: this is not signal-cli's HTTP daemon, "
            "or an old one; start it with `signal-cli -a +NUMBER daemon --http "
            "127.0.0.1:8080` and check url")
    return None


class SignalRpc:
    """JSON-RPC calls for one account of the daemon."""

    def __init__(self, http: ChannelHttp, account: str) -> None:
        self.http = http
        self.account = account

    async def call(self, method: str, params: dict[str, Any], *, sent_matters: bool) -> Any:
        """One request; its ``result``, or the error mapped. ``sent_matters``: a lost answer
        leaves it uncertain (a message), otherwise retryable (typing, an edit, a query).
        The account is always named: a multi-account daemon needs it, a single-account
        one passes it by."""
        request = {"jsonrpc": "2.0", "id": next(_IDS), "method": method,
                   "params": {**params, "account": self.account}}
        answer = await self.http.call("POST", RPC_PATH, json_body=request,
                                      idempotent=not sent_matters)
        reply = answer.data if isinstance(answer.data, dict) else {}
        if "error" in reply:
            raise rpc_error(method, reply["error"], account=self.account)
        if "result" not in reply:
            said = f"signal-cli answered {method} with no JSON-RPC result (HTTP {answer.status})"
            if sent_matters:
                raise DeliveryUncertain(f"{said}; it may have been sent, so it is not sent "
                                        "again")
            raise RetryableError(said)
        return reply["result"]
