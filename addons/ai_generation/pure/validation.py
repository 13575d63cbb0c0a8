"""Checks a generation request body from the public API; field-level messages a person understands.

Two outcomes beside success: ``PayloadTooLarge`` (HTTP 413) for a prompt or params over the limits,
and ``InvalidRequest`` (HTTP 400) carrying one message per offending field (``params.size`` style keys).
"""

import json
from dataclasses import dataclass, field

from . import contracts

BACKENDS = ("external", "internal")
TASKS = ("text", "image")
ALLOWED_KEYS = frozenset({"backend", "model", "task", "prompt", "params"})
MODEL_MAX_LENGTH = 128


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 20000
    max_params_bytes: int = 16384


class InvalidRequest(ValueError):
    def __init__(self, fields):
        self.fields = dict(fields)
        super().__init__("The request has invalid fields: " + ", ".join(sorted(self.fields)))


class PayloadTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class GenerationInput:
    backend: str
    model: str
    task: str
    prompt: str
    params: dict = field(default_factory=dict)


def parse_json_object(raw):
    """The decoded JSON object of a request body, or InvalidRequest."""
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest({"body": "The body must be a JSON object."}) from None
    if not isinstance(body, dict):
        raise InvalidRequest({"body": "The body must be a JSON object."})
    return body


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
