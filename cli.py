"""The ``pyclaw`` command: control panel (default), headless gateway, terminal chat, secrets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyclaw_app import __version__
from pyclaw_app.paths import default_config_path, default_data_dir

if TYPE_CHECKING:
    from pyclaw_app.store import Store

__all__ = ["main"]


def _paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help=f"YAML config file (default: {default_config_path()})")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"where the SQLite database lives (default: {default_data_dir()})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyclaw",
        description="Self-hosted multi-channel AI gateway. Without a command, opens the "
                    "control panel (which also runs the gateway).")
    parser.add_argument("--version", action="version", version=f"pyclaw {__version__}")
    _paths(parser)
    parser.add_argument("--web", action="store_true",
                        help="serve the control panel in a browser instead of a desktop window")
    parser.add_argument("--host", default=None, help="web mode: address to listen on "
                        "(default from flet.toml, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="web mode: port (default from flet.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gw = sub.add_parser("gateway", help="run the gateway headless (no UI) until Ctrl+C")
    _paths(gw)

    monitor = sub.add_parser("monitor", help="open the control panel of a gateway running "
                             "elsewhere (its config needs server.control_api: true); without "
                             "a URL, a connect screen asks for it")
    monitor.add_argument("url", nargs="?", default=None,
                         help="the gateway's server, e.g. http://192.168.1.20:8787 (default: "
                         "the connect screen, filled with the last gateway that worked)")
    monitor.add_argument("--token", default=None,
                         help="from `pyclaw monitor-token` there (default: the connect screen "
                         "asks, or the token stored for this URL)")
    monitor.add_argument("--web", action="store_true", help="serve the panel to a browser")
    monitor.add_argument("--host", default=None)
    monitor.add_argument("--port", type=int, default=None)

    token = sub.add_parser("monitor-token",
                           help="print the control API's read-only monitor token (made on "
                           "first use); --admin prints the token that may also change things")
    _paths(token)
    token.add_argument("--admin", action="store_true",
                       help="the admin token: configure, start and stop channels, run tests, "
                       "chat (keep it off devices that can be lost)")

    chat = sub.add_parser("chat", help="talk to the assistant in this terminal")
    _paths(chat)
    chat.add_argument("-m", "--message", help="send one message, print the reply and exit")

    check = sub.add_parser("check", help="validate the config file and list problems")
    _paths(check)

    pairing = sub.add_parser("pairing", help="list, approve or reject pairing requests from "
                             "new senders")
    _paths(pairing)
    pairing.add_argument("action", choices=["list", "approve", "reject"])
    pairing.add_argument("code", nargs="?", help="the 8-character code the sender received")

    groups = sub.add_parser("groups", help="list, approve or reject the group chats that asked "
                            "to talk to the bot (group_policy allowlist)")
    _paths(groups)
    groups.add_argument("action", choices=["list", "approve", "reject"])
    groups.add_argument("channel", nargs="?", help="the channel's name in the config")
    groups.add_argument("chat", nargs="?", help="the group's chat id, as the notice and "
                        "`groups list` show it")

    identities = sub.add_parser("identities", help="list, link or unlink the accounts that are "
                                "one person (they share one memory; people link their own "
                                "with /link in chat)")
    _paths(identities)
    identities.add_argument("action", choices=["list", "link", "unlink"])
    identities.add_argument("account", nargs="*", metavar="CHANNEL SENDER",
                            help="link: two accounts, CHANNEL SENDER CHANNEL SENDER; unlink: "
                            "one (sender ids as `identities list` and the logs show them)")

    api_key = sub.add_parser("api-key", help="issue, list or revoke the client keys of an "
                             "OpenAI-compatible API channel")
    _paths(api_key)
    api_key.add_argument("action", choices=["issue", "list", "revoke"])
    api_key.add_argument("channel", help="the channel's name in the config")
    api_key.add_argument("client", nargs="?", help="who the key is for (names the "
                         "conversation in logs)")

    dead = sub.add_parser("dead-letters", help="list or show the inbound messages the journal "
                          "could not store (kept raw with the reason; not answered)")
    _paths(dead)
    dead.add_argument("action", choices=["list", "show"])
    dead.add_argument("id", nargs="?", type=int, help="the dead letter's number (show)")
    dead.add_argument("--channel", default=None, help="list: only this channel's")

    _schedules_parser(sub)

    migrate = sub.add_parser("migrate", help="copy this data directory's SQLite database to "
                             "an empty PostgreSQL database (stop the gateway first), then "
                             "check every table's count")
    _paths(migrate)
    migrate.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:"
                         "5432/dbname; the password from PYCLAW_STORAGE_PASSWORD or the secret "
                         "store (storage.password), else asked for")

    secret = sub.add_parser("secret", help="store or remove a secret in the OS keyring")
    _paths(secret)
    secret.add_argument("action", choices=["set", "delete"])
    secret.add_argument("key", help="e.g. channels.telegram.token or providers.openai.api_key")
    return parser


def _schedules_parser(sub: Any) -> None:
    jobs = sub.add_parser("schedules", help="list, add, pause, resume or delete scheduled "
                          "messages and tasks (works beside a running gateway)")
    _paths(jobs)
    jobs.add_argument("action", choices=["list", "add", "pause", "resume", "delete"])
    jobs.add_argument("id", nargs="?", type=int, help="the job's number (pause, resume, delete)")
    jobs.add_argument("--channel", help="add: the channel's name in the config (list: only "
                      "this channel's)")
    jobs.add_argument("--chat", help="add: the chat id, as Logs shows it")
    jobs.add_argument("--thread", default=None, help="add: a thread or topic in the chat")
    what = jobs.add_mutually_exclusive_group()
    what.add_argument("--text", help="add: send this message as written")
    what.add_argument("--task", help="add: have the assistant answer this; the answer is sent")
    jobs.add_argument("--at", help="add, once: an ISO time, e.g. 2026-12-07T09:00 with --tz, "
                      "or 2026-12-07T09:00+01:00")
    jobs.add_argument("--in-minutes", type=float, default=None, help="add, once: minutes from now")
    jobs.add_argument("--cron", help="add, recurring: five fields, e.g. '0 9 * * MON'")
    jobs.add_argument("--tz", default=None, help="add: IANA time zone, e.g. Europe/Paris "
                      "(needed for --cron and for --at without an offset)")
    jobs.add_argument("--missed", choices=["run_once", "skip"], default="run_once",
                      help="add: a run missed while the gateway was down is sent once when it "
                      "is back (run_once, the default) or left out (skip)")


def _run_on_fast_loop(main: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run`` on uvloop where it is installed (Linux, macOS).

    The headless gateway spends its CPU on sockets and task switches; uvloop cut
    ~10 % of the CPU per message (bench/RESULTS.md, section 4). Windows has no
    uvloop and keeps the standard loop.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pyclaw_app.runtime import setup_logging

    setup_logging()
    config = getattr(args, "config", None)
    data_dir = getattr(args, "data_dir", None)
    if args.command == "gateway":
        return _run_on_fast_loop(_run_gateway(config, data_dir))
    if args.command == "chat":
        return asyncio.run(_run_chat(config, data_dir, args.message))
    if args.command == "check":
        return _check(config, data_dir)
    if args.command == "monitor":
        return _run_monitor(args.url, args.token, web=args.web, host=args.host, port=args.port)
    if args.command == "monitor-token":
        from pyclaw_app.control.rights import control_tokens
        from pyclaw_app.secrets import open_secret_store

        tokens = control_tokens(open_secret_store(data_dir or default_data_dir()))
        print(tokens.admin if args.admin else tokens.monitor)
        return 0
    if args.command == "pairing":
        return asyncio.run(_pairing(config, data_dir, args.action, args.code))
    if args.command == "groups":
        return asyncio.run(_groups(config, data_dir, args.action, args.channel, args.chat))
    if args.command == "identities":
        return asyncio.run(_identities(config, data_dir, args.action, args.account))
    if args.command == "api-key":
        return asyncio.run(_api_key(config, data_dir, args.action, args.channel, args.client))
    if args.command == "dead-letters":
        return asyncio.run(_dead_letters(config, data_dir, args.action, args.id, args.channel))
    if args.command == "schedules":
        return asyncio.run(_schedules(config, data_dir, args))
    if args.command == "secret":
        return _secret(data_dir, args.action, args.key)
    if args.command == "migrate":
        return asyncio.run(_migrate(data_dir, args.to))
    return _run_ui(config, data_dir, web=args.web, host=args.host, port=args.port)


def _run_ui(config: Path | None, data_dir: Path | None, *, web: bool, host: str | None,
            port: int | None) -> int:
    # The CLI is the one place above views: it starts them (design.md §2).
    from pyclaw_app.control.host import configure_host, open_local_plane
    from views.app import run
    from views.launch import LaunchError

    configure_host(config, data_dir)
    try:
        run(open_local_plane, web=web, host=host, port=port)
    except LaunchError as exc:
        print(f"pyclaw: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_monitor(url: str | None, token: str | None, *, web: bool, host: str | None,
                 port: int | None) -> int:
    """With a URL and token, connect at once; otherwise the connect screen asks (and a
    failed connect lands there too, with the reason)."""
    from views.app import run_monitor
    from views.launch import LaunchError

    if token is not None and url is None:
        print("pyclaw monitor: --token needs the gateway's URL", file=sys.stderr)
        return 2
    try:
        run_monitor(web=web, host=host, port=port, url=url, token=token)
    except LaunchError as exc:
        print(f"pyclaw monitor: {exc}", file=sys.stderr)
        return 2
    return 0


async def _run_gateway(config: Path | None, data_dir: Path | None) -> int:
    """Until SIGTERM or Ctrl+C, which end the process within ``SHUTDOWN_GRACE`` even if a
    channel's stop hangs (a second signal ends it at once)."""
    from pyclaw_app.control.host import GatewayHost
    from pyclaw_app.errors import StoreError
    from pyclaw_app.shutdown import ShutdownGuard

    stop = asyncio.Event()
    guard = ShutdownGuard()
    guard.install(stop.set)  # before the start, which may itself take a while
    starting = asyncio.create_task(GatewayHost.start(config, data_dir))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # a signal while standing by (or starting): nothing to stop yet
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, StoreError):
            await starting
        guard.stopped()
        return 0
    stopping.cancel()
    try:
        host = starting.result()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    runtime = host.runtime
    names = ", ".join(f"{n} ({rt.state.value})" for n, rt in runtime.gateway.channels.items())
    print(f"pyclaw gateway running; channels: {names}. Ctrl+C stops.", flush=True)
    try:
        await stop.wait()
    finally:
        await host.stop()
        guard.stopped()
    return 0


