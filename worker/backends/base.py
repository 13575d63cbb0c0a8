"""What every backend offers the worker: one blocking call per job, failures raised as BackendFailure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.classification import Signal


class BackendFailure(Exception):
    """A backend failure already normalised into a taxonomy Signal (see worker.classification)."""

    def __init__(self, signal: Signal, detail: str = ""):
        super().__init__(detail or signal.message or signal.reason or signal.kind)
        self.signal = signal
        self.detail = detail


@dataclass(frozen=True)
class GenerationOutput:
    """A finished generation: text in ``output`` or an image as ``output_url`` (or a data: URL)."""

    output: str | None
    output_url: str | None
    usage: dict[str, int] = field(default_factory=dict)


class Backend(Protocol):
    name: str  # "external" | "internal"

    def generate(self, job: Any, *, timeout: float) -> GenerationOutput:
        """Run ``job`` (worker.job.Job) to completion within ``timeout`` seconds; thread-safe.

        Raises BackendFailure or a client library exception; either goes through
        worker.classification.signal_from_exception.
        """
        ...
