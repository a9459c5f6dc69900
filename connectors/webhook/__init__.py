"""The generic signed webhook channel: HMAC-signed JSON in, the answer in the HTTP response or
POSTed, signed the same way, to a callback URL (docs/webhook-channel.md)."""