async def _run_chat(config: Path | None, data_dir: Path | None, message: str | None) -> int:
    from pyclaw_app.runtime import GatewayRuntime

    # Only the local channel: a gateway may be running beside us with the platform channels.
    runtime = await GatewayRuntime.start(config, data_dir, only_channels={"local"})
    try:
        from pyclaw_app.control.chat import ask

        gateway = runtime.gateway
        rt = gateway.channels.get("local")
        if rt is None or rt.connector is None:
            print("The local chat channel is not configured or not running "
                  "(add `local: {type: local}` under channels).", file=sys.stderr)
            return 2
        if message is not None:
            print(await ask(gateway, message, timeout=600))
            return 0
        print("Talking to the assistant. Empty line or Ctrl+D to quit.")
        loop = asyncio.get_running_loop()
        while True:
            try:
                text = await loop.run_in_executor(None, input, "you> ")
            except EOFError:
                break
            if not text.strip():
                break
            print(f"assistant> {await ask(gateway, text, timeout=600)}\n")
        return 0
    finally:
        await runtime.stop()


def _check(config: Path | None, data_dir: Path | None) -> int:
    from pyclaw_app.config import load_config
    from pyclaw_app.secrets import open_secret_store

    path = config or default_config_path()
    cfg = load_config(path, open_secret_store(data_dir or default_data_dir()))
    for error in cfg.errors:
        print(f"error: {error}")
    for warning in cfg.warnings:
        print(f"warning: {warning}")
    for name, entry in cfg.channels.items():
        state = "ok" if entry.config else "disabled by error"
        print(f"channel {name} ({entry.type}): {state}")
    print(f"providers: {', '.join(p.name for p in cfg.providers) or 'none (offline answers)'}")
    return 1 if cfg.errors else 0


