"""Rocket.Chat: the REST API (``/api/v1``) and the realtime API (DDP over ``/websocket``)."""
