"""Checks a generation request from the public API; field-level messages a person understands.

Two outcomes beside success: ``PayloadTooLarge`` (HTTP 413) for a prompt or params over the limits,
and ``InvalidRequest`` (HTTP 400) carrying one message per offending field (``params.size`` style keys).

The body is read as strict JSON (RFC 8259), stricter than Python's ``json``: UTF-8 only, no NaN or
Infinity, no number that turns into infinity, no integer beyond what every JSON reader holds exactly
(2**53 - 1, I-JSON), no key given twice, no NUL character and no lone UTF-16 surrogate in any key or
string (PostgreSQL stores neither; a surrogate cannot even be encoded in an answer), nesting bounded.
Anything else would reach the database or the answer encoder and come back as a 500.
"""

import json
import math
import re
from dataclasses import dataclass, field

from . import contracts
from .errors import listed_fields

BACKENDS = ("external", "internal")
TASKS = ("text", "image")
ALLOWED_KEYS = frozenset({"backend", "model", "task", "prompt", "params"})
MODEL_MAX_LENGTH = 128
MAX_DEPTH = 16
MAX_SAFE_INTEGER = 2**53 - 1
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")
QUERY_INTEGER_RE = re.compile(r"-?[0-9]{1,12}")
LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 20000
    max_params_bytes: int = 16384


class InvalidRequest(ValueError):
    def __init__(self, fields):
        self.fields = dict(sorted(fields.items()))
        listed, omitted = listed_fields(self.fields)
        message = "The request has invalid fields: " + ", ".join(listed)
        if omitted:  # the answer lists the first ones only (pure/errors.py)
            message = (
                f"The request has {len(self.fields)} invalid fields: {', '.join(listed)} and {omitted} more."
            )
        super().__init__(message)


class PayloadTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class GenerationInput:
    backend: str
    model: str
    task: str
    prompt: str
    params: dict = field(default_factory=dict)


# ---------------------------------------------------------------- strict JSON
class _NotJsonNumber:
    """NaN, Infinity, -Infinity or a number too large for a float: Python reads them, JSON has none."""

    def __init__(self, text):
        self.text = text


class _UnsafeInteger:
    """An integer literal too long to be exact anywhere; kept as text (no costly int() of it)."""

    def __init__(self, text):
        self.text = text


class _ObjectWithDuplicates(dict):
    def __init__(self, pairs, duplicates):
        super().__init__(pairs)
        self.duplicates = duplicates


def _object(pairs):
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    seen, duplicates = set(), []
    for key, _value in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    return _ObjectWithDuplicates(found, duplicates)


def _integer(text):
    return _UnsafeInteger(text) if len(text) > 17 else int(text)


def _float(text):
    value = float(text)
    return value if math.isfinite(value) else _NotJsonNumber(text)


def _decode(raw):
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(
                {"body": f"The body must be UTF-8 encoded JSON (invalid byte at position {exc.start})."}
            ) from None
    # RFC 8259 § 8.1: a parser may ignore a byte order mark
    return text[1:] if text.startswith("\ufeff") else text


def _text_problem(text):
    if "\x00" in text:
        return "Must not contain the NUL character (\\u0000)."
    if LONE_SURROGATE_RE.search(text):
        return "Must be valid Unicode text: it holds a lone UTF-16 surrogate (\\ud800-\\udfff)."
    return None


def database_refuses(text):
    """Whether PostgreSQL would refuse ``text`` as a query parameter (a NUL, a lone surrogate)."""
    return _text_problem(text) is not None


def _field_name(path):
    return ".".join(path) if path else "body"


def _strict_json_errors(document):
    """{field: message} for every value strict JSON or the database refuses (iterative: no recursion)."""
    errors = {}
    pending = [(document, ())]
    while pending:
        value, path = pending.pop()
        where = _field_name(path)
        if len(path) > MAX_DEPTH:
            errors.setdefault(_field_name(path[:1]), f"Nested more than {MAX_DEPTH} levels deep.")
        elif isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                errors.setdefault(where, problem)
        elif isinstance(value, _NotJsonNumber):
            errors.setdefault(where, "Must be a finite number (NaN and Infinity are not JSON numbers).")
        elif isinstance(value, _UnsafeInteger) or (
            isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER
        ):
            errors.setdefault(where, f"Must be between {-MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}.")
        elif isinstance(value, dict):
            for key in getattr(value, "duplicates", ()):
                errors.setdefault(_field_name((*path, key)), "Given more than once.")
            for key, child in value.items():
                problem = _text_problem(key)
                if problem:
                    # never echo such a key as a field name: the answer could not be encoded
                    errors.setdefault(where, "A key here: " + problem[0].lower() + problem[1:])
                else:
                    pending.append((child, (*path, key)))
        elif isinstance(value, list):
            pending.extend((child, (*path, str(index))) for index, child in enumerate(value))
    return errors


