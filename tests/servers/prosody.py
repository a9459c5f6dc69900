"""A real prosody for the XMPP tests, started once per test process on 127.0.0.1.

``await shared_prosody()`` starts ``/usr/bin/prosody`` with a config generated in a temp
directory: its own data path, pidfile and logs, a c2s port that offers STARTTLS (and
requires it) and one for direct TLS, both with a certificate for ``localhost`` made by
``openssl`` (the tests trust it as the CA), the ``localhost`` virtual host with offline
storage (XEP-0160), stream management (XEP-0198, mod_smacks: a session whose socket is
lost is kept for resumption) and a MUC service ``conference.localhost`` (XEP-0045).
Users are registered with ``prosodyctl register``. Run as root (CI), prosody would switch
to the ``prosody`` account, which cannot read the temp directory: ``run_as_root`` keeps it
as is. The process is killed when the test process exits; one that cannot start raises
with its log, so the test fails loudly instead of skipping.

A small prosody module of the tests (``mod_pyclaw_faults``, written next to the config
and loaded from ``plugin_paths``) records every message with a body a client sends, as
the server routes it, in ``sent.jsonl`` (what a harness reads back as "sent": the
server's record, written before the sender's next stanza is handled), and carries out
faults an admin account asks for with an ``<iq type='set'>`` naming a JID:

- ``drop``: closes the TCP connection of every session of that JID without
  ``</stream>`` (a network fault; mod_smacks keeps the session), before it answers;
- ``error``: answers the JID's next new message (not a correction) after ``skip`` ones with
  an XMPP error of the given type and condition instead of routing it (what a server, a
  room or a rate limiter such as mod_muc_limits answers), and writes the time it did so,
  and the time the JID's next message arrived, to ``faults.log``;
- ``lose``: routes the JID's next new message, then ends the session with a stream error
  before anything else of that stream is handled: the client never learns the message
  went, and a closed session cannot be resumed.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.shared import Shared, free_port, listening, stop_process

__all__ = ["ADMIN", "DOMAIN", "FAULTS_NS", "MUC", "Prosody", "shared_prosody"]

PROSODY = "/usr/bin/prosody"
PROSODYCTL = "/usr/bin/prosodyctl"
DOMAIN = "localhost"
MUC = f"conference.{DOMAIN}"
ADMIN = ("harness", "harness-secret-1")
FAULTS_NS = "urn:pyclaw:test:faults:0"
_START_TIMEOUT = 15.0

_FAULTS_MODULE = r"""
-- Scripted faults for pyclaw's tests; see tests/servers/prosody.py.
local st = require "util.stanza";
local jid_bare = require "util.jid".bare;
local now = require "util.time".now;
local json = require "util.json";
local NS = "%(ns)s";
local log_path = "%(log)s";
local sent_path = "%(sent)s";
local pending = {};  -- bare JID -> the next fault for its messages
local watching = {}; -- bare JID -> true: write the arrival of its next message

local function write(line, path)
	local f = io.open(path or log_path, "a");
	f:write(line, "\n");
	f:close();
end

