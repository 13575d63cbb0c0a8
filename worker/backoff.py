"""Exponential backoff with jitter, shared by the job retries, the callbacks and the reconnect loop.

Built on tenacity's ``wait_exponential_jitter`` (initial * 2**(n-1) + uniform(0, jitter), capped) so
the formula is the library's, not ours; only the Retry-After rule is added here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential_jitter


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 1.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A server's Retry-After is a floor, never shortened by the cap: it says when asking again can work.
        """
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, attempt)
        computed = wait_exponential_jitter(multiplier=self.initial, max=self.maximum, jitter=self.jitter)(
            state
        )
        if retry_after is not None and retry_after > computed:
            return float(retry_after)
        return float(computed)