@contextlib.asynccontextmanager
async def _open_store(config: Path | None, data_dir: Path | None) -> AsyncIterator[Store]:
    """The gateway's database, for commands that work beside a running gateway: both share
    the SQLite file (WAL), or the PostgreSQL database the config's ``storage`` names."""
    from pyclaw_app.config import load_config
    from pyclaw_app.secrets import open_secret_store
    from pyclaw_app.store import Store

    directory = data_dir or default_data_dir()
    storage = load_config(config or default_config_path(), open_secret_store(directory)).storage
    store = await Store(directory, storage).open()
    try:
        yield store
    finally:
        await store.close()


_DONE = {"approve": "approved", "reject": "rejected"}


async def _pairing(config: Path | None, data_dir: Path | None,
                   action: str, code: str | None) -> int:
    async with _open_store(config, data_dir) as store:
        if action == "list":
            pending = await store.access.pending()
            for p in pending:
                expires = time.strftime("%H:%M", time.localtime(p.expires_at))
                print(f"{p.code}  {p.channel}  sender {p.sender_id} ({p.sender_name or '?'})"
                      f"  expires {expires}")
            if not pending:
                print("no pending pairing requests")
            return 0
        if not code:
            print(f"pairing {action} needs the CODE", file=sys.stderr)
            return 2
        decide = store.access.approve if action == "approve" else store.access.reject
        decided = await decide(code)
        if decided is None:
            print(f"no pending, unexpired pairing code {code.upper()}", file=sys.stderr)
            return 1
        print(f"{_DONE[action]} {decided.sender_name or decided.sender_id} on "
              f"{decided.channel}")
        return 0


