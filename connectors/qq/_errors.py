"""The one place OneBot answers and transport failures become pyclaw's errors.

OneBot v11 sorts failures by ``retcode`` (``communication/ws.md``): 1400 a bad request,
1401/1403 a missing or wrong token, 1404 an unknown action. Everything else is the
implementation's own: go-cqhttp answers retcode 100 with a code in ``msg``
(GROUP_NOT_FOUND, SEND_MSG_API_ERROR, EMPTY_MSG_ERROR), NapCat 1200 with the error it
caught in ``message`` (``发送消息失败`` "sending failed"; a ``Timeout`` while it waited for
QQ to confirm the message). A send that failed that way did not go out, except for such a
timeout: QQ may still deliver it, so that one is uncertain, like an answer that never came.
"""

from __future__ import annotations

import ssl

import aiohttp

from connectors.qq._conn import AnswerLost, ApiFailed, NotSent
from pyclaw_app.errors import ConnectorError, DeliveryUncertain, FatalConnectorError, RetryableError

__all__ = ["connect_error", "send_error"]

_TOKEN_ADVICE = ("set access_token to the token in the bridge's WebSocket server settings "
                 "(NapCat: Network settings, Token; go-cqhttp: access-token)")
_NOT_THERE = ("GROUP_NOT_FOUND", "FRIEND_NOT_FOUND", "USER_NOT_FOUND", "不存在",
              "无法获取用户信息")
"""Words of a target the account cannot reach: 不存在 "does not exist", 无法获取用户信息
"cannot get the user's info" (NapCat, for a QQ number it does not know)."""
_MUTED = ("禁言", "muted")
_TOO_LONG = ("过长", "too long", "TooLarge")
_TIMEOUT = ("timeout", "timed out", "超时")


def _token_error(exc: ApiFailed) -> FatalConnectorError:
    said = f" {exc.message}" if exc.message else ""
    if exc.retcode == 1401:
        return FatalConnectorError(f"the OneBot bridge wants an access token (401{said}): "
                                   f"{_TOKEN_ADVICE}")
    return FatalConnectorError(f"the OneBot bridge refused the access token (wrong token, "
                               f"403{said}): {_TOKEN_ADVICE}")


def connect_error(exc: Exception, url: str) -> ConnectorError:
    """A failure to connect or to log in (``get_login_info``)."""
    if isinstance(exc, ApiFailed):
        if exc.retcode in (1401, 1403):
            return _token_error(exc)
        return FatalConnectorError(f"the server at {url} answered get_login_info with retcode "
                                   f"{exc.retcode} {exc.message}: is it a OneBot v11 bridge?")
    if isinstance(exc, AnswerLost):
        return RetryableError(f"{exc}; if this repeats, check that url is the bridge's "
                              "universal endpoint (/), which answers API calls, not /event")
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError) \
            or isinstance(cause, ssl.SSLError):
        return FatalConnectorError(f"TLS refused by {url}: {cause}; use a certificate the "
                                   "system trusts, or ws:// on a trusted network")
    if isinstance(cause, aiohttp.WSServerHandshakeError) and cause.status == 404:
        return FatalConnectorError(f"no OneBot WebSocket at {url} (404): check the port and "
                                   "path of the bridge's WebSocket server")
    if isinstance(cause, aiohttp.InvalidURL):
        return FatalConnectorError(f"url {url!r} is not a usable address: {cause}")
    return RetryableError(f"cannot reach the OneBot bridge at {url}: {cause or exc}")


def send_error(exc: Exception, chat: str) -> ConnectorError:
    """A failed ``send_*_msg`` in pyclaw's terms (rule 3: not sent, refused or uncertain)."""
    if isinstance(exc, NotSent):
        return RetryableError(f"not sent, the bridge is not connected: {exc}", retry_after=1.0)
    if isinstance(exc, AnswerLost):
        return DeliveryUncertain(f"{exc}; it may have been delivered, so it is not sent again")
    if not isinstance(exc, ApiFailed):
        return RetryableError(f"send failed: {exc!r}")
    words = exc.message.lower()
    if exc.retcode in (1401, 1403):
        return _token_error(exc)
    if exc.retcode == 1404:
        return FatalConnectorError(f"this OneBot bridge has no {exc.action} ({exc.message})")
    if exc.retcode == 1400:
        return FatalConnectorError(f"the bridge refused the message to {chat} as malformed "
                                   f"(1400 {exc.message})")
    if any(w.lower() in words for w in _NOT_THERE):
        return FatalConnectorError(f"cannot send to {chat}: the QQ account is not in that "
                                   f"group or does not know that user ({exc.message})")
    if any(w in words for w in _MUTED):
        return FatalConnectorError(f"cannot send to {chat}: the bot is muted there "
                                   f"({exc.message})")
    if any(w.lower() in words for w in _TOO_LONG):
        return FatalConnectorError(f"QQ refused the message to {chat} as too long "
                                   f"({exc.message})")
    if any(w in words for w in _TIMEOUT):
        return DeliveryUncertain(f"the bridge timed out waiting for QQ to confirm the message "
                                 f"({exc.message}); it may have been delivered, so it is not "
                                 "sent again")
    return RetryableError(f"the bridge could not send the message to {chat} (retcode "
                          f"{exc.retcode} {exc.message})", retry_after=2.0)
