"""The purge ledger: which images jcp itself pulled onto this node, in a small JSON file.

Purge may remove an image only if jcp pulled it: an image pulled by hand or by the kubelet,
even of the same repository, must stay. No runtime records who pulled what, so jcp writes it
down, and the file is the only authority. Doubt about it must stop purge, never guess: a file
that is too large, unreadable, not JSON, of the wrong shape or failing its checksum makes the
ledger *unusable* (`owned()` is empty, `problem` says why). A missing file is an empty ledger
marked *new*: jcp has no history on this node, so nothing older than now is its to remove.

Writes are atomic (a temp file in the same directory, fsync, rename, fsync of the directory):
after a crash, or a write cut short by a full disk, the file is the old ledger or the new one.
A failed write is remembered (`write_failures`, `write_error`, `failing_since`) for /status and
the metrics; what was recorded stays in memory and goes out with the next save that succeeds.
The checksum catches what atomicity cannot: a file damaged later, or edited by hand, that still
parses.

Format, version 1:
    {"version": 1,
     "images": {"<reference>": {"pulledAt": "2024-05-01T10:00:00Z", "id": "sha256:..."}},
     "sha256": "<hex digest of the canonical JSON of images>"}
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jcp.model.errors import JcpError

VERSION = 1
MAX_BYTES = 4 * 1024 * 1024
"""A ledger of 10,000 images is about 1.5 MB; anything larger was not written by jcp."""
UNUSABLE_SUFFIX = ".unusable"


class LedgerError(JcpError):
    """The ledger could not be written; the text names the file and the system's reason."""


class _NotALedgerError(Exception):
    """Why the file's content is not a ledger."""


@dataclass(frozen=True)
class Entry:
    image: str
    """The normalised reference jcp pulled (`str(ImageRef)`)."""
    image_id: str | None
    """The image id the runtime gave it (`sha256:...`), None when it did not say."""
    pulled: float
    """Unix time of the pull, to the second."""


class Ledger:
    """The images jcp pulled here. Change it with `record`/`forget`, persist with `save`."""

    def __init__(
        self, path: Path, entries: Mapping[str, Entry], *, new: bool, problem: str | None
    ) -> None:
        self.path = path
        self.new = new
        """No ledger file existed when this one was loaded: jcp has no history on this node."""
        self.problem = problem
        """Why the file on disk cannot be trusted; None when it can."""
        self._entries = dict(entries)
        self._changes = 1 if new or problem else 0  # the first save creates/replaces the file
        self._saved = 0
        self._quarantined = False
        self._lock = asyncio.Lock()
        self.write_failures = 0
        """Saves that failed in the life of this process."""
        self.write_error: str | None = None
        """Why the last save failed; None once one succeeds (or before any failed)."""
        self.failing_since: float | None = None
        """Unix time of the first failure of the current episode; None while writes succeed."""

    @classmethod
    def load(cls, path: Path) -> Ledger:
        """Read PATH; never raises: trouble makes an unusable ledger that says why."""
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return cls(path, {}, new=True, problem=None)
        except OSError as exc:
            return cls(path, {}, new=False, problem=f"cannot read {path}: {exc.strerror or exc}")
        if len(raw) > MAX_BYTES:
            problem = f"{path} is larger than {MAX_BYTES // 2**20} MiB: not a ledger jcp wrote"
            return cls(path, {}, new=False, problem=problem)
        try:
            entries = _parse(raw)
        except _NotALedgerError as why:
            return cls(path, {}, new=False, problem=f"{path}: {why}")
        return cls(path, entries, new=False, problem=None)

    @classmethod
    async def open(cls, path: Path) -> Ledger:
        return await asyncio.to_thread(cls.load, path)

    @property
    def usable(self) -> bool:
        """Whether purge may trust this ledger; False for the life of this process once not."""
        return self.problem is None

    @property
    def state(self) -> str:
        """`new`, `ok` or `unusable: <why>`, for logs and /status."""
        if self.problem is not None:
            return f"unusable: {self.problem}"
        return "new" if self.new else "ok"

    @property
    def dirty(self) -> bool:
        return self._changes != self._saved

    def record(self, image: str, image_id: str | None, *, at: float | None = None) -> None:
        """jcp pulled IMAGE (absent before, or refreshed to a new id): it is jcp's."""
        pulled = float(int(time.time() if at is None else at))
        self._entries[image] = Entry(image, image_id, pulled)
        self._changes += 1

    def forget(self, image: str) -> None:
        if self._entries.pop(image, None) is not None:
            self._changes += 1

    def owned(self) -> set[str]:
        """Images purge may consider; empty while the ledger is unusable."""
        return set(self._entries) if self.usable else set()

    def ids(self) -> dict[str, str | None]:
        """Owned image -> the id jcp pulled; empty while the ledger is unusable."""
        return {k: e.image_id for k, e in self._entries.items()} if self.usable else {}

    def health(self) -> dict[str, object]:
        """The ledger as /status shows it: trust, size, and whether writes succeed."""
        return {
            "path": str(self.path),
            "state": self.state,
            "images": len(self._entries),
            "write_ok": self.write_error is None,
            "write_error": self.write_error,
            "failing_since": self.failing_since,
            "write_failures": self.write_failures,
            "unsaved_changes": self.dirty,
        }

    def entries(self) -> dict[str, Entry]:
        """Everything recorded, usable or not (for /status and tests)."""
        return dict(self._entries)

    async def save(self) -> None:
        """Write the ledger if it changed. Raises LedgerError; the file is then unchanged.

        An unusable file is first renamed to `<name>.unusable` (kept for a person to read),
        then replaced by what this process recorded. This process still purges nothing; the
        next one trusts the new file, which can only lack images (so purge removes fewer).
        """
        async with self._lock:
            if not self.dirty:
                return
            changes = self._changes
            data = _render(self._entries)
            quarantine = self.problem is not None and not self._quarantined
            try:
                await asyncio.to_thread(_write, self.path, data, quarantine=quarantine)
            except OSError as exc:
                self.write_failures += 1
                self.write_error = f"cannot write the ledger {self.path}: {exc.strerror or exc}"
                if self.failing_since is None:
                    self.failing_since = time.time()
                raise LedgerError(self.write_error) from None
            self.write_error, self.failing_since = None, None
            self._saved = changes
            self._quarantined = self._quarantined or quarantine


