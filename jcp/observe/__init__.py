"""Readers of the engine's Snapshot: the probes and /status (http), Prometheus metrics, and the
terminal progress display. They never change what the engine does."""
