"""The two checks every Meta webhook (WhatsApp Cloud API, Messenger) makes, in one place.

Meta verifies a callback URL with a GET carrying ``hub.mode=subscribe``, the
``hub.verify_token`` the owner typed into the app dashboard and a
``hub.challenge`` to echo; every event POST carries ``X-Hub-Signature-256:
sha256=<hex HMAC-SHA256 of the raw body>`` keyed with the *app secret* (Meta's own
Python sample keys it with the verify token, which is wrong). Nothing in either is
time-bound, so a replayed POST passes and is recognised by the journal.
"""

from __future__ import annotations

from pyclaw_app.channels import WebhookRejected, WebhookRequest, same_secret, verify_hmac

__all__ = ["SIGNATURE", "challenge", "check_signature", "check_subscription"]

SIGNATURE = "X-Hub-Signature-256"


def challenge(request: WebhookRequest) -> str:
    """What a verification request asks us to echo back."""
    return request.query.get("hub.challenge", "")


def check_subscription(request: WebhookRequest, verify_token: str | None, *, product: str,
                       where: str) -> None:
    """Refuse a verification GET that is not Meta's, or names another verify token;
    ``where`` tells the owner where in Meta's dashboard the token was entered."""
    query = request.query
    if query.get("hub.mode") != "subscribe" or not query.get("hub.challenge"):
        raise WebhookRejected(400, f"not a {product} verification request (hub.mode "
                              "subscribe and hub.challenge expected)")
    if verify_token is None or not same_secret(query.get("hub.verify_token"), verify_token):
        raise WebhookRejected(403, "webhook verification with a wrong or missing "
                              f"hub.verify_token (compare verify_token with the one {where})")


def check_signature(request: WebhookRequest, app_secret: str | None, *, product: str) -> None:
    if request.method != "POST":
        raise WebhookRejected(405, f"{product} sends webhooks with GET (verification) and "
                              "POST only")
    if app_secret is None or not verify_hmac(app_secret, request.body,
                                             request.header(SIGNATURE), prefix="sha256="):
        raise WebhookRejected(401, f"bad or missing {SIGNATURE}")
