"""The worker secret's stored form (addons/ai_generation/pure/worker_secret.py): a salted HMAC-SHA256."""

import secrets

from aigen_pure import worker_secret

SECRET = secrets.token_urlsafe(32)


def test_the_stored_form_holds_no_trace_of_the_secret_and_matches_only_it():
    stored = worker_secret.stored_form(SECRET)
    assert worker_secret.is_hashed(stored) and stored.startswith("hmac-sha256$")
    assert SECRET not in stored
    assert worker_secret.matches(SECRET, stored)
    for wrong in (SECRET[:-1], SECRET + "x", SECRET.upper(), "", " " + SECRET):
        assert not worker_secret.matches(wrong, stored), wrong


def test_each_hash_has_its_own_salt():
    first, second = worker_secret.hash_secret(SECRET), worker_secret.hash_secret(SECRET)
    assert first != second
    assert worker_secret.matches(SECRET, first) and worker_secret.matches(SECRET, second)


def test_a_digest_is_kept_as_it_is_and_empty_stays_empty():
    stored = worker_secret.hash_secret(SECRET)
    assert worker_secret.stored_form(stored) == stored
    assert worker_secret.stored_form("") == ""
    assert worker_secret.stored_form(False) is False


def test_a_plain_text_stored_value_matches_nothing():
    """A secret written around the ORM stays plain: it closes the callbacks instead of opening them."""
    assert not worker_secret.matches(SECRET, SECRET)
    assert not worker_secret.matches(SECRET, None)
    assert not worker_secret.matches(SECRET, False)
    assert not worker_secret.matches(SECRET, worker_secret.hash_secret(SECRET) + "\n")
    assert not worker_secret.matches(None, worker_secret.hash_secret(SECRET))


def test_any_header_text_is_compared_without_raising():
    stored = worker_secret.hash_secret(SECRET)
    for token in ("é" * 40, "\ud800", "\x00" * 32):
        assert not worker_secret.matches(token, stored)
