"""containerd through the CRI: jcp against the kubelet's own behaviour (filled in below)."""

from __future__ import annotations

from typing import Any

from bench.contenders import missing
from bench.harness import Harness
from bench.sizes import Sizes

PARTS = ("devstack.containerd", "jcp.runtime.cri", "jcp.runtime.cri_api")


def containerd(h: Harness, sz: Sizes) -> dict[str, Any]:
    del h, sz
    for part in PARTS:
        why = missing(part)
        if why is not None:
            return {"skipped": why}
    return {"skipped": "not written yet"}


def report_lines(result: dict[str, Any]) -> list[str]:
    if "skipped" in result:
        return [f"skipped: {result['skipped']}"]
    return []
