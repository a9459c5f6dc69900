"""Slack channel: Socket Mode (default) or the Events API over HTTP, through slack-sdk.

``manifest`` (config model and spec, no SDK import) is what the registry loads
eagerly; ``runtime`` holds the connector and imports slack-sdk.
"""
