"""Write a directory the way kubelet updates a ConfigMap or Secret volume.

Kubelet's AtomicWriter puts each generation in a `..<timestamp>` directory, swaps the `..data`
symlink to it by rename, and keeps top-level symlinks `name -> ..data/name`. Watchers see
events on `..data`, never on the file names users edit; tests must produce exactly that.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path


def write_volume(root: Path, files: dict[str, str | bytes]) -> None:
    """Publish FILES as the new generation of the volume at ROOT, atomically."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "..data"
    old = data.readlink() if data.is_symlink() else None
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{time.monotonic_ns()}"
    generation = root / stamp
    generation.mkdir()
    for name, content in files.items():
        path = generation / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    tmp = root / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp)
    tmp.rename(data)
    for name in files:
        link = root / name
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(f"..data/{name}")
    for entry in root.iterdir():
        if entry.is_symlink() and entry.name not in files and entry.name != "..data":
            entry.unlink()
    if old is not None and (root / old).is_dir() and old.name != stamp:
        shutil.rmtree(root / old)
