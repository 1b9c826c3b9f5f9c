"""The image list and interval, parsed at the edge into frozen dataclasses.

A config is accepted whole or rejected whole: every problem in it is collected (file, entry
index, key, what was expected) and raised together as one `ConfigError`, so that the caller can
keep the last good config and the operator sees all the mistakes at once.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jcp.model import jsonsafe
from jcp.model.arch import SUPPORTED, canonical_arch
from jcp.model.problems import (
    MAX_INTERVAL,
    MAX_PROBLEMS,
    MIN_INTERVAL,
    ConfigError,
    IntervalError,
    Problem,
    Severity,
    _Problems,
    _quote,
    parse_interval,
)
from jcp.model.refs import (
    DOCKER_HUB,
    ImageRef,
    InvalidReferenceError,
    ambiguous_host,
    normalise_host,
    parse_reference,
)

IMAGE_FILES = ("image.config", "image.json")
INTERVAL_FILE = "interval"
INTERVAL_ENV = "PULL_INTERVAL"
DEFAULT_INTERVAL = 300.0
DEFAULT_SECRET = "jarvice-docker"  # noqa: S105 - a secret name, not a value
KNOWN_KEYS = frozenset({"ref", "registry", "private", "config", "arch"})
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

    def target_for(self, node_arch: str) -> ImageRef | None:
        """What a node of this architecture pulls; None means the entry is skipped there."""
        if self.arch is None:
            return self.default_ref
        return dict(self.arch).get(node_arch)


TargetKey = tuple[ImageRef, bool, str]


@dataclass(frozen=True)
class Target:
    """An image a node should hold, and the entry that asks for it."""

    image: ImageRef
    entry: ImageEntry

    @property
    def key(self) -> TargetKey:
        """Identity across reloads: the same image with other credentials is another target."""
        return (self.image, self.entry.private, self.entry.secret if self.entry.private else "")

    @property
    def registry(self) -> str:
        """The host pulled from; credentials are looked up for this, not for `entry.registry`."""
        return self.image.registry


@dataclass(frozen=True)
class Selection:
    """The part of a config that concerns one node architecture."""

    arch: str
    targets: tuple[Target, ...]
    skipped: tuple[ImageEntry, ...]


@dataclass(frozen=True)
class Config:
    entries: tuple[ImageEntry, ...]
    interval: float
    interval_source: str
    source: str
    digest: str
    warnings: tuple[Problem, ...] = field(default=())

    def select(self, node_arch: str) -> Selection:
        targets: list[Target] = []
        skipped: list[ImageEntry] = []
        seen: set[ImageRef] = set()
        for entry in self.entries:
            image = entry.target_for(node_arch)
            if image is None:
                skipped.append(entry)
            elif image not in seen:
                seen.add(image)
                targets.append(Target(image=image, entry=entry))
        return Selection(arch=node_arch, targets=tuple(targets), skipped=tuple(skipped))


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
        arch = self._arch(obj, registry, private)
        default_ref = None
        if "arch" not in obj and ref is not None and registry is not None:
            default_ref = self._reference("ref", ref, registry, private)
        if ref is None or registry is None or secret is None:
            return None
        if "arch" in obj and arch is None:
            return None
        if "arch" not in obj and default_ref is None:
            return None
        return ImageEntry(self.index, ref, registry, private, secret, arch, default_ref)

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
            else:
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


@dataclass(frozen=True)
class ConfigFiles:
    """The raw texts a config is made of, read from one consistent snapshot of the directory."""

    image_file: str
    image_text: str
    interval_file: str | None
    interval_text: str | None


def decode_files(
    image_file: str, image_data: bytes, interval_file: str | None, interval_data: bytes | None
) -> ConfigFiles:
    """The files' text: the image file strictly UTF-8 (a BOM allowed), else ConfigError.

    The interval is decoded leniently: parse_interval says what is wrong with it, and whether
    that is an error depends on --interval (see build_config).
    """
    try:
        image_text = jsonsafe.decode(image_data)
    except jsonsafe.JsonError as exc:
        raise ConfigError([Problem(image_file, str(exc))]) from None
    interval_text = None
    if interval_data is not None:
        interval_text = interval_data.removeprefix(codecs.BOM_UTF8).decode("utf-8", "replace")
    return ConfigFiles(image_file, image_text, interval_file, interval_text)


def build_config(
    files: ConfigFiles,
    *,
    interval_flag: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Turn raw texts into a Config, or raise ConfigError with every problem found.

    Interval precedence: the flag, then the `interval` file, then env PULL_INTERVAL, then 300 s.
    """
    env = {} if env is None else env
    entries, problems = parse_images(files.image_text, files.image_file)
    interval, source = DEFAULT_INTERVAL, "default"
    file_interval: float | None = None
    if files.interval_text is not None and files.interval_file is not None:
        try:
            file_interval = parse_interval(files.interval_text, files.interval_file)
        except IntervalError as exc:
            problems.append(
                Problem(
                    files.interval_file,
                    exc.reason,
                    severity="warning" if interval_flag is not None else "error",
                )
            )
    if interval_flag is not None:
        interval, source = interval_flag, "--interval"
    elif file_interval is not None:
        interval, source = file_interval, files.interval_file or INTERVAL_FILE
    elif env.get(INTERVAL_ENV, "").strip():
        try:
            interval = parse_interval(env[INTERVAL_ENV], f"env {INTERVAL_ENV}")
            source = f"env {INTERVAL_ENV}"
        except IntervalError as exc:
            problems.append(Problem(exc.source, exc.reason))
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    digest = hashlib.sha256(json.dumps([files.image_text, interval]).encode("utf-8")).hexdigest()
    return Config(
        entries=tuple(entries),
        interval=interval,
        interval_source=source,
        source=files.image_file,
        digest=digest,
        warnings=tuple(problems),
    )


__all__ = [
    "MAX_INTERVAL",
    "MAX_PROBLEMS",
    "MIN_INTERVAL",
    "ConfigError",
    "IntervalError",
    "Problem",
    "Severity",
    "parse_interval",
]
