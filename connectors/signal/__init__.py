"""Signal through signal-cli's JSON-RPC HTTP daemon."""
