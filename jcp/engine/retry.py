"""Whether and when a failed pull goes again: decided in this one place.

As stamina's backoff hook and tenacity's `wait` do, one function folds every rule: a permanent
failure (auth, credentials, not found, platform) never retries; a transient one retries while
attempts are left, after the backoff's delay (exponential, *equal* jitter: half fixed, half
random, so 500 nodes do not retry in step) or, for a registry that asked us to wait, no sooner
than its pause ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from jcp.engine.gate import RegistryGate
from jcp.model.failures import Backoff, Failure, Reason


@dataclass(frozen=True)
class RetryPolicy:
    backoff: Backoff
    gate: RegistryGate

    @property
    def retries(self) -> int:
        return self.backoff.retries

    def next_delay(self, failure: Failure, attempt: int, registry: str) -> float | None:
        """Seconds before attempt ATTEMPT + 1 of a pull that failed with FAILURE, or None when
        it must not go again in this sweep."""
        if not failure.transient or attempt > self.backoff.retries:
            return None
        delay = self.backoff.delay(attempt)
        if failure.reason == Reason.RATE_LIMITED:
            delay = max(delay, self.gate.wait_left(registry))
        return delay
