"""Kubernetes label, annotation and taint keys: checked before jcp ever sends one.

The API rejects a malformed key with 422 Invalid at the first PATCH, which on a node agent is
a log line an hour into a rollout; checking at startup turns it into a usage error instead.
The syntax (the API's "Labels and Selectors" page) is checked in `jcp.model.selectors`, where
the config's `nodeSelector` keys are checked with it too.
"""

from __future__ import annotations

from jcp.model.selectors import key_problem

STATE_SUFFIX = "-state"
__all__ = ["STATE_SUFFIX", "key_problem", "label_problem", "state_annotation"]


def state_annotation(label: str) -> str:
    """The annotation beside LABEL that details the warm state: `<label>-state`."""
    return label + STATE_SUFFIX


def label_problem(label: str) -> str | None:
    """Why LABEL cannot be jcp's warm label (its `-state` annotation must be valid too)."""
    return key_problem(label) or key_problem(state_annotation(label))
