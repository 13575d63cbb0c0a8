"""Jobs for backend tests, built as the worker builds them (worker.job.Job)."""

import uuid
from datetime import UTC, datetime, timedelta

from worker.job import Job


def make_job(*, task="text", prompt="Write a haiku about queues.", backend="external", **overrides) -> Job:
    now = datetime.now(UTC)
    fields = {
        "request_id": str(uuid.uuid4()),
        "backend": backend,
        "model": "gpt-test" if task == "text" else "img-test",
        "task": task,
        "prompt": prompt,
        "params": {},
        "deadline": now + timedelta(minutes=5),
        "attempt": 1,
        "created_at": now,
    }
    fields.update(overrides)
    return Job(**fields)
