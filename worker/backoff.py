"""Exponential backoff with jitter, shared by the job retries, the callbacks and the reconnect loop.

Built on tenacity's wait strategies (``wait_exponential`` + ``wait_random``: initial * 2**(n-1) plus
uniform(0, jitter), capped) so the formula is the library's, not ours; only the Retry-After rule is
added here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential, wait_random
from tenacity.wait import wait_base

# a server's Retry-After is honoured up to this: 3600 held a job's thread for an hour and 1e10 overflowed
# the wait; past it, the next try learns whether the server is back
RETRY_AFTER_CAP = 300.0


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 1.0

    def strategy(self) -> wait_base:
        """The tenacity wait strategy (also used directly where tenacity runs the loop)."""
        return wait_exponential(multiplier=self.initial, max=self.maximum) + wait_random(0, self.jitter)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A server's Retry-After is a floor, never shortened by the cap: it says when asking again can work;
        only RETRY_AFTER_CAP bounds it.
        """
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, attempt)
        computed = min(self.maximum, self.strategy()(state))
        if retry_after is not None and retry_after > computed:
            # capped, but never below the backoff itself (AIGEN_BACKOFF_MAX may be above the cap)
            return max(computed, min(float(retry_after), RETRY_AFTER_CAP))
        return float(computed)
