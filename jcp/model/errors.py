"""The base of jcp's domain errors: anything a user's input or the outside world can cause."""

from __future__ import annotations


class JcpError(Exception):
    """An error jcp reports to the operator and survives; never a bug."""
