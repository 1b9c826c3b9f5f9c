"""Reading the mounted ConfigMap directory: one consistent generation of its files.

Every way the directory can be wrong (missing, unreadable, a directory or a FIFO where a file
should be, a file larger than a ConfigMap can hold) is a ConfigError naming the path, never an
OSError; no read blocks (a FIFO is refused, not opened for reading) and none is unbounded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from jcp.model.config import (
    IMAGE_FILES,
    INTERVAL_FILE,
    Config,
    ConfigError,
    ConfigFiles,
    Problem,
    build_config,
    decode_files,
)
from jcp.model.jsonsafe import MAX_BYTES

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _problem(path: Path | str, message: str) -> ConfigError:
    return ConfigError([Problem(str(path), message)])


def read_bounded(path: Path, shown: Path | None = None) -> bytes:
    """The bytes of the regular file PATH, reading at most MAX_BYTES + 1; SHOWN names it.

    O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    """
    name = shown or path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise _problem(name, f"cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise _problem(name, f"cannot read: is {kind}, not a file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, min(1 << 16, MAX_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _problem(name, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise _problem(name, "larger than 1 MiB, the most a ConfigMap can hold")
    return b"".join(chunks)


def locate(path: Path) -> tuple[Path, Path | None]:
    """The image file and interval file to read for PATH (a config directory or an image file).

    A kubelet ConfigMap volume holds `..data -> ..<timestamp>/` and top-level symlinks through
    it; reading inside the resolved `..data` gives one consistent generation of both files.
    Entries that exist but are not files (a directory named image.config, a dangling symlink)
    are found here and refused by read_bounded, so the error names them and says why.
    """
    try:
        if not path.exists():
            raise _problem(path, "no such file or directory")
        if not path.is_dir():
            return path, None
        base = path
        data = path / "..data"
        if data.is_dir():
            base = Path(os.path.realpath(data))
        found = [base / name for name in IMAGE_FILES if os.path.lexists(base / name)]
        interval = base / INTERVAL_FILE
        has_interval = os.path.lexists(interval)
    except OSError as exc:
        raise _problem(path, f"cannot read: {exc.strerror}") from None
    if not found:
        raise _problem(path, f"no image file: expected {' or '.join(IMAGE_FILES)} in it")
    if len(found) > 1:
        raise _problem(path, f"both {IMAGE_FILES[0]} and {IMAGE_FILES[1]} exist; keep one")
    return found[0], interval if has_interval else None


def read_files(path: Path) -> ConfigFiles:
    image_path, interval_path = locate(path)
    is_dir = interval_path is not None or image_path != path
    image_file = path / image_path.name if is_dir else path
    interval_file = path / INTERVAL_FILE
    image_data = read_bounded(image_path, image_file)
    interval_data = read_bounded(interval_path, interval_file) if interval_path else None
    return decode_files(
        str(image_file),
        image_data,
        str(interval_file) if interval_path else None,
        interval_data,
    )


def load_config(
    path: Path, *, interval_flag: float | None = None, env: Mapping[str, str] | None = None
) -> Config:
    return build_config(
        read_files(path), interval_flag=interval_flag, env=os.environ if env is None else env
    )
