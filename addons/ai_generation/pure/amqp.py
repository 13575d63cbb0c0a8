"""The AIGenerationJobRequested v1 message (schemas/job_requested.v1.json), built without I/O.

Publishing it (pika, the topology, the long-lived connection) is the broker package's job.
"""

MESSAGE_TYPE = "AIGenerationJobRequested"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"  # the default of the ai_generation.amqp_url setting


def iso(dt):
    """UTC ISO 8601 with a Z (Odoo stores naive UTC datetimes)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_message(request_id, backend, model, task, prompt, params, attempt, deadline, created_at):
    return {
        "message_type": MESSAGE_TYPE,
        "version": 1,
        "generation_request_id": request_id,
        "backend": backend,
        "model": model,
        "task": task,
        "prompt": prompt,
        "params": params or {},
        "attempt": attempt,
        "deadline": iso(deadline),
        "created_at": iso(created_at),
    }
