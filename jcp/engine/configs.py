"""The config in force: re-read on every event, applied when new and valid, else kept.

A bad edit never replaces the last good config, and is reported once per distinct content
(not at every event or sweep), so a broken ConfigMap does not flood the log.
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
        if raw == self._seen:
            return Loaded(None, changed=False, error=self.last_error)
        self._seen = raw
        try:
            # A valid 1 MiB config costs seconds of CPU: not on the event loop.
            config = await asyncio.to_thread(
                build_config, files, interval_flag=self.interval_flag, env=self.env
            )
        except ConfigError as exc:
            return self._rejected(exc)
        except Exception as exc:
            # The parsers raise only ConfigError; anything else is a bug in them, and still
            # must not take the last good config (or the agent) down with it.
            log.exception("BUG: the config parser raised instead of reporting a problem")
            problem = Problem(files.image_file, f"cannot be parsed ({type(exc).__name__})")
            return self._rejected(ConfigError([problem]))
        self.config = config
        self.generation += 1
        self.last_error = None
        for problem in config.warnings:
            log.warning(str(problem))
        return Loaded(config, changed=True)

    def _rejected(self, exc: ConfigError) -> Loaded:
        kept = "keeping the last good config" if self.config else "no valid config yet"
        errors = [str(p) for p in exc.problems if p.severity == "error"]
        self.last_error = errors[0] if errors else str(exc)
        log.error(
            f"ERROR: config rejected ({kept}):",
            extra={
                "fields": {"event": "config_rejected", "problems": [str(p) for p in exc.problems]}
            },
        )
        for problem in exc.problems:
            (log.error if problem.severity == "error" else log.warning)(f"  {problem}")
        return Loaded(None, changed=True, error=self.last_error)
