"""The built-in local chat channel: the app's Chat view and ``pyclaw chat`` talk through it."""
