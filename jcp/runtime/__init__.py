"""Adapters to the container runtimes behind one protocol (`base.ImageRuntime`): Docker through
aiodocker, containerd and CRI-O through the CRI, and an in-memory fake held to the same
contract test. Each adapter owns its wire formats and maps its errors to the model's classes."""
