"""Matrix: a bot account on any homeserver, read by the client-server ``/sync`` long poll."""
