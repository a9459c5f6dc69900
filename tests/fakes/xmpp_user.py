"""A person on XMPP for the tests: a real slixmpp client on the tests' prosody.

It lives with the fakes because it plays the other side of the wire, as they do; it is a
real client on a real server (tests/servers/prosody.py). What a user sends is encoded as
UTF-8 here first, as every XMPP client must: XML cannot carry a lone surrogate.
"""

from __future__ import annotations

import asyncio
import uuid
from xml.etree.ElementTree import Element

import slixmpp
from slixmpp.exceptions import IqError

from tests.servers.prosody import DOMAIN, Prosody

__all__ = ["XmppUser"]


class XmppUser:
    """One test account's connection: sends as a person would and waits for the server."""

    def __init__(self, jid: str, password: str, server: Prosody) -> None:
        self.jid = jid
        self.client = slixmpp.ClientXMPP(f"{jid}/test", password)
        for plugin in ("xep_0030", "xep_0045", "xep_0199"):
            self.client.register_plugin(plugin)
        self.client.ca_certs = server.ca_file
        self.client.enable_direct_tls = False
        self.client.enable_plaintext = False
        self.server = server

    async def start(self) -> XmppUser:
        started = asyncio.get_running_loop().create_future()
        self.client.add_event_handler(
            "session_start", lambda _e: started.done() or started.set_result(None))
        self.client.connect("127.0.0.1", self.server.port)
        await asyncio.wait_for(started, 15)
        self.client.send_presence()
        await self.barrier()
        return self

    async def barrier(self) -> None:
        """Until the server handled everything this client sent before (it answers a
        stream's stanzas in order)."""
        try:
            await self.client.plugin["xep_0199"].send_ping(slixmpp.JID(DOMAIN), timeout=10)
        except IqError:
            pass

    async def send(self, to: str, text: str, *, kind: str = "chat", stanza_id: str = "",
                   extra: Element | None = None) -> str:
        """One message; returns its id once the server handled it."""
        text.encode("utf-8")  # what no client can put on the wire fails here, as it would
        message = self.client.make_message(mto=to, mbody=text, mtype=kind)
        message["id"] = stanza_id = stanza_id or uuid.uuid4().hex
        if extra is not None:
            message.xml.append(extra)
        message.send()
        await self.barrier()
        return str(stanza_id)

    async def join(self, room: str, nick: str) -> None:
        await self.client.plugin["xep_0045"].join_muc_wait(
            slixmpp.JID(room), nick, maxstanzas=0, timeout=10)

    async def stop(self) -> None:
        if self.client.transport is not None:
            await asyncio.wait_for(self.client.disconnect(wait=1.0), 3)
