"""The purge ledger's health as metrics and a /status section, read from the ledger at scrape.

A ledger that cannot be written (a full state dir) loses jcp's history at the next restart, so
an operator must see it without reading logs: `jcp_ledger_ok` (0 while writes fail) and
`jcp_ledger_write_failures_total`. The series exist only when jcp keeps a ledger.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge


class LedgerHealth(Protocol):
    """What is read of the ledger (`jcp.lifecycle.ledger.Ledger`), without importing it."""

    write_failures: int
    write_error: str | None

    def health(self) -> dict[str, object]: ...


class LedgerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._ledger: LedgerHealth | None = None
        self._counted = 0
        self._failures: Counter | None = None
        self._ok: Gauge | None = None

    def watch(self, ledger: LedgerHealth) -> None:
        """From now on, scrapes and /status show LEDGER's health."""
        self._ledger = ledger
        if self._ok is None:
            self._failures = Counter(
                "jcp_ledger_write_failures",
                "Writes of the purge ledger that failed (e.g. its directory was full)",
                registry=self._registry,
            )
            self._ok = Gauge(
                "jcp_ledger_ok",
                "1 while the purge ledger's last write succeeded (or none was due), 0 while its "
                "writes fail and what jcp pulled is kept in memory only",
                registry=self._registry,
            )

    def sync(self) -> None:
        if self._ledger is None or self._ok is None or self._failures is None:
            return
        new = self._ledger.write_failures - self._counted
        if new > 0:
            self._failures.inc(new)
            self._counted += new
        self._ok.set(1 if self._ledger.write_error is None else 0)

    def status(self) -> dict[str, object]:
        """The /status section: {"ledger": ...} when a ledger is watched."""
        return {} if self._ledger is None else {"ledger": self._ledger.health()}
