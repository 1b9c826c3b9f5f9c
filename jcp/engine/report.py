"""The log lines of pulls and sweeps, worded as the original's (`Pulling X from R`,
`ERROR: failed pulling X from R: ...`) so existing greps and alerts keep working.

Per-image "Up to date" lines are at debug level: a steady sweep of 1000 images logs its
summary, not 1000 lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from jcp.engine.state import Sweep
from jcp.model.config import Config, Selection, Target, TargetKey
from jcp.model.failures import Failure
from jcp.model.refs import ImageRef
from jcp.model.results import Outcome, PullResult

log = logging.getLogger("jcp.engine")


def pull_started(target: Target, attempt: int, *, present: bool, why: str) -> None:
    """A refresh of a present image is at debug level: at 1000 images, a steady sweep through
    the runtime (`--refresh pull`, or a registry that cannot be asked) must stay quiet."""
    again = f" (attempt {attempt})" if attempt > 1 else ""
    log.log(
        logging.DEBUG if present and attempt == 1 else logging.INFO,
        f"Pulling {target.image} from {target.registry}{again}",
        extra={
            "fields": {
                "event": "pull_start",
                "image": str(target.image),
                "registry": target.registry,
                "attempt": attempt,
                "why": why,
            }
        },
    )


def pull_finished(result: PullResult, *, repeat: bool) -> None:
    image, registry = result.image, result.registry
    fields = {
        "image": str(image),
        "registry": registry,
        "outcome": str(result.outcome),
        "duration": round(result.duration, 3),
        "bytes": result.bytes,
        "attempts": result.attempts,
    }
    if result.outcome == Outcome.FAILED:
        note = ""
        if repeat:
            note = " (permanent: not retried until the config or the secret changes)"
        log.error(
            f"ERROR: failed pulling {image} from {registry}: {result.reason}: "
            f"{result.message}{note}",
            extra={"fields": {"event": "pull_failed", **fields, "reason": str(result.reason)}},
        )
    elif result.outcome == Outcome.CANCELLED:
        log.info(
            f"Cancelled pulling {image} from {registry}: {result.message}",
            extra={"fields": {"event": "pull_cancelled", **fields}},
        )
    elif result.outcome == Outcome.PULLED:
        log.info(
            f"Pulled {image} from {registry} in {result.duration:.1f}s "
            f"({result.bytes / 1e6:.1f} MB)",
            extra={"fields": {"event": "pull_done", **fields, "digest": result.digest}},
        )
    else:
        log.debug(
            f"Up to date: {image} from {registry}",
            extra={"fields": {"event": "pull_done", **fields, "digest": result.digest}},
        )


def retrying(target: Target, failure: Failure, *, attempt: int, retries: int, delay: float) -> None:
    log.warning(
        f"retrying {target.image} from {target.registry} in {delay:.1f}s "
        f"(attempt {attempt + 1} of {retries + 1}): {failure.reason}: {failure.message}",
        extra={
            "fields": {
                "event": "pull_retry",
                "image": str(target.image),
                "registry": target.registry,
                "reason": str(failure.reason),
                "delay": round(delay, 3),
            }
        },
    )


def sweep_finished(sweep: Sweep) -> None:
    c = sweep.counts
    log.info(
        sweep.summary(),
        extra={
            "fields": {
                "event": "sweep_done",
                "kind": sweep.kind,
                "sweep": sweep.number,
                "pulled": c[Outcome.PULLED],
                "up_to_date": c[Outcome.UP_TO_DATE],
                "skipped": sweep.skipped,
                "failed": c[Outcome.FAILED],
                "cancelled": c[Outcome.CANCELLED],
                "seconds": round((sweep.ended or time.monotonic()) - sweep.started, 3),
            }
        },
    )


def config_loaded(
    generation: int,
    *,
    config: Config,
    old: Config | None,
    arch: str,
    selection: Selection,
    added: int,
    removed: list[TargetKey],
) -> None:
    notes = ""
    if old is not None and old.interval != config.interval:
        notes = f", interval {old.interval:g}s -> {config.interval:g}s"
    delta = f"; +{added} -{len(removed)}" if old is not None else ""
    log.info(
        f"config generation {generation} loaded: {len(selection.targets)} "
        f"images for {arch}, {len(selection.skipped)} skipped{delta}{notes}",
        extra={
            "fields": {
                "event": "config_loaded",
                "generation": generation,
                "digest": config.digest[:12],
                "added": added,
                "removed": len(removed),
                "interval": config.interval,
            }
        },
    )


def evicted(image: ImageRef, since: float, now: float) -> None:
    """An image jcp had cached is gone: the kubelet's image GC (or a person) removed it.
    Said, and counted, so that operators see a GC fight instead of guessing."""
    log.warning(
        f"evicted: {image} was cached for {now - since:.0f}s and is gone from the runtime "
        "(kubelet image GC?); pulling it again",
        extra={"fields": {"event": "image_evicted", "image": str(image), "cached_since": since}},
    )


def relabelled(
    labels: Mapping[str, str] | None, selection: Selection, *, added: int, removed: int
) -> None:
    shown = ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "none"
    log.info(
        f"node labels changed ({shown}): {len(selection.targets)} images selected, "
        f"{len(selection.skipped)} skipped; +{added} -{removed}",
        extra={"fields": {"event": "node_relabelled", "added": added, "removed": removed}},
    )


def labels_unknown(waiting: int) -> None:
    """WAITING entries are skipped only because the node's labels are unknown."""
    log.warning(
        f"{waiting} entries with a nodeSelector are not pulled: this node's labels are "
        "unknown (no API access to its Node, or no NODE_NAME; --node-labels sets them)",
        extra={"fields": {"event": "labels_unknown", "entries": waiting}},
    )