local function sessions_of(bare)
	local found = {};
	for full, session in pairs(prosody.full_sessions) do
		if jid_bare(full) == bare then found[#found + 1] = session; end
	end
	return found;
end

module:hook("iq-set/host/" .. NS .. ":fault", function(event)
	local origin, stanza = event.origin, event.stanza;
	if not origin.username or origin.username .. "@" .. origin.host ~= "%(admin)s" then
		origin.send(st.error_reply(stanza, "auth", "forbidden"));
		return true;
	end
	local fault = stanza.tags[1].attr;
	if fault.kind == "drop" then
		-- A network fault: the socket closed without </stream>; mod_smacks keeps the
		-- session for a resumption and queues what comes for it.
		for _, session in ipairs(sessions_of(fault.jid)) do session.conn:close(); end
	else
		pending[fault.jid] = { kind = fault.kind, skip = tonumber(fault.skip) or 0,
			type = fault.type, condition = fault.condition, text = fault.text };
	end
	origin.send(st.reply(stanza));
	return true;
end);

local function on_message(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" or not origin.username or not stanza:get_child("body") then return; end
	local from = origin.username .. "@" .. origin.host;
	if watching[from] then
		watching[from] = nil;
		write("next " .. from .. " " .. now());
	end
	local replace = stanza:get_child("replace", "urn:xmpp:message-correct:0");
	local record = json.encode({ from = from, to = jid_bare(stanza.attr.to or ""),
		type = stanza.attr.type or "normal", id = stanza.attr.id or "",
		replace = replace and replace.attr.id or "", body = stanza:get_child_text("body") or "",
		t = now() });
	local fault = pending[from];
	if fault and not replace and fault.skip > 0 then fault.skip = fault.skip - 1; fault = nil; end
	if not fault or replace then write(record, sent_path); return; end
	pending[from] = nil;
	if fault.kind == "error" then
		origin.send(st.error_reply(stanza, fault.type, fault.condition, fault.text));
		write("answered " .. from .. " " .. now());
		watching[from] = true;
		return true;
	elseif fault.kind == "lose" then
		write(record, sent_path);
		prosody.core_post_stanza(origin, stanza, false);
		-- Ended with a stream error: a closed session, which mod_smacks cannot resume, so
		-- the client cannot learn that the message went (what a server restart does).
		origin:close({ condition = "system-shutdown", text = "pyclaw test: answer lost" });
		return true;
	end
end

for _, kind in ipairs({ "bare", "full", "host" }) do
	module:hook("pre-message/" .. kind, on_message, 1000);
end
"""


def _run(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): "
                           f"{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Prosody:
    """One prosody process, the files it runs from, and the accounts made on it."""

    root: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def config_file(self) -> Path:
        return self.root / "prosody.cfg.lua"

    @property
    def ca_file(self) -> str:
        """The self-signed certificate both c2s ports present (its own CA)."""
        return str(self.root / "certs" / f"{DOMAIN}.crt")

    @property
    def log_file(self) -> Path:
        return self.root / "prosody.log"

    @property
    def faults_log(self) -> Path:
        return self.root / "faults.log"

    @property
    def sent_log(self) -> Path:
        """One JSON line per message with a body that a client sent, as the server routed it:
        from (bare), to (bare), type, id, replace (the corrected id), body, t (wall time)."""
        return self.root / "sent.jsonl"

    def prepare(self) -> None:
        for tool in (PROSODY, PROSODYCTL, "openssl"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (apt-get install prosody openssl)")
        certs, plugins, data = self.root / "certs", self.root / "plugins", self.root / "data"
        for directory in (certs, plugins, data):
            directory.mkdir()
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={DOMAIN}",
             "-addext", f"subjectAltName=DNS:{DOMAIN},DNS:{MUC},IP:127.0.0.1",
             "-keyout", f"{DOMAIN}.key", "-out", f"{DOMAIN}.crt", cwd=certs)
        self.faults_log.touch()
        self.sent_log.touch()
        (plugins / "mod_pyclaw_faults.lua").write_text(_FAULTS_MODULE % {
            "ns": FAULTS_NS, "log": self.faults_log, "sent": self.sent_log,
            "admin": f"{ADMIN[0]}@{DOMAIN}"}, "utf-8")
        self.config_file.write_text(f"""\
run_as_root = true
pidfile = "{self.root}/prosody.pid"
data_path = "{data}"
plugin_paths = {{ "{plugins}" }}
log = {{ info = "{self.log_file}"; error = "{self.root}/error.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{ {self.tls_port} }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "smacks"; "pyclaw_faults" }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
ssl = {{ key = "{certs}/{DOMAIN}.key"; certificate = "{certs}/{DOMAIN}.crt" }}
admins = {{ "{ADMIN[0]}@{DOMAIN}" }}

VirtualHost "{DOMAIN}"

Component "{MUC}" "muc"
    restrict_room_creation = false
    muc_room_locking = false
""", "utf-8")

    def start(self) -> None:
        self.prepare()
        self.register(*ADMIN)
        self.process = subprocess.Popen(
            [PROSODY, "--config", str(self.config_file), "-F"], cwd=self.root,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prosody exited with {self.process.returncode}:\n"
                                   f"{self.output()}")
            if all(listening(p) for p in (self.port, self.tls_port)):
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"prosody did not listen within {_START_TIMEOUT}s:\n{self.output()}")

    def output(self) -> str:
        """What prosody printed and logged, for a failure message."""
        text = ""
        if self.process is not None and self.process.stdout is not None \
                and self.process.poll() is not None:
            text += self.process.stdout.read().decode(errors="replace")
        for path in (self.log_file, self.root / "error.log"):
            if path.exists():
                text += path.read_text("utf-8", errors="replace")[-4000:]
        return text

    def register(self, user: str, password: str) -> str:
        """``user@localhost`` with ``password`` (once per name); returns the bare JID."""
        with self._lock:
            if self.users.get(user) != password:
                _run(PROSODYCTL, "--config", str(self.config_file), "register", user, DOMAIN,
                     password, cwd=self.root)
                self.users[user] = password
        return f"{user}@{DOMAIN}"

    def fault_lines(self, jid: str) -> list[tuple[str, float]]:
        """(what, wall time) the fault module wrote for ``jid``: "answered" with an error,
        "next" message after that."""
        lines = [line.split() for line in self.faults_log.read_text("utf-8").splitlines()]
        return [(what, float(when)) for what, who, when in lines if who == jid]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Kill the process and remove its files: :meth:`start` prepares a new directory, so
        a prosody is never started twice."""
        process, self.process = self.process, None
        stop_process(process)
        shutil.rmtree(self.root, ignore_errors=True)


_SHARED = Shared(Prosody, prefix="pyclaw-prosody-")


async def shared_prosody() -> Prosody:
    """The test process's prosody, started on first use (in a thread: it takes a second)."""
    return await _SHARED()