async def _groups(config: Path | None, data_dir: Path | None,
                  action: str, channel: str | None, chat: str | None
                  ) -> int:
    """Works beside a running gateway, which reads the decision on the group's next message."""
    if action != "list" and not (channel and chat):
        print(f"groups {action} needs the CHANNEL and CHAT", file=sys.stderr)
        return 2
    async with _open_store(config, data_dir) as store:
        if action == "list":
            known = await store.access.groups()
            for g in known:
                asked = time.strftime("%Y-%m-%d %H:%M", time.localtime(g.created_at))
                print(f"{g.status:<8}  {g.channel}  {g.chat}  asked by "
                      f"{g.requested_by or '?'} at {asked}")
            if not known:
                print("no group has asked yet")
            return 0
        assert channel is not None and chat is not None
        decide = store.access.approve_group if action == "approve" \
            else store.access.reject_group
        if await decide(channel, chat) is None:
            print(f"group {chat} never asked on channel {channel}; to allow a group in "
                  "advance, add it to allow_groups in the channel's config", file=sys.stderr)
            return 1
        print(f"{_DONE[action]} group {chat} on {channel}")
        return 0


async def _identities(config: Path | None, data_dir: Path | None,
                      action: str, words: list[str]) -> int:
    """Works beside a running gateway, which reads the links on every message."""
    wanted = {"list": 0, "link": 4, "unlink": 2}[action]
    if len(words) != wanted:
        shape = "CHANNEL SENDER CHANNEL SENDER" if action == "link" else "CHANNEL SENDER"
        print(f"identities {action} needs {shape}" if wanted else
              "identities list takes no accounts", file=sys.stderr)
        return 2
    async with _open_store(config, data_dir) as store:
        if action == "list":
            people = await store.identities.list_all()
            for person in people:
                accounts = ", ".join(f"{a.channel} {a.sender_id}"
                                     + (f" ({a.sender_name})" if a.sender_name else "")
                                     + f" via {a.via}" for a in person.accounts)
                print(f"person {person.id}  {person.name or '?'}: {accounts}")
            if not people:
                print("no linked accounts (people link theirs with /link in chat)")
            return 0
        if action == "unlink":
            if not await store.identities.unlink(words[0], words[1]):
                print(f"{words[0]} {words[1]} is not linked to anyone", file=sys.stderr)
                return 1
            print(f"unlinked {words[0]} {words[1]}")
            return 0
        if words[:2] == words[2:]:
            print("an account cannot be linked to itself", file=sys.stderr)
            return 2
        person = await store.identities.link(
            await store.identities.known_account(words[0], words[1]),
            await store.identities.known_account(words[2], words[3]))
        accounts = ", ".join(f"{a.channel} {a.sender_id}" for a in person.accounts)
        print(f"linked: person {person.id} is {accounts}")
        return 0


