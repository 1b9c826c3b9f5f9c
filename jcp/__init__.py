"""jcp, the JARVICE cache puller: keeps a node's Docker image cache warm."""

__version__ = "0.1.0"
