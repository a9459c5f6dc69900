"""Where the bytes of a picture, voice message or file a QQ user sent are, by OneBot v11.

A received ``image`` / ``record`` / ``video`` segment carries ``file`` (the name the
bridge knows it by) and ``url`` (``message/segment.md``); NapCat adds ``file_id`` and
``file_size``. A ``url`` on QQ's own media servers (the rkey-signed links NapCat and
Lagrange hand out) or on the bridge's own host is fetched as it is. Otherwise the bridge
is asked: ``get_image`` / ``get_record`` (``api/public.md``) answer ``file``, a path on
the bridge's disk; NapCat and go-cqhttp add ``url`` and NapCat ``base64``, which are what
pyclaw can use. No request here carries the access token: a link another host named
gets nothing of ours, and one on an unknown host is not fetched at all (no fetching of
arbitrary URLs on a bridge's say-so).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlsplit

from pyclaw_app.channels.contract import AttachmentSource, AttachmentUnavailable
from pyclaw_app.model import Attachment

__all__ = ["MEDIA_HOSTS", "lookup", "source_from_answer", "source_from_segment"]

MEDIA_HOSTS = frozenset({"multimedia.nt.qq.com.cn", "gchat.qpic.cn", "c2cpicdw.qpic.cn"})
"""QQ's media servers: NT QQ's rkey-signed downloads, and the group (gchat) and private
chat (c2cpicdw) picture CDNs of the older protocol, as the bridges' segment URLs name them."""

_ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "image": ("get_image", {}), "sticker": ("get_image", {}),
    "audio": ("get_record", {"out_format": "mp3"}),
}


def _usable(url: str, bridge_host: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme in ("http", "https") and (host in MEDIA_HOSTS or host == bridge_host)


def source_from_segment(attachment: Attachment, bridge_host: str) -> AttachmentSource | None:
    """The segment's own ``url`` when it is on a host pyclaw fetches from; None: ask."""
    if attachment.url and _usable(attachment.url, bridge_host):
        return AttachmentSource(url=attachment.url, size=attachment.size)
    return None


def lookup(attachment: Attachment) -> tuple[str, dict[str, Any]]:
    """The action and params that ask the bridge for ``attachment`` (``get_file``, a
    NapCat and go-cqhttp extension, for videos and files, which v11 has no action for)."""
    if not attachment.platform_id:
        raise AttachmentUnavailable("the OneBot bridge gave no file name for it")
    action, extra = _ACTIONS.get(attachment.kind, ("get_file", {}))
    return action, {"file": attachment.platform_id, **extra}


def source_from_answer(action: str, data: object, attachment: Attachment,
                       bridge_host: str) -> AttachmentSource:
    """What the bridge answered ``action``, as something the gateway can download."""
    info = data if isinstance(data, dict) else {}
    url = info.get("url")
    if isinstance(url, str) and _usable(url, bridge_host):
        return AttachmentSource(url=url, size=attachment.size)
    encoded = info.get("base64")
    if isinstance(encoded, str) and encoded:
        try:
            return AttachmentSource(data=base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise AttachmentUnavailable(f"the OneBot bridge answered {action} with base64 "
                                        "that does not decode") from None
    if isinstance(url, str) and url:
        host = urlsplit(url).hostname or "no host"
        raise AttachmentUnavailable(f"the OneBot bridge named {host} for the file, neither "
                                    "its own host nor QQ's media servers, so pyclaw does "
                                    "not fetch it")
    raise AttachmentUnavailable(f"the OneBot bridge answered {action} with a path on its "
                                "own disk only; pyclaw downloads files over HTTP (use a "
                                "bridge that gives a url, such as NapCat)")
