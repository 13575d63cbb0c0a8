"""How large a worker's callback and the result it carries may be (``ai_generation.max_result_bytes``).

A result over the limit is not the user's fault (the provider wrote it), nor something Odoo should
keep: every read of the request, list pages included, would carry it. The request fails system-side
instead (``result_too_large``, nothing charged). The body around it is bounded too, before it is read:
twice the result limit (JSON escapes: ``\\n``, ``\\"``, a non-ASCII character written ``\\uXXXX``) plus
room for the rest of the callback, so a body of any size cannot make Odoo read it whole.
"""

DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024  # a 4-megapixel PNG as a data: URL is about 6 MiB
MIN_MAX_RESULT_BYTES = 1024
# twice this plus the envelope stays under Odoo's own cap on a request body (DRAIN_LIMIT)
MAX_MAX_RESULT_BYTES = 60 * 1024 * 1024
ENVELOPE_BYTES = 64 * 1024  # the callback's other fields (usage, ids, attempt)
_READ_CHUNK = 1024 * 1024
# Odoo's own cap on a request body (odoo.http.DEFAULT_MAX_CONTENT_LENGTH): a refused body up to it
# is read to its end, so that the client reads the 413; beyond it the connection is simply closed
DRAIN_LIMIT = 128 * 1024 * 1024


class BodyTooLarge(ValueError):
    pass


def effective_max_result_bytes(setting):
    """The setting within [MIN_MAX_RESULT_BYTES, MAX_MAX_RESULT_BYTES] (Settings refuses any other
    value; a system parameter may hold one): a 0 would fail every request however small its result,
    and beyond the maximum Odoo's own body cap would refuse the callbacks first."""
    return min(MAX_MAX_RESULT_BYTES, max(MIN_MAX_RESULT_BYTES, setting))


def callback_body_limit(max_result_bytes):
    return 2 * effective_max_result_bytes(max_result_bytes) + ENVELOPE_BYTES


def result_bytes(payload):
    """What a result callback asks Odoo to keep, in UTF-8 bytes: its output and its output_url."""
    # strict JSON (validation.parse_json_object) holds no lone surrogate: every string encodes
    return sum(len((payload.get(name) or "").encode()) for name in ("output", "output_url"))


def read_bounded(stream, content_length, limit):
    """The body, read from ``stream``, or BodyTooLarge without reading more than ``limit`` + 1 bytes.

    A declared length over the limit is refused before anything is read; a body without one (chunked)
    is read in chunks until it ends or passes the limit."""
    if content_length is not None and content_length > limit:
        raise BodyTooLarge(f"The callback body has {content_length} bytes; the limit is {limit}.")
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The callback body is larger than {limit} bytes.")


def discard_rest(stream, content_length, cap=DRAIN_LIMIT):
    """Read what is left of a refused body and drop it; False when it is longer than ``cap``.

    werkzeug 2.2's server closes the connection after an answer that left the body unread, while the
    client is still sending it: the client then sees a broken pipe or a reset instead of the 413 (the
    Python worker took that for an Odoo that is down, and parked the outcome to send it again)."""
    if content_length is not None and content_length > cap:
        return False
    read = 0
    while read <= cap:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            return True
        read += len(chunk)
    return False
