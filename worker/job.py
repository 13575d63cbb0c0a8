"""AIGenerationJobRequested v1: parse and validate a message body into a Job.

The schema in schemas/job_requested.v1.json is the contract; jsonschema checks it so the worker and
Odoo agree on one definition instead of two hand-written ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import aigen_contracts


class InvalidJob(ValueError):
    """The message cannot be processed; ``reason`` says why in one line (it travels to the DLQ)."""

    def __init__(self, reason: str, request_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id


@dataclass(frozen=True)
class Job:
    request_id: str
    backend: str  # "external" | "internal"
    model: str
    task: str  # "text" | "image"
    prompt: str = field(repr=False)  # kept out of reprs: a repr can end up in a log line
    params: dict[str, Any]
    deadline: datetime  # aware
    attempt: int  # dispatch attempt as Odoo counts it
    created_at: datetime


@cache
def _registry() -> Registry:
    resources = []
    for name in aigen_contracts.SCHEMA_FILES:
        schema = aigen_contracts.load(name)
        resource = Resource.from_contents(schema)
        # both the file name (relative $ref) and the absolute $id resolve
        resources += [(name, resource), (schema["$id"], resource)]
    return Registry().with_resources(resources)


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(
        aigen_contracts.load("job_requested.v1.json"),
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def validator_for(schema_name: str) -> Draft202012Validator:
    """A validator for any contract file, with the shared $refs resolvable (used by tests and fakes too)."""
    return Draft202012Validator(
        aigen_contracts.load(schema_name),
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _aware(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidJob(f"{name}: not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise InvalidJob(f"{name}: needs a time zone offset")
    return moment


def parse_job(body: bytes | str) -> Job:
    """The Job in ``body``, or InvalidJob with a one-line reason (never anything else)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJob(f"not valid JSON: {exc}") from exc
    except (RecursionError, ValueError) as exc:  # nested too deep; an integer of over 4300 digits
        raise InvalidJob(f"not a job: {type(exc).__name__}") from exc
    request_id = data.get("generation_request_id") if isinstance(data, dict) else None
    request_id = request_id if isinstance(request_id, str) else None
    try:
        errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    except RecursionError as exc:  # nested just below json's own limit: the schema's walk goes deeper
        raise InvalidJob("not a job: RecursionError", request_id) from exc
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(message)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        # the message of an error on the prompt (or the system prompt in params) may quote it: name the
        # field only
        path = list(first.absolute_path)
        quotes_text = path[:1] == ["prompt"] or path[:2] == ["params", "system"]
        text = "invalid value" if quotes_text else first.message
        raise InvalidJob(f"schema: {where}: {text[:300]}{more}", request_id)
    return Job(
        request_id=data["generation_request_id"],
        backend=data["backend"],
        model=data["model"],
        task=data["task"],
        prompt=data["prompt"],
        params=dict(data["params"]),
        deadline=_aware(data["deadline"], "deadline"),
        attempt=int(data.get("attempt", 1)),
        created_at=_aware(data["created_at"], "created_at"),
    )
