"""The map's import rules, read from the source: the core imports no connector and no view,
and no module imports itself through a circle (type-only imports excepted)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pyclaw_app", "connectors", "views")
TOP_MODULES = ("cli", "main")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    found.update({m: ROOT / f"{m}.py" for m in TOP_MODULES})
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules ``module`` imports at run time (module level or inside functions)."""
    tree = ast.parse(path.read_text("utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return {_owner(n, known) for n in names if _owner(n, known)} - {module}


def _owner(name: str, known: set[str]) -> str:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {m: _imports(p, m, known) for m, p in sources.items()}


GRAPH = _graph()


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("pyclaw_app")))
def test_the_core_imports_no_connector_and_no_view(module: str) -> None:
    bad = sorted(i for i in GRAPH[module]
                 if i.split(".")[0] in ("connectors", "views") or i in TOP_MODULES)
    assert not bad, f"{module} imports {bad}"


def test_connectors_import_only_the_kit_model_and_errors_of_the_core() -> None:
    allowed = ("pyclaw_app.channels", "pyclaw_app.model", "pyclaw_app.errors",
               "pyclaw_app.backoff", "pyclaw_app.retry_after")
    bad = {m: sorted(i for i in deps if i.startswith("pyclaw_app")
                     and not i.startswith(allowed))
           for m, deps in GRAPH.items() if m.startswith("connectors")}
    assert not {m: d for m, d in bad.items() if d}


def test_no_module_imports_itself_through_a_circle() -> None:
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(GRAPH.get(module, ())):
            if dep.startswith(module + "."):
                continue  # a package importing its own submodules is not a circle
            if state.get(dep) == 1:
                if not module.startswith(dep + "."):  # a submodule importing its package
                    circles.append([*path[path.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_graph_is_read_at_all() -> None:
    """Guards the tests above against passing on an empty graph."""
    assert "pyclaw_app.channels.contract" in GRAPH["pyclaw_app.gateway.turn"] | set().union(
        *GRAPH.values())
    assert "pyclaw_app.channels" in GRAPH["connectors.local.runtime"]


GATEWAY_PROBE = """
import asyncio, sys
from pathlib import Path

import cli  # noqa: F401 - what `pyclaw gateway` loads, in its order
from pyclaw_app.channels import registry
from pyclaw_app.control.host import GatewayHost  # noqa: F401
from pyclaw_app.runtime import GatewayRuntime


async def main(config: str, data: str) -> None:
    runtime = await GatewayRuntime.open(Path(config), Path(data))
    try:
        for entry in runtime.gateway.config.channels.values():
            registry.connector_class(entry.type)  # what starting the channel imports
    finally:
        await runtime.store.close()
    print(" ".join(sorted(sys.modules)))


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""
SDKS_OF_OTHER_CHANNELS = ("discord", "slack_sdk", "nio", "linebot", "twilio", "slixmpp", "paho",
                          "dingtalk_stream", "aioimaplib", "microsoft_agents", "google")
NOT_FOR_THIS_GATEWAY = ("anthropic", "mcp", "flet", "flet_web", "psycopg",
                        *SDKS_OF_OTHER_CHANNELS)


PROVIDERS = {
    "openai": ("providers:\n"
               "  - {name: main, base_url: 'http://127.0.0.1:9/v1', model: some-model}\n"),
    "none": "",
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_gateway_imports_only_the_sdks_its_config_names(tmp_path: Path,
                                                           provider: str) -> None:
    """A gateway with the local channel and one Telegram channel loads python-telegram-bot,
    openai only with an OpenAI-compatible provider, and none of the SDKs it does not use:
    each costs start-up time and resident memory (anthropic alone ~80 MB, openai ~13 MB)."""
    config = tmp_path / "pyclaw.yaml"
    config.write_text(
        PROVIDERS[provider] +
        "channels:\n"
        "  local: {type: local}\n"
        "  telegram: {type: telegram}\n", "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCLAW_")}
    env.update(PYCLAW_SECRETS="file", PYCLAW_TELEGRAM_TOKEN="123:probe")
    done = subprocess.run([sys.executable, "-c", GATEWAY_PROBE, str(config), str(tmp_path / "d")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())
    loaded = {name.split(".")[0] for name in modules}
    assert {"telegram", "connectors.telegram.runtime"} <= loaded | modules  # it ran
    assert ("openai" in loaded) == (provider == "openai")
    assert not sorted(loaded & set(NOT_FOR_THIS_GATEWAY))
    channels = {name.split(".")[1] for name in modules if name.startswith("connectors.")}
    assert channels == {"local", "telegram"}  # not every channel type's manifest either
