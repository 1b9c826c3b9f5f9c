"""Followers of the engine: the warm signal, purge (with its plan and ledger), pinning and the
runtime check. They read the Snapshot and the engine's events, act on the node through ports
the composition root hands them, and never stop the pulling, whatever happens to them."""