async def _api_key(config: Path | None, data_dir: Path | None,
                   action: str, channel: str, client: str | None
                   ) -> int:
    """Works beside a running gateway, which reads the key table on every request."""
    from connectors.openai_api import keys
    if action != "list" and not client:
        print(f"api-key {action} needs the CLIENT name", file=sys.stderr)
        return 2
    async with _open_store(config, data_dir) as store:
        state = store.channel_state.of(channel)
        if action == "list":
            table = await keys.clients(state)
            for name, entry in sorted(table.items()):
                issued = time.localtime(entry.get("created", 0))
                print(f"{name}  issued {time.strftime('%Y-%m-%d %H:%M', issued)}")
            if not table:
                print(f"no client keys for channel {channel}")
            return 0
        assert client is not None
        if action == "revoke":
            if not await keys.revoke(state, client):
                print(f"channel {channel} has no key for {client}", file=sys.stderr)
                return 1
            print(f"revoked the key of {client} on {channel}")
            return 0
        try:
            key = await keys.issue(state, client)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(f"key for {client} on {channel} (shown once; only its hash is kept):")
        print(key)
        return 0


async def _dead_letters(config: Path | None, data_dir: Path | None,
                        action: str, dead_id: int | None,
                        channel: str | None) -> int:
    """Works beside a running gateway: both share the SQLite file (WAL)."""
    if action == "show" and dead_id is None:
        print("dead-letters show needs the ID", file=sys.stderr)
        return 2
    async with _open_store(config, data_dir) as store:
        if action == "list":
            letters = await store.dead_letters.list(channel=channel)
            for d in letters:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.ts))
                print(f"{d.id}  {when}  {d.channel}  {d.platform_id or '-'}  {d.size:,} bytes"
                      f"  {d.reason}")
            if not letters:
                print("no dead letters")
            return 0
        assert dead_id is not None
        letter = await store.dead_letters.get(dead_id)
        if letter is None or letter.raw is None:
            print(f"no dead letter {dead_id}", file=sys.stderr)
            return 1
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.ts))
        print(f"dead letter {letter.id} of channel {letter.channel}, {when}")
        print(f"platform id: {letter.platform_id or '-'}")
        print(f"reason: {letter.reason}")
        print(f"raw ({letter.size:,} bytes):")
        print(letter.raw.decode("utf-8", "backslashreplace"))
        return 0


async def _schedules(config: Path | None, data_dir: Path | None,
                     args: argparse.Namespace) -> int:
    """Works beside a running gateway, whose scheduler reads the table at least every few
    seconds."""
    from pyclaw_app.control.schedules import row_of, set_enabled
    from pyclaw_app.schedules import ScheduleError, format_time

    action = args.action
    if action in ("pause", "resume", "delete") and args.id is None:
        print(f"schedules {action} needs the job's ID (schedules list shows it)",
              file=sys.stderr)
        return 2
    async with _open_store(config, data_dir) as store:
        try:
            if action == "list":
                jobs = await store.schedules.jobs(channel=args.channel)
                for job in jobs:
                    row = row_of(job)
                    where = f"{row.channel} {row.chat}" + (f"/{row.thread}" if row.thread else "")
                    paused = f"paused ({row.paused_reason})" if row.paused_reason else "paused"
                    state = (paused if not row.enabled else "done" if row.next_run is None
                             else f"next {format_time(row.next_run, row.timezone)}")
                    print(f"{row.id}  {where}  {row.action}: {row.body!r}  {row.timing}  "
                          f"{state}  missed: {row.missed}  by {row.created_by}")
                if not jobs:
                    print("no scheduled jobs")
                return 0
            if action == "add":
                return await _add_schedule(store, config, data_dir, args)
            if action == "delete":
                if not await store.schedules.delete(args.id):
                    print(f"no job {args.id}", file=sys.stderr)
                    return 1
                print(f"deleted job {args.id}")
                return 0
            job = await set_enabled(store.schedules, args.id, action == "resume", time.time())
        except ScheduleError as exc:
            print(f"pyclaw schedules {action}: {exc}", file=sys.stderr)
            return 2
        if job is None:
            print(f"no job {args.id}", file=sys.stderr)
            return 1
        when = (f"; next run {format_time(job.next_run, job.when.tz)}" if job.next_run is not None
                else "")
        print(f"{'resumed' if job.enabled else 'paused'} job {job.id}{when}")
        return 0


