"""Backoff: exponential, capped, jittered; Retry-After is a floor."""

from worker.backoff import RETRY_AFTER_CAP, Backoff


def test_delays_grow_exponentially_within_the_jitter():
    backoff = Backoff(initial=1, maximum=100, jitter=0.5)
    for attempt, base in [(1, 1), (2, 2), (3, 4), (4, 8)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(base <= d <= base + 0.5 for d in delays)
        assert len(set(delays)) > 1  # jitter spreads retries of many jobs


def test_delays_are_capped():
    assert Backoff(initial=1, maximum=5, jitter=1).delay(20) == 5


def test_retry_after_is_a_floor_even_above_the_cap():
    backoff = Backoff(initial=1, maximum=5, jitter=0)
    assert backoff.delay(1, retry_after=12) == 12
    assert backoff.delay(3, retry_after=0.5) == 4


def test_retry_after_is_honoured_up_to_its_cap():
    # 1e10 overflowed Event.wait (the job requeued and its AI call repeated); 3600 held a thread an hour
    backoff = Backoff(initial=1, maximum=5, jitter=0)
    assert backoff.delay(1, retry_after=1e10) == RETRY_AFTER_CAP
    assert backoff.delay(1, retry_after=3600) == RETRY_AFTER_CAP
    assert RETRY_AFTER_CAP <= 300


def test_the_retry_after_cap_never_shortens_the_backoff():
    backoff = Backoff(initial=1, maximum=600, jitter=0)
    assert backoff.delay(12, retry_after=1000) == 600  # the backoff's own 600, not the cap's 300
