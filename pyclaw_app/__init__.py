"""pyclaw's gateway core. Imports no Flet and no channel SDK."""

__version__ = "0.1.0"
