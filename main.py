"""Flet entry point (`flet run`, `flet build`): the control panel, local or as a monitor.

`flet run` executes this file as a script, so the `__main__` guard is what runs;
`python main.py --web` serves the same app to a browser instead of a window.

Monitor mode (the connect screen, then a gateway elsewhere over its control API)
when flet.toml says `mode = "monitor"`, or when the gateway's packages are not
installed: the Android build carries only flet, httpx and pyyaml, so this path
must not import pyclaw_app.control.local.
"""

from __future__ import annotations

import sys

from views.app import run, run_monitor, wants_monitor
from views.settings import load_settings


def main(argv: list[str]) -> None:
    web = "--web" in argv
    settings = load_settings()
    if wants_monitor(settings):
        run_monitor(web=web, settings=settings)
        return
    from pyclaw_app.control.host import open_local_plane

    run(open_local_plane, web=web, settings=settings)


if __name__ == "__main__":
    main(sys.argv[1:])
