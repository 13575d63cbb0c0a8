"""API keys verified once per process (addons/ai_generation/pure/verified_keys.py)."""

from aigen_pure.verified_keys import VerifiedKeys

KEY = "0123456789abcdef0123456789abcdef01234567"
STORED = "$pbkdf2-sha512$6000$c2FsdA$aGFzaA"


def test_a_key_is_known_only_after_it_was_remembered_against_that_stored_hash():
    keys = VerifiedKeys()
    assert not keys.known(KEY, STORED)
    keys.remember(KEY, STORED)
    assert keys.known(KEY, STORED)
    assert not keys.known(KEY, STORED + "x")  # another stored hash (another key row): verify again
    assert not keys.known(KEY[:-1] + "8", STORED)  # another key against the same hash


def test_the_oldest_key_goes_first_when_full_and_a_use_keeps_a_key():
    keys = VerifiedKeys(size=2)
    keys.remember("a" * 40, STORED)
    keys.remember("b" * 40, STORED)
    assert keys.known("a" * 40, STORED)  # used: now the most recent
    keys.remember("c" * 40, STORED)
    assert len(keys) == 2
    assert keys.known("a" * 40, STORED) and keys.known("c" * 40, STORED)
    assert not keys.known("b" * 40, STORED)


def test_nothing_kept_gives_the_key_back():
    keys = VerifiedKeys()
    keys.remember(KEY, STORED)
    kept = list(keys._seen)
    assert all(isinstance(entry, bytes) and len(entry) == 32 for entry in kept)  # HMAC-SHA256 digests
    assert all(KEY.encode() not in entry and KEY[:8].encode() not in entry for entry in kept)
    # the digests are keyed by a secret of the process: another process cannot match them
    assert VerifiedKeys()._digest(KEY, STORED) != keys._digest(KEY, STORED)
