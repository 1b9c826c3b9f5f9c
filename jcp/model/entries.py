"""The entries of `image.config`, parsed one by one: every problem is collected with its file,
entry index and key (`config.py` turns them into one accepted or rejected config).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jcp.model import jsonsafe
from jcp.model.arch import SUPPORTED, canonical_arch
from jcp.model.problems import Problem, _Problems, _quote
from jcp.model.refs import (
    DOCKER_HUB,
    ImageRef,
    InvalidReferenceError,
    ambiguous_host,
    normalise_host,
    parse_reference,
)
from jcp.model.selectors import NodeSelector, SelectorParser

DEFAULT_SECRET = "jarvice-docker"  # noqa: S105 - a secret name, not a value
KNOWN_KEYS = frozenset(
    {"ref", "registry", "private", "config", "arch", "nodeSelector", "matchExpressions", "priority"}
)
# A 32-bit integer, as a PriorityClass value: wide enough for any ranking, and a number beyond
# it is a typo, not an intent.
MIN_PRIORITY, MAX_PRIORITY = -(2**31), 2**31 - 1
# Kubernetes Secret names are DNS-1123 subdomains; this also keeps `config` from naming a path
# outside the docker config root.
_SECRET_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:.]+\](:[0-9]{1,5})?$")


@dataclass(frozen=True)
class ImageEntry:
    """One object of `image.config`, with its references already normalised."""

    index: int
    ref: str
    registry: str
    private: bool
    secret: str
    arch: tuple[tuple[str, ImageRef], ...] | None
    default_ref: ImageRef | None
    selector: NodeSelector | None = None
    """The nodes the entry is for (`nodeSelector`, `matchExpressions`); None: every node."""
    priority: int = 0
    """Higher is pulled first (and held back last when the disk is short)."""

    def target_for(self, node_arch: str) -> ImageRef | None:
        """What a node of this architecture pulls; None means the entry is skipped there."""
        if self.arch is None:
            return self.default_ref
        return dict(self.arch).get(node_arch)


def _type_name(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return names.get(type(value), type(value).__name__)


def _describe(value: object) -> str:
    text = json.dumps(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{_type_name(value)} {text}"


class _EntryParser:
    """Parses one entry, appending problems instead of stopping at the first."""

    def __init__(self, file: str, index: int, problems: list[Problem]) -> None:
        self.file = file
        self.index = index
        self.problems = problems
        self.label: str | None = None

    def error(self, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, message, self.index, key, "error", self.label))

    def warn(self, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, message, self.index, key, "warning", self.label))

    def string(self, obj: Mapping[str, Any], key: str, default: str | None) -> str | None:
        if key not in obj:
            if default is None:
                self.error(key, "missing (required: a string)")
            return default
        value = obj[key]
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {_describe(value)}")
            return None
        if not value.strip():
            self.error(key, "must not be empty")
            return None
        return value

    def parse(self, obj: object) -> ImageEntry | None:
        if not isinstance(obj, dict):
            self.error(None, f"expected an object, got {_describe(obj)}")
            return None
        if isinstance(obj.get("ref"), str):
            self.label = obj["ref"][:60]
        for key in sorted(set(obj) - KNOWN_KEYS):
            self.warn(key, f"unknown key (known: {', '.join(sorted(KNOWN_KEYS))}); ignored")
        ref = self.string(obj, "ref", None)
        registry_raw = self.string(obj, "registry", DOCKER_HUB)
        registry = None
        if registry_raw is not None:
            registry = normalise_host(registry_raw)
            if not _HOST_RE.match(registry):
                self.error("registry", f"{_quote(registry_raw)} is not a registry host[:port]")
                registry = None
            elif ambiguous_host(registry):
                self.error(
                    "registry",
                    f"{_quote(registry_raw)} has no '.' or ':', so runtimes would read its "
                    "images as Docker Hub's; write the host with its domain or port",
                )
                registry = None
        private = obj.get("private", False)
        if not isinstance(private, bool):
            self.error("private", f"expected true or false, got {_describe(private)}")
            private = False
        secret = self.string(obj, "config", DEFAULT_SECRET)
        if secret is not None and not _SECRET_NAME_RE.match(secret):
            self.error(
                "config",
                f"{_quote(secret)} is not a Kubernetes secret name "
                "(lowercase letters, digits, '-' and '.')",
            )
            secret = None
        selectors = SelectorParser(self.error, self.warn, _describe)
        selector = selectors.parse(obj)
        priority = self._priority(obj)
        arch = self._arch(obj, registry, private)
        default_ref = None
        if "arch" not in obj and ref is not None and registry is not None:
            default_ref = self._reference("ref", ref, registry, private)
        if ref is None or registry is None or secret is None:
            return None
        if not selectors.ok or priority is None:
            return None
        if "arch" in obj and arch is None:
            return None
        if "arch" not in obj and default_ref is None:
            return None
        return ImageEntry(
            self.index, ref, registry, private, secret, arch, default_ref, selector, priority
        )

    def _priority(self, obj: Mapping[str, Any]) -> int | None:
        value = obj.get("priority", 0)
        if not isinstance(value, int) or isinstance(value, bool):
            self.error("priority", f"expected a whole number, got {_describe(value)}")
            return None
        if not MIN_PRIORITY <= value <= MAX_PRIORITY:
            self.error(
                "priority",
                f"{value} is out of range: expected {MIN_PRIORITY} to {MAX_PRIORITY} "
                "(a 32-bit integer, as a PriorityClass value)",
            )
            return None
        return value

    def _reference(self, key: str, text: str, registry: str, private: bool) -> ImageRef | None:
        try:
            image = parse_reference(text, default_registry=registry)
        except InvalidReferenceError as exc:
            why = str(exc) if len(str(exc)) <= 300 else str(exc)[:300] + "..."
            self.error(key, f"malformed image reference: {why}")
            return None
        if private and image.registry != registry:
            self.warn(
                key,
                f"pulls from {image.registry}, not from registry {registry}; "
                f"credentials are looked up for {image.registry}",
            )
        return image

    def _arch(
        self, obj: Mapping[str, Any], registry: str | None, private: bool
    ) -> tuple[tuple[str, ImageRef], ...] | None:
        if "arch" not in obj:
            return None
        value = obj["arch"]
        if not isinstance(value, dict):
            self.error(
                "arch", f"expected an object of architecture -> image, got {_describe(value)}"
            )
            return None
        if not value:
            self.warn("arch", "empty: no node will pull this entry")
        result: dict[str, ImageRef] = {}
        seen: set[str] = set()
        ok = True
        for name, ref in value.items():
            key = f"arch.{name}"
            arch = canonical_arch(name)
            if arch is None:
                self.warn(key, f"unknown architecture (known: {', '.join(SUPPORTED)}); ignored")
                continue
            if arch != name:
                self.warn(key, f"architecture {_quote(name)} is read as {arch!r}")
            if arch in seen:
                self.error(key, f"architecture {arch!r} is given twice")
                ok = False
                continue
            seen.add(arch)
            if not isinstance(ref, str):
                self.error(key, f"expected an image reference string, got {_describe(ref)}")
                ok = False
                continue
            image = self._reference(key, ref, registry or DOCKER_HUB, private)
            if image is None:
                ok = False
                continue
            result[arch] = image
        return tuple(sorted(result.items())) if ok else None


def _check_duplicates(file: str, entries: list[ImageEntry], problems: list[Problem]) -> None:
    reported: set[tuple[ImageRef, tuple[int, ...]]] = set()
    for arch in SUPPORTED:
        by_image: dict[ImageRef, list[ImageEntry]] = {}
        for entry in entries:
            image = entry.target_for(arch)
            if image is not None:
                by_image.setdefault(image, []).append(entry)
        for image, group in by_image.items():
            indices = tuple(e.index for e in group)
            if len(group) < 2 or (image, indices) in reported:
                continue
            reported.add((image, indices))
            listed = ", ".join(str(i) for i in indices[:10])
            if len(indices) > 10:
                listed += f", ... ({len(indices)} in all)"
            conflicting = {(e.private, e.secret) for e in group if e.private}
            if len(conflicting) > 1 or (conflicting and any(not e.private for e in group)):
                problems.append(
                    Problem(
                        file,
                        f"entries {listed} all pull {image} but disagree on 'private'/'config'",
                        group[-1].index,
                    )
                )
            elif len({e.selector for e in group}) == 1:  # other selectors: other nodes, no noise
                problems.append(
                    Problem(
                        file,
                        f"duplicate: entries {listed} all pull {image}; pulled once",
                        group[-1].index,
                        severity="warning",
                    )
                )


def parse_images(text: str, file: str) -> tuple[list[ImageEntry], list[Problem]]:
    """Parse the text of an image file; returns entries and all problems (errors and warnings)."""
    problems = _Problems()
    try:
        data = jsonsafe.loads(text)
    except jsonsafe.JsonError as exc:
        problems.append(Problem(file, str(exc)))
        return [], problems.result(file)
    if not isinstance(data, list):
        problems.append(
            Problem(file, f"expected a JSON list of image objects, got {_type_name(data)}")
        )
        return [], problems.result(file)
    if not data:
        problems.append(Problem(file, "no images configured", severity="warning"))
    entries: list[ImageEntry] = []
    for index, obj in enumerate(data):
        if problems.hopeless:
            problems.stopped = f"; stopped checking at entry {index} of {len(data)}"
            break
        entry = _EntryParser(file, index, problems).parse(obj)
        if entry is not None:
            entries.append(entry)
    _check_duplicates(file, entries, problems)
    return entries, problems.result(file)
