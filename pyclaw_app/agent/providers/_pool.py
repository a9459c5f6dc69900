"""The connection pool both SDK clients get (over aiohttp, their documented transport)."""

from __future__ import annotations

import httpx2
import openai

__all__ = ["POOL_LIMITS"]

POOL_LIMITS = httpx2.Limits(
    max_connections=0, keepalive_expiry=openai.DEFAULT_CONNECTION_LIMITS.keepalive_expiry)
"""No cap on the provider's connections: ``agent.max_concurrent_llm`` (the gateway's
``llm_slots``) is the one limit on LLM calls. The SDKs' default pool (1,000 connections,
``openai.DEFAULT_CONNECTION_LIMITS``; Anthropic's is the same) would be a second, hidden
one: a stream holds its connection for the whole answer, so with more answers streaming
than that, the rest waited for a connection after being granted a slot, the wait counting
against the connect time-out (bench/RESULTS.md, section 8). The aiohttp transport passes
``max_connections`` to ``aiohttp.TCPConnector(limit=...)``, where 0 means no limit; the
SDK's keep-alive expiry is kept."""
