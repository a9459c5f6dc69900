"""Flet entry point (`flet run`, `flet build`): the control panel on an in-process gateway.

`flet run` executes this file as a script, so the `__main__` guard is what runs;
`python main.py --web` serves the same app to a browser instead of a window.
"""

from __future__ import annotations

import sys

from pyclaw_app.control.local import open_local_plane
from views.app import run

if __name__ == "__main__":
    run(open_local_plane, web="--web" in sys.argv[1:])
