"""The image list and interval, parsed at the edge into frozen dataclasses.

A config is accepted whole or rejected whole: every problem in it is collected (file, entry
index, key, what was expected) and raised together as one `ConfigError`, so that the caller can
keep the last good config and the operator sees all the mistakes at once.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from jcp.model import jsonsafe
from jcp.model.entries import ImageEntry, parse_images
from jcp.model.problems import (
    MAX_INTERVAL,
    MAX_PROBLEMS,
    MIN_INTERVAL,
    ConfigError,
    IntervalError,
    Problem,
    Severity,
    parse_interval,
)
from jcp.model.refs import ImageRef

IMAGE_FILES = ("image.config", "image.json")
INTERVAL_FILE = "interval"
INTERVAL_ENV = "PULL_INTERVAL"
DEFAULT_INTERVAL = 300.0


class TargetKey(NamedTuple):
    """A target's identity across reloads: the same image with other credentials is another
    target (a fixed secret name must not reuse a permanent failure recorded for the old one)."""

    image: ImageRef
    private: bool
    secret: str
    """The secret's name for a private entry, else ''."""


@dataclass(frozen=True)
class Target:
    """An image a node should hold, and the entry that asks for it."""

    image: ImageRef
    entry: ImageEntry

    @functools.cached_property
    def key(self) -> TargetKey:
        """Identity across reloads: the same image with other credentials is another target."""
        return TargetKey(
            self.image, self.entry.private, self.entry.secret if self.entry.private else ""
        )

    @property
    def registry(self) -> str:
        """The host pulled from; credentials are looked up for this, not for `entry.registry`."""
        return self.image.registry

    @property
    def priority(self) -> int:
        """The entry's `priority`: higher is pulled first; size only breaks ties."""
        return self.entry.priority


LABELS_UNKNOWN = "node labels unknown"
"""Why an entry with a selector is skipped while jcp cannot read its node's labels."""


@dataclass(frozen=True)
class Skipped:
    """An entry this node does not pull, and why (`no arch.ppc64le`, `nodeSelector gpu=nvidia
    does not match`, `node labels unknown`)."""

    entry: ImageEntry
    reason: str

    @property
    def index(self) -> int:
        return self.entry.index

    @property
    def ref(self) -> str:
        return self.entry.ref

    @property
    def labels_unknown(self) -> bool:
        return self.reason == LABELS_UNKNOWN


@dataclass(frozen=True)
class Selection:
    """The part of a config that concerns one node: its architecture and its labels."""

    arch: str
    targets: tuple[Target, ...]
    """Highest priority first; entries of equal priority in config order."""
    skipped: tuple[Skipped, ...]
    labels: Mapping[str, str] | None = None
    """The labels selected against; None: unknown (entries with a selector are skipped)."""

    @property
    def waiting_for_labels(self) -> tuple[Skipped, ...]:
        """Entries skipped only because the node's labels are unknown."""
        return tuple(s for s in self.skipped if s.labels_unknown)


@dataclass(frozen=True)
class Config:
    entries: tuple[ImageEntry, ...]
    interval: float
    interval_source: str
    source: str
    digest: str
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def uses_node_labels(self) -> bool:
        """Some entry has a selector: the node's labels decide what it pulls."""
        return any(e.selector is not None for e in self.entries)

    def select(self, node_arch: str, labels: Mapping[str, str] | None = None) -> Selection:
        """What a node of NODE_ARCH with LABELS pulls (None: labels unknown, so no entry with a
        selector), highest priority first; every other entry skipped with its reason. An image
        that several entries select is pulled once, for the one of highest priority."""
        targets: list[Target] = []
        skipped: list[Skipped] = []
        seen: set[ImageRef] = set()
        for entry in sorted(self.entries, key=lambda e: (-e.priority, e.index)):
            image = entry.target_for(node_arch)
            reason = None
            if image is None:
                reason = f"no arch.{node_arch}"
            elif entry.selector is not None:
                reason = LABELS_UNKNOWN if labels is None else entry.selector.mismatch(labels)
            if reason is not None:
                skipped.append(Skipped(entry, reason))
            elif image not in seen:
                assert image is not None
                seen.add(image)
                targets.append(Target(image=image, entry=entry))
        skipped.sort(key=lambda s: s.index)
        return Selection(
            node_arch, tuple(targets), tuple(skipped), None if labels is None else dict(labels)
        )


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
    "LABELS_UNKNOWN",
    "MAX_INTERVAL",
    "MAX_PROBLEMS",
    "MIN_INTERVAL",
    "ConfigError",
    "ImageEntry",
    "IntervalError",
    "Problem",
    "Severity",
    "parse_images",
    "parse_interval",
]
