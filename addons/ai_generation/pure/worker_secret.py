"""The worker secret is stored only as a salted HMAC-SHA256 digest, as Odoo stores API keys only hashed.

Why a fast keyed hash and not a slow password hash (Odoo's API keys use pbkdf2_sha512, 6,000 rounds):
a slow hash protects guessable passwords. The worker secret is random (43 characters, 256 bits, from
devstack, the e2e stack or an operator told to use 32+ random characters), out of reach of any
dictionary, and it is checked on every callback, where pbkdf2 costs about 3 ms against 2 µs. The random
salt per stored value keeps equal secrets from having equal digests. Anyone who can read the digest is
a system administrator, who could set a new secret anyway; the digest alone forges no callback.
"""

import hashlib
import hmac
import re
import secrets

SCHEME = "hmac-sha256"
MIN_LENGTH = 32  # what the settings form accepts; generated secrets have 43 characters
_STORED = re.compile(r"hmac-sha256\$([0-9a-f]{32})\$([0-9a-f]{64})")


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def is_hashed(value) -> bool:
    """Whether ``value`` is a stored digest (``hmac-sha256$<salt>$<digest>``) rather than a secret."""
    return isinstance(value, str) and _STORED.fullmatch(value) is not None


def hash_secret(secret: str) -> str:
    """The stored form of ``secret``: a new random salt and the HMAC-SHA256 of the secret under it."""
    salt = secrets.token_bytes(16)
    return f"{SCHEME}${salt.hex()}${_digest(salt, secret)}"


def stored_form(value):
    """What to keep for ``value``: empty stays empty, a digest stays as it is, a secret is hashed."""
    if not value or is_hashed(value):
        return value
    return hash_secret(str(value))


def matches(token: str, stored) -> bool:
    """Whether ``token`` is the secret ``stored`` was made from, compared in constant time.

    A stored value that is not a digest (written around the ORM) matches nothing: callbacks stay closed
    rather than comparing against a plain-text secret.
    """
    match = _STORED.fullmatch(stored) if isinstance(stored, str) else None
    if not isinstance(token, str) or not token or not match:
        return False
    salt, digest = bytes.fromhex(match.group(1)), match.group(2)
    return hmac.compare_digest(_digest(salt, token), digest)
