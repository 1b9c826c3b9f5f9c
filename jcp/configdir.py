"""Reading the mounted ConfigMap directory: one consistent generation of its files."""

from __future__ import annotations

import os
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
)


def locate(path: Path) -> tuple[Path, Path | None]:
    """The image file and interval file to read for PATH (a config directory or an image file).

    A kubelet ConfigMap volume holds `..data -> ..<timestamp>/` and top-level symlinks through
    it; reading inside the resolved `..data` gives one consistent generation of both files.
    """
    if not path.exists():
        raise ConfigError([Problem(str(path), "no such file or directory")])
    if not path.is_dir():
        return path, None
    base = path
    data = path / "..data"
    if data.is_dir():
        base = data.resolve()
    found = [base / name for name in IMAGE_FILES if (base / name).is_file()]
    if not found:
        raise ConfigError(
            [Problem(str(path), f"no image file: expected {' or '.join(IMAGE_FILES)} in it")]
        )
    if len(found) > 1:
        raise ConfigError(
            [Problem(str(path), f"both {IMAGE_FILES[0]} and {IMAGE_FILES[1]} exist; keep one")]
        )
    interval = base / INTERVAL_FILE
    return found[0], interval if interval.is_file() else None


def read_files(path: Path) -> ConfigFiles:
    image_path, interval_path = locate(path)
    try:
        image_text = image_path.read_text(encoding="utf-8")
        interval_text = interval_path.read_text(encoding="utf-8") if interval_path else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(image_path), f"cannot read: {exc}")]) from exc
    display = path / image_path.name if path.is_dir() else path
    return ConfigFiles(
        image_file=str(display),
        image_text=image_text,
        interval_file=str(path / INTERVAL_FILE) if interval_path else None,
        interval_text=interval_text,
    )


def load_config(
    path: Path, *, interval_flag: float | None = None, env: Mapping[str, str] | None = None
) -> Config:
    return build_config(
        read_files(path), interval_flag=interval_flag, env=os.environ if env is None else env
    )
