"""Telegram channel: a Bot API bot via python-telegram-bot, polled by our own offset-safe loop."""
