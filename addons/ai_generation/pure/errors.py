"""Errors the public API and the callbacks answer with (schemas/error_response.json)."""

import itertools

# what an answer says per field is bounded: a 1 MiB body of unknown keys was a 3.4 MB answer
MAX_LISTED_FIELDS = 20
MAX_FIELD_NAME_CHARS = 100
MAX_FIELD_MESSAGE_CHARS = 300


def _cut(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listed_fields(fields):
    """({name: message} of the first MAX_LISTED_FIELDS of ``fields``, names and messages cut short,
    how many fields were left out)."""
    listed = {}
    for name, message in itertools.islice(fields.items(), MAX_LISTED_FIELDS):
        listed.setdefault(_cut(str(name), MAX_FIELD_NAME_CHARS), _cut(str(message), MAX_FIELD_MESSAGE_CHARS))
    # two long names cut alike are one entry: the second counts as left out
    return listed, len(fields) - len(listed)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message, fields=None, status=None, code=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or None
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self):
        error = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"], omitted = listed_fields(self.fields)
            if omitted:
                error["fields_omitted"] = omitted
        return {"error": error}


class ValidationFailed(ApiError):
    status, code = 400, "validation_error"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class InsufficientCredits(ApiError):
    status, code = 402, "insufficient_credits"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class IllegalTransitionError(ApiError):
    status, code = 409, "illegal_transition"


class PayloadTooLargeError(ApiError):
    status, code = 413, "payload_too_large"


class IdempotencyKeyReused(ApiError):
    status, code = 422, "idempotency_key_reused"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = retry_after