def parse_json_object(raw):
    """The decoded JSON object of a request body (bytes or text), or InvalidRequest."""
    text = _decode(raw)
    try:
        body = json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_NotJsonNumber,
        )
    except RecursionError:
        raise InvalidRequest({"body": f"Nested more than {MAX_DEPTH} levels deep."}) from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            {"body": f"Invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."}
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest({"body": "The body must be a JSON object."})
    errors = _strict_json_errors(body)
    if errors:
        raise InvalidRequest(errors)
    return body


# ---------------------------------------------------------------- headers and query arguments
def idempotency_key(values):
    """The Idempotency-Key header (all values sent, as a list), None when absent, or InvalidRequest."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest({"Idempotency-Key": "Send the header once."})
    if not IDEMPOTENCY_KEY_RE.fullmatch(values[0]):
        raise InvalidRequest({"Idempotency-Key": "1 to 255 printable ASCII characters without spaces."})
    return values[0]


def query_integer(name, values, default, low, high):
    """A whole number query argument (all values sent, as a list) within [low, high], or InvalidRequest."""
    if not values:
        return default
    if len(values) > 1:
        raise InvalidRequest({name: "Give this argument once."})
    if not QUERY_INTEGER_RE.fullmatch(values[0]) or not low <= int(values[0]) <= high:
        raise InvalidRequest({name: f"Must be a whole number between {low} and {high}."})
    return int(values[0])


def query_choice(name, values, choices):
    """One of ``choices`` (all values sent, as a list), None when absent, or InvalidRequest."""
    if not values:
        return None
    if len(values) > 1 or values[0] not in choices:
        raise InvalidRequest({name: "Must be one of: " + ", ".join(choices) + " (once)."})
    return values[0]


# ---------------------------------------------------------------- the generation request
def _params_errors(params):
    errors = {}
    for error in contracts.validator("params.json").iter_errors(params):
        if error.validator == "additionalProperties":
            known = ", ".join(sorted(contracts.load("params.json")["properties"]))
            for key in sorted(set(error.instance) - set(contracts.load("params.json")["properties"])):
                errors[f"params.{key}"] = f"Unknown parameter. Known parameters: {known}."
            continue
        where = ".".join(str(p) for p in error.absolute_path)
        errors[f"params.{where}" if where else "params"] = _friendly(error)
    return errors


def _friendly(error):
    schema = error.schema
    if error.validator == "enum":
        return "Must be one of: " + ", ".join(str(v) for v in schema["enum"]) + "."
    if error.validator == "type":
        return f"Must be of type {schema['type']}."
    if error.validator in ("minimum", "maximum", "exclusiveMinimum"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum")
        return f"Must be between {low} and {high}."
    if error.validator == "maxLength":
        return f"Must be at most {schema['maxLength']} characters."
    return error.message


def validate_generation(body, limits=Limits()):
    """A clean GenerationInput from a decoded body, or PayloadTooLarge / InvalidRequest."""
    prompt = body.get("prompt")
    if isinstance(prompt, str) and len(prompt) > limits.max_prompt_chars:
        raise PayloadTooLarge(
            f"The prompt has {len(prompt)} characters; the limit is {limits.max_prompt_chars}."
        )
    params = body.get("params", {})
    if params is None:
        params = {}
    params_size = len(json.dumps(params, separators=(",", ":")).encode())
    if params_size > limits.max_params_bytes:
        raise PayloadTooLarge(f"The params take {params_size} bytes; the limit is {limits.max_params_bytes}.")

    errors = {}
    for key in sorted(set(body) - ALLOWED_KEYS):
        errors[key] = "Unknown field."
    backend = body.get("backend")
    if backend not in BACKENDS:
        errors["backend"] = "Required; must be one of: " + ", ".join(BACKENDS) + "."
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        errors["model"] = "Required; the name of the model to use."
    elif len(model) > MODEL_MAX_LENGTH:
        errors["model"] = f"Must be at most {MODEL_MAX_LENGTH} characters."
    task = body.get("task", "text")
    if task not in TASKS:
        errors["task"] = "Must be one of: " + ", ".join(TASKS) + "."
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = "Required; describe what you want generated."
    if not isinstance(params, dict):
        errors["params"] = "Must be a JSON object."
    else:
        errors.update(_params_errors(params))
    if errors:
        raise InvalidRequest(errors)
    return GenerationInput(backend=backend, model=model.strip(), task=task, prompt=prompt, params=params)