async def _add_schedule(store: Store, config: Path | None, data_dir: Path | None,
                        args: argparse.Namespace) -> int:
    from pyclaw_app.config import load_config
    from pyclaw_app.control.schedules import create_job
    from pyclaw_app.schedules import format_time
    from pyclaw_app.secrets import open_secret_store

    if not (args.channel and args.chat) or (args.text is None and args.task is None):
        print("schedules add needs --channel, --chat and --text or --task", file=sys.stderr)
        return 2
    cfg = load_config(config or default_config_path(),
                      open_secret_store(data_dir or default_data_dir()))
    job = await create_job(store.schedules, cfg, time.time(), channel=args.channel,
                           chat=args.chat, thread=args.thread,
                           text=args.text if args.text is not None else args.task,
                           kind="text" if args.text is not None else "task", at=args.at,
                           in_minutes=args.in_minutes, cron=args.cron, timezone=args.tz,
                           missed=args.missed)
    assert job.next_run is not None
    print(f"scheduled job {job.id}: {job.when.describe()}; first run "
          f"{format_time(job.next_run, job.when.tz)}")
    return 0


async def _migrate(data_dir: Path | None, url: str) -> int:
    import os

    from pydantic import SecretStr, ValidationError

    from pyclaw_app.config_storage import (
        STORAGE_PASSWORD_ENV,
        STORAGE_PASSWORD_KEY,
        StorageConfig,
    )
    from pyclaw_app.errors import StoreError
    from pyclaw_app.secrets import open_secret_store
    from pyclaw_app.store import DB_NAME, open_database
    from pyclaw_app.store.copy import copy_sqlite_to

    directory = data_dir or default_data_dir()
    try:
        storage = StorageConfig(url=url)
    except ValidationError as exc:
        print(f"error: --to {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    password = storage.password_in_url() or os.environ.get(STORAGE_PASSWORD_ENV) \
        or open_secret_store(directory).get(STORAGE_PASSWORD_KEY)
    if not password and sys.stdin.isatty():
        password = getpass.getpass("PostgreSQL password (blank for none): ")
    if password:
        storage = storage.model_copy(update={"password": SecretStr(password)})
    target = open_database(directory, storage)
    try:
        await target.open()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        copies = await copy_sqlite_to(directory / DB_NAME, target)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await target.close()
    for copy in copies:
        print(f"{copy.table:<20} {copy.source_rows:>9} rows copied, {copy.target_rows} counted")
    print(f"done: every table's count matches. Set `storage: {{url: {url}}}` in the config "
          f"and keep the password in the secret store ({STORAGE_PASSWORD_KEY}).")
    return 0


def _secret(data_dir: Path | None, action: str, key: str) -> int:
    from pyclaw_app.secrets import open_secret_store

    store = open_secret_store(data_dir or default_data_dir())
    if action == "delete":
        store.delete(key)
        print(f"deleted {key}")
        return 0
    value = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass(
        f"value for {key}: ")
    if not value:
        print("no value given; nothing stored", file=sys.stderr)
        return 1
    store.set(key, value)
    print(f"stored {key} in the {store.backend} secret store")
    return 0


if __name__ == "__main__":
    sys.exit(main())
