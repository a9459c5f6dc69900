"""Write the [tool.flet.<desktop>] dependency lists of pyproject.toml from its `gateway` extra.

`flet build` reads only [tool.flet.<platform>] dependencies, and cannot install
this project's own extras, so those lists must spell the packages out. They are
generated here from one place, the extras: `gateway` expanded through the
per-channel extras, each requirement's environment marker evaluated for the
platform (and then dropped), and flet-desktop left out (`flet build` brings its
own client). `python .ci/flet_deps.py` rewrites them; `--check` only compares
(tests/test_packaging.py runs it).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PLATFORMS = {
    "macos": {"sys_platform": "darwin", "platform_system": "Darwin",
              "platform_machine": "arm64"},
    "windows": {"sys_platform": "win32", "platform_system": "Windows",
                "platform_machine": "AMD64"},
    "linux": {"sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64"},
}
LEFT_OUT = {"flet-desktop"}


def _expand(extras: dict[str, list[str]], name: str) -> list[Requirement]:
    found: list[Requirement] = []
    for line in extras[name]:
        req = Requirement(line)
        if req.name == "pyclaw":
            for extra in sorted(req.extras, key=list(extras).index):
                found += _expand(extras, extra)
        else:
            found.append(req)
    return found


def _pinned(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def wanted(text: str) -> dict[str, list[str]]:
    extras = tomllib.loads(text)["project"]["optional-dependencies"]
    lists: dict[str, list[str]] = {}
    for platform, env in PLATFORMS.items():
        reqs = [r for r in _expand(extras, "gateway") if r.name not in LEFT_OUT
                and (r.marker is None or r.marker.evaluate(env))]
        lists[platform] = [_pinned(r) for r in reqs]
    return lists


def render(text: str) -> str:
    for platform, reqs in wanted(text).items():
        items = "".join(f'    "{r}",\n' for r in reqs)
        block = f"[tool.flet.{platform}]\ndependencies = [\n{items}]"
        text, n = re.subn(rf"\[tool\.flet\.{platform}\]\ndependencies = \[\n.*?\n\]", block,
                          text, flags=re.S)
        if n != 1:
            raise SystemExit(f"pyproject.toml has no [tool.flet.{platform}] dependencies list")
    return text


def main(argv: list[str]) -> int:
    text = PYPROJECT.read_text("utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("pyproject.toml: [tool.flet.*] dependencies are out of date; run "
                  "python .ci/flet_deps.py", file=sys.stderr)
            return 1
        return 0
    PYPROJECT.write_text(new, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
