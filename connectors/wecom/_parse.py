"""A WeCom app callback (its decrypted XML fields) -> :class:`Inbound`, as a pure function.

An app callback is the Official Account's message XML with ``AgentID`` added
(wechatpy's ``work/messages.py`` subclasses the OA messages field for field):
``ToUserName`` is the CorpID, ``FromUserName`` the member's UserID. So the OA parser
(``connectors.wechat._parse``) reads it; this module adds what is WeCom's own: a
company's receive URL may be shared by several apps, and a callback for another
``AgentID`` is not this channel's.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.wechat._parse import (
    Followed,
    Ignored,
    Malformed,
    Message,
    Parsed,
    parse_callback,
)

__all__ = ["Followed", "Ignored", "Malformed", "Message", "parse_app_callback"]


def parse_app_callback(fields: Mapping[str, str], *, channel: str, agent_id: int) -> Parsed:
    """What one decrypted callback is, for the app ``agent_id``."""
    agent = fields.get("AgentID")
    agent = agent.strip() if isinstance(agent, str) else ""
    if agent and agent != str(agent_id):
        return Ignored(f"for app {agent[:20]}, not {agent_id}")
    return parse_callback(fields, channel=channel)
