"""Registering the channel's webhook with Webex, idempotently.

On every start with ``webhook_url`` set the channel makes sure exactly one webhook of
its own delivers ``messages``/``created`` there, signed with the configured secret:
it lists the token's webhooks (``GET /webhooks``), updates the one it registered
before (found by its name, else by the same target URL) with ``PUT
/webhooks/{webhookId}`` — the target URL and secret may have changed, and ``status:
active`` revives a webhook Webex deactivated after failed deliveries — and creates one
(``POST /webhooks``) only when there is none. No filter is set: a bot is told of the
messages in every space it is in (in group spaces, of those that @mention it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyclaw_app.channels import ChannelHttp
from pyclaw_app.errors import FatalConnectorError

__all__ = ["Registered", "register_webhook"]

RESOURCE, EVENT = "messages", "created"
LISTED = 100
"""Webhooks asked for in one page; a bot with more than that is not one this channel runs."""


@dataclass(frozen=True, slots=True)
class Registered:
    webhook_id: str
    action: str  # "created" or "updated"
    was: str  # the status before ("" when created): "inactive" means Webex had disabled it


async def register_webhook(http: ChannelHttp, *, name: str, url: str, secret: str
                           ) -> Registered:
    try:
        listed = await http.call("GET", "/webhooks", params={"max": str(LISTED)})
        mine = _ours(listed.data, name, url)
        body: dict[str, Any] = {"name": name, "targetUrl": url, "secret": secret}
        if mine is None:
            created = await http.call("POST", "/webhooks", json_body={
                **body, "resource": RESOURCE, "event": EVENT})
            return Registered(_id(created.data), "created", "")
        webhook_id = str(mine["id"])
        await http.call("PUT", f"/webhooks/{webhook_id}", json_body={**body,
                                                                     "status": "active"})
        return Registered(webhook_id, "updated", str(mine.get("status") or ""))
    except FatalConnectorError as exc:
        raise FatalConnectorError(f"could not register the Webex webhook for {url}: {exc}"
                                  ) from None


def _ours(data: object, name: str, url: str) -> Mapping[str, Any] | None:
    """The webhook this channel registered before: its name, else the same target URL, for
    new messages and without a filter (one someone made by hand for this channel)."""
    items = data.get("items") if isinstance(data, Mapping) else None
    candidates = [w for w in items if isinstance(w, Mapping) and isinstance(w.get("id"), str)
                  and w.get("resource") == RESOURCE and w.get("event") == EVENT
                  and not w.get("filter")] if isinstance(items, list) else []
    for wanted in ("name", "targetUrl"):
        value = name if wanted == "name" else url
        for webhook in candidates:
            if webhook.get(wanted) == value:
                return webhook
    return None


def _id(data: object) -> str:
    value = data.get("id") if isinstance(data, Mapping) else None
    return value if isinstance(value, str) else ""
