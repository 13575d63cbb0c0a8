# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""API keys this process already verified against their stored hash: a repeat costs no pbkdf2.

Odoo checks an API key by looking its row up (active user, scope, expiry: one query) and then running
pbkdf2-sha512 with 6,000 rounds against the stored hash, about 5 ms of CPU on every API call, a fifth of
a POST /api/v1/generations. Whether a key matches a stored hash is a fact that never changes (the hash
carries its own salt), so it is remembered here, while the row lookup still runs on every call: a key
removed, expired or of a deactivated user is refused at once as before. Only matches are remembered; a
wrong key always pays the full pbkdf2.

Nothing kept here gives a key back: entries are HMAC-SHA256 digests under a random secret of this
process, bounded in number (least recently used first out).
"""

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict

DEFAULT_SIZE = 4096


class VerifiedKeys:
    def __init__(self, size=DEFAULT_SIZE):
        self._secret = secrets.token_bytes(32)
        self._size = size
        self._seen = OrderedDict()
        self._lock = threading.Lock()  # one per process, shared by Odoo's request threads

    def _digest(self, key, stored_hash):
        return hmac.new(self._secret, f"{key}\0{stored_hash}".encode(), hashlib.sha256).digest()

    def known(self, key, stored_hash):
        """True when ``key`` was verified against ``stored_hash`` (remembered) in this process."""
        digest = self._digest(key, stored_hash)
        with self._lock:
            if digest not in self._seen:
                return False
            self._seen.move_to_end(digest)
            return True

    def remember(self, key, stored_hash):
        """Record that ``key`` matches ``stored_hash``; call only after a successful verification."""
        digest = self._digest(key, stored_hash)
        with self._lock:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)

    def __len__(self):
        return len(self._seen)
