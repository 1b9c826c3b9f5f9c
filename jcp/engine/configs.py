"""The config in force: re-read on every event, applied when new and valid, else kept.

A bad edit never replaces the last good config, and is reported once per distinct content
(not at every event or sweep, and not again when the same bad content comes back), so a broken
ConfigMap does not flood the log. The generation moves only when the content in force changes:
re-reading identical content (a SIGHUP, a rewrite of the same bytes) applies nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jcp.inputs.configdir import read_files
from jcp.model.config import Config, ConfigError, Problem, build_config

log = logging.getLogger(__name__)

MAX_REMEMBERED = 64
"""Rejected contents remembered (so that flipping between two bad edits logs each once)."""


@dataclass(frozen=True)
class Loaded:
    """A reload's result: the new config if one was applied."""

    config: Config | None
    changed: bool
    error: str | None = None


class ConfigSource:
    def __init__(
        self, path: Path, interval_flag: float | None, env: Mapping[str, str] | None
    ) -> None:
        self.path = path
        self.interval_flag = interval_flag
        self.env = os.environ if env is None else env
        self.config: Config | None = None
        self.generation = 0
        self.last_error: str | None = None
        self._seen: str | None = None
        self._applied: str | None = None
        """The content hash of the config in force."""
        self._bad: dict[str, str] = {}
        """Content hash -> its first error, for the contents already rejected (newest last)."""

    async def reload(self, *, force: bool = False) -> Loaded:
        """Re-read the directory. FORCE (SIGHUP) reports a rejected config again."""
        if force:
            self._seen = None
        try:
            files = await asyncio.to_thread(read_files, self.path)
        except ConfigError as exc:
            # The directory itself is unreadable: report each time it changes state only.
            seen = "unreadable:" + str(exc)
            if seen == self._seen:
                return Loaded(None, changed=False, error=self.last_error)
            self._seen = seen
            return self._rejected(exc)
        raw = hashlib.sha256(
            json.dumps([files.image_text, files.interval_text]).encode()
        ).hexdigest()
        if raw == self._seen or (raw == self._applied and self.config is not None):
            self._seen = raw
            if raw == self._applied and self.last_error is not None:
                self.last_error = None  # back to the content in force: nothing to apply
                return Loaded(None, changed=True)
            return Loaded(None, changed=False, error=self.last_error)
        self._seen = raw
        if raw in self._bad and not force:  # said when first seen: counted, not logged again
            self.last_error = self._bad[raw]
            return Loaded(None, changed=True, error=self.last_error)
        try:
            # A valid 1 MiB config costs seconds of CPU: not on the event loop.
            config = await asyncio.to_thread(
                build_config, files, interval_flag=self.interval_flag, env=self.env
            )
        except ConfigError as exc:
            return self._rejected(exc, raw)
        except Exception as exc:
            # The parsers raise only ConfigError; anything else is a bug in them, and still
            # must not take the last good config (or the agent) down with it.
            log.exception("BUG: the config parser raised instead of reporting a problem")
            problem = Problem(files.image_file, f"cannot be parsed ({type(exc).__name__})")
            return self._rejected(ConfigError([problem]), raw)
        self.config = config
        self._applied = raw
        self.generation += 1
        self.last_error = None
        for problem in config.warnings:
            log.warning(str(problem))
        return Loaded(config, changed=True)

    def _rejected(self, exc: ConfigError, raw: str | None = None) -> Loaded:
        kept = "keeping the last good config" if self.config else "no valid config yet"
        errors = [str(p) for p in exc.problems if p.severity == "error"]
        self.last_error = errors[0] if errors else str(exc)
        if raw is not None:
            self._bad[raw] = self.last_error
            while len(self._bad) > MAX_REMEMBERED:
                del self._bad[next(iter(self._bad))]
        log.error(
            f"ERROR: config rejected ({kept}):",
            extra={
                "fields": {"event": "config_rejected", "problems": [str(p) for p in exc.problems]}
            },
        )
        for problem in exc.problems:
            (log.error if problem.severity == "error" else log.warning)(f"  {problem}")
        return Loaded(None, changed=True, error=self.last_error)
