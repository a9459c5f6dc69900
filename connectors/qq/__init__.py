"""QQ through a OneBot v11 implementation (NapCat, go-cqhttp, Lagrange.OneBot) over its
forward WebSocket."""
