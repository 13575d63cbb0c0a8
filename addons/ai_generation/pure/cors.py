# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""CORS for the public API: which origins may call it from a browser, and the headers they get.

Only origins an administrator listed (settings: "Allowed origins") get CORS headers, and never
``Access-Control-Allow-Credentials``: a page on another origin authenticates with an API key
(``Authorization: Bearer``), never with the Odoo session cookie.
"""

import re
from urllib.parse import urlsplit

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSE_HEADERS = "Location, Retry-After, Idempotent-Replayed"
MAX_AGE_SECONDS = 600
DEFAULT_PORTS = {"http": 80, "https": 443}
_SEPARATORS = re.compile(r"[\s,]+")


class InvalidOrigin(ValueError):
    pass


def normalize_origin(value):
    """``scheme://host[:port]`` in lower case without a default port, or InvalidOrigin."""
    text = (value or "").strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidOrigin(f"{text!r} is not an origin") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidOrigin(f"{text!r} is not an origin: write it as https://host or http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidOrigin(f"{text!r} is not an origin: no path, query or user, only scheme://host[:port]")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def parse_origins(text):
    """The allow-list as typed in the settings (spaces, commas or new lines between origins);
    InvalidOrigin names the first entry that is not an origin. ``*`` is refused on purpose."""
    origins = []
    for entry in _SEPARATORS.split(text or ""):
        if not entry:
            continue
        if entry == "*":
            raise InvalidOrigin("'*' is not accepted: list each origin that may call the API")
        origin = normalize_origin(entry)
        if origin not in origins:
            origins.append(origin)
    return origins


def allowed_origins(text):
    """The valid entries of a stored allow-list (a parameter written by hand may hold bad ones)."""
    origins = set()
    for entry in _SEPARATORS.split(text or ""):
        try:
            origins.add(normalize_origin(entry))
        except InvalidOrigin:
            continue
    return origins


def is_allowed(origin, allowed):
    if not origin or origin == "null":
        return False
    try:
        return normalize_origin(origin) in allowed
    except InvalidOrigin:
        return False


def response_headers(origin):
    """Headers of an answer to an allowed origin (the origin exactly as the browser sent it)."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSE_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin):
    return {
        **response_headers(origin),
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
    }
