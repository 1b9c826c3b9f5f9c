"""The engine: decide what to pull (plan), pull one image (job), and schedule sweeps."""
