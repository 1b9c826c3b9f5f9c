"""Kubernetes label, annotation and taint keys: checked before jcp ever sends one.

The API rejects a malformed key with 422 Invalid at the first PATCH, which on a node agent is
a log line an hour into a rollout; checking at startup turns it into a usage error instead.
Syntax from the API's "Labels and Selectors" page: an optional DNS-subdomain prefix (at most
253 characters) and `/`, then a name of at most 63 characters of alphanumerics, `-`, `_` and `.`
that begins and ends with an alphanumeric.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
STATE_SUFFIX = "-state"


def key_problem(key: str) -> str | None:
    """Why KEY is not a valid label/annotation/taint key, or None if it is."""
    if key.count("/") > 1:
        return f"{key!r} has more than one '/'"
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return f"{key!r} has an empty prefix before '/'"
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return f"prefix {prefix!r} of {key!r} is not a DNS subdomain (lower case, at most 253)"
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        return (
            f"name {name!r} of {key!r} must be 1-63 characters of letters, digits, '-', '_' "
            "and '.', beginning and ending with a letter or digit"
        )
    return None


def state_annotation(label: str) -> str:
    """The annotation beside LABEL that details the warm state: `<label>-state`."""
    return label + STATE_SUFFIX


def label_problem(label: str) -> str | None:
    """Why LABEL cannot be jcp's warm label (its `-state` annotation must be valid too)."""
    return key_problem(label) or key_problem(state_annotation(label))
