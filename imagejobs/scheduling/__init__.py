"""The hub, a client's one scheduler, and the ways to wait that subscribe to it."""