def _render(entries: Mapping[str, Entry]) -> bytes:
    images = {
        e.image: {"pulledAt": _iso(e.pulled), "id": e.image_id}
        for e in sorted(entries.values(), key=lambda e: e.image)
    }
    doc = {"version": VERSION, "images": images, "sha256": _digest(images)}
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


def _digest(images: object) -> str:
    canonical = json.dumps(images, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(raw: bytes) -> dict[str, Entry]:
    if not raw.strip():
        raise _NotALedgerError("the file is empty (a torn write?)")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _NotALedgerError(f"not UTF-8 at byte {exc.start} (corrupt?)") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise _NotALedgerError(
            f"not valid JSON at {where}: {exc.msg} (a torn or corrupt write?)"
        ) from None
    if not isinstance(doc, dict):
        raise _NotALedgerError(f"expected a JSON object, found {type(doc).__name__}")
    version = doc.get("version")
    if type(version) is not int:
        raise _NotALedgerError(f"'version' must be an integer, found {version!r}")
    if version != VERSION:
        raise _NotALedgerError(f"version {version} is not one this jcp understands ({VERSION})")
    images, digest = doc.get("images"), doc.get("sha256")
    if not isinstance(images, dict):
        raise _NotALedgerError(f"'images' must be an object, found {type(images).__name__}")
    if not isinstance(digest, str):
        raise _NotALedgerError("'sha256' is missing")
    if digest != _digest(images):
        raise _NotALedgerError(
            "the checksum does not match the images (damaged, or edited by hand)"
        )
    entries: dict[str, Entry] = {}
    for image, value in images.items():
        where = f"images[{image!r}]"
        if not image or not isinstance(value, dict):
            raise _NotALedgerError(f"{where} must be a non-empty reference mapped to an object")
        image_id, pulled = value.get("id"), value.get("pulledAt")
        if image_id is not None and not isinstance(image_id, str):
            raise _NotALedgerError(f"{where}.id must be a string or null, found {image_id!r}")
        try:
            when = datetime.fromisoformat(pulled) if isinstance(pulled, str) else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise _NotALedgerError(
                f"{where}.pulledAt must be an ISO 8601 UTC time, found {pulled!r}"
            )
        entries[image] = Entry(image, image_id, when.timestamp())
    return entries


def _write(path: Path, data: bytes, *, quarantine: bool) -> None:
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    if quarantine and path.is_file():
        path.replace(path.with_name(path.name + UNUSABLE_SUFFIX))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power loss
    finally:
        os.close(dir_fd)
