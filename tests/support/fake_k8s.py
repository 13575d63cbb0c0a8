"""A loopback stub of the Kubernetes API (batch/v1 Jobs, core/v1 Pods, logs) for the real kubernetes client.

No kube-apiserver can run here, so this speaks the JSON of the few endpoints the internal backend uses:

- ``POST/GET /apis/batch/v1/namespaces/{ns}/jobs`` (list with ``labelSelector``), ``GET /apis/batch/v1/jobs``,
  ``GET|DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}`` (and ``.../status``); DELETE honours
  ``propagationPolicy`` (Background/Foreground remove the Job's pods, Orphan — the API default — leaves them);
- ``GET /api/v1/namespaces/{ns}/pods`` (``labelSelector``), ``.../pods/{name}``, ``.../pods/{name}/log``;
- ``GET /version``.

Requests need ``Authorization: Bearer <token>`` (401 otherwise); creates are validated the way the API
server would refuse them (422: DNS-1123 names, containers, podFailurePolicy needs restartPolicy Never;
409 AlreadyExists). ``inject_error(...)`` makes the API itself fail (500, 403, ...).

The test plays the Job controller: ``start_pod(ns, job)`` then ``apply(ns, job, outcome)`` with one of
the outcome builders (``succeeded``, ``oom_killed``, ``image_pull_backoff``, ``evicted``,
``unschedulable``, ``deadline_exceeded``, ``user_input_exit``, ``crashed``, ``running``), or lower-level
``set_job_condition`` / ``set_pod_status``. ``wait_for_job()`` returns the next created Job,
``wait_finished(ns, name)`` its final condition.

Auto controller (``FakeKubernetes(auto=True)``): every created Job gets a pod and, after ``auto_delay``
seconds, an outcome chosen from its container env: the first ``on(marker, outcome)`` whose marker occurs
in the ``AIGEN_PROMPT`` env var (or ``AIGEN_FAKE_OUTCOME`` naming an outcome, e.g. "oom_killed"), else
``default_outcome`` — a success whose log's last line is the JSON result {"output": ...} (text) or
{"output_url": ...} (image, from ``AIGEN_TASK``).

Library use::

    with FakeKubernetes() as k8s:
        config = KubernetesConfig(host=k8s.host, token=k8s.token)   # or k8s.configuration()

pytest: fixtures ``fake_k8s`` (manual controller) and ``fake_k8s_auto``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
USER_INPUT_EXIT_CODE = 42  # the backend's default "bad input" exit code


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- label selectors ------------------------------------------------------------------------------------

_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    """Split on commas outside parentheses ("a in (x,y),b=c" → 2 terms)."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def selector_matches(selector: str | None, labels: dict[str, str] | None) -> bool:
    """Kubernetes label selector semantics: =, ==, !=, in, notin, key, !key; terms are ANDed."""
    labels = labels or {}
    for term in _split_selector(selector or ""):
        set_term = _SET_TERM.match(term)
        if set_term:
            key, op, values = set_term.groups()
            allowed = {v.strip() for v in values.split(",")}
            ok = labels.get(key) in allowed if op == "in" else labels.get(key) not in allowed
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            ok = labels.get(key) == value
        elif term.startswith("!"):
            ok = term[1:].strip() not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


# --- outcomes: what the "Job controller" does to a Job and its pod -----------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A scripted end state. ``job_condition`` None leaves the Job active (a stuck pod)."""

    name: str
    pod_phase: str
    container_state: dict  # core/v1 ContainerState: {"running"|"waiting"|"terminated": {...}}
    job_condition: tuple[str, str, str] | None = None  # (type, reason, message)
    pod_reason: str | None = None
    pod_message: str | None = None
    pod_conditions: list[dict] = field(default_factory=list)
    log: str | Callable[[dict], str] = ""


def _terminated(exit_code: int, reason: str, message: str | None = None) -> dict:
    state = {"exitCode": exit_code, "reason": reason, "startedAt": now_iso(), "finishedAt": now_iso()}
    if message:
        state["message"] = message
    return {"terminated": state}


def _default_log(env: dict) -> str:
    request_id = env.get("AIGEN_REQUEST_ID", "unknown")
    if env.get("AIGEN_TASK") == "image":
        result = {"output_url": f"https://models.example/{request_id}.png", "usage": {"images": 1}}
    else:
        result = {"output": f"Fake model output for {request_id}", "usage": {"total_tokens": 12}}
    return f"loading model\nrunning\n{json.dumps(result)}\n"


def succeeded(log: str | Callable[[dict], str] | None = None, *, output: str | None = None) -> Outcome:
    """Pod Succeeded (exit 0), Job Complete. ``output`` writes {"output": output} as the log's last line."""
    if output is not None:
        log = f"model says hi\n{json.dumps({'output': output})}\n"
    return Outcome(
        "succeeded", "Succeeded", _terminated(0, "Completed"), ("Complete", "", ""), log=log or _default_log
    )


def crashed(
    exit_code: int = 1, log: str = "Traceback (most recent call last):\nRuntimeError: boom\n"
) -> Outcome:
    """The model exits non-zero: Job Failed BackoffLimitExceeded (backoffLimit 0)."""
    message = "Job has reached the specified backoff limit"
    return Outcome(
        "crashed",
        "Failed",
        _terminated(exit_code, "Error"),
        ("Failed", "BackoffLimitExceeded", message),
        log=log,
    )


def oom_killed() -> Outcome:
    message = "Job has reached the specified backoff limit"
    return Outcome(
        "oom_killed", "Failed", _terminated(137, "OOMKilled"), ("Failed", "BackoffLimitExceeded", message)
    )


def evicted() -> Outcome:
    message = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi."
    return Outcome(
        "evicted",
        "Failed",
        _terminated(
            137, "ContainerStatusUnknown", "The container could not be located when the pod was terminated"
        ),
        ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        pod_reason="Evicted",
        pod_message=message,
        pod_conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}],
    )


def deadline_exceeded() -> Outcome:
    message = "Job was active longer than specified deadline"
    return Outcome(
        "deadline_exceeded",
        "Failed",
        _terminated(143, "Error"),
        ("Failed", "DeadlineExceeded", message),
        pod_reason="DeadlineExceeded",
    )


def user_input_exit(exit_code: int = USER_INPUT_EXIT_CODE, container: str = "model") -> Outcome:
    """The model refuses its input: exit ``exit_code``, which the podFailurePolicy turns into FailJob."""
    message = (
        f"Container {container} for pod default/x failed with exit code {exit_code} matching FailJob rule"
    )
    return Outcome(
        "user_input_exit",
        "Failed",
        _terminated(exit_code, "Error"),
        ("Failed", "PodFailurePolicy", message),
        log='{"error": "prompt not supported by this model"}\n',
    )


def image_pull_backoff(reason: str = "ImagePullBackOff") -> Outcome:
    """Pod Pending, container waiting in ImagePullBackOff (or ErrImagePull); the Job stays active."""
    message = 'Back-off pulling image "registry.example/model:missing"'
    return Outcome(reason.lower(), "Pending", {"waiting": {"reason": reason, "message": message}})


def unschedulable() -> Outcome:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    return Outcome("unschedulable", "Pending", {}, pod_conditions=[condition])


def running() -> Outcome:
    """The pod runs and never finishes (until the test or a deadline says otherwise)."""
    return Outcome("running", "Running", {"running": {"startedAt": now_iso()}})


OUTCOMES: dict[str, Callable[[], Outcome]] = {
    "succeeded": succeeded,
    "crashed": crashed,
    "oom_killed": oom_killed,
    "evicted": evicted,
    "deadline_exceeded": deadline_exceeded,
    "user_input_exit": user_input_exit,
    "image_pull_backoff": image_pull_backoff,
    "err_image_pull": lambda: image_pull_backoff("ErrImagePull"),
    "unschedulable": unschedulable,
    "running": running,
}


# --- the stub -----------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


class FakeKubernetes:
    """The stub; every public method is thread-safe. See the module docstring."""

    def __init__(
        self,
        *,
        token: str = "fake-k8s-token",  # noqa: S107 - a test token for a loopback stub
        auto: bool = False,
        auto_delay: float = 0.05,
        namespaces: set[str] | None = None,
        host: str = "127.0.0.1",
    ):
        self.token = token
        self.auto = auto
        self.auto_delay = auto_delay
        self.namespaces = namespaces  # None: every namespace exists
        self.default_outcome: Callable[[], Outcome] = succeeded
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.requests: list[RecordedRequest] = []
        self.created: list[dict] = []  # every Job ever created (a copy as posted, after defaults)
        self.deleted: list[tuple[str, str, str | None]] = []  # (namespace, name, propagationPolicy)
        self._host = host
        self._markers: list[tuple[str, Callable[[], Outcome]]] = []
        self._errors: list[dict] = []
        self._lock = threading.RLock()
        self._created_cond = threading.Condition(self._lock)
        self._resource_version = itertools.count(1000)
        self._timers: list[threading.Timer] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> FakeKubernetes:
        self._server = _Server((self._host, 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-k8s", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return f"http://{self._host}:{self._server.server_address[1]}"

    def configuration(self):
        """A kubernetes.client.Configuration for this stub (bearer token auth)."""
        from kubernetes import client

        configuration = client.Configuration(host=self.host)
        configuration.api_key = {"authorization": self.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return configuration

    def api_client(self):
        from kubernetes import client

        return client.ApiClient(self.configuration())

    # scripting -------------------------------------------------------------------------------------------
    def on(self, marker: str, outcome: Callable[[], Outcome] | Outcome) -> None:
        """Auto controller: a Job whose AIGEN_PROMPT contains ``marker`` gets ``outcome``."""
        with self._lock:
            self._markers.append((marker, outcome if callable(outcome) else (lambda: outcome)))

    def inject_error(
        self,
        status: int,
        *,
        method: str | None = None,
        path_contains: str = "",
        times: int = 1,
        reason: str = "",
    ) -> None:
        """The next ``times`` matching API calls fail with ``status`` and a Status body."""
        reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests"}
        with self._lock:
            self._errors.append(
                {
                    "status": status,
                    "method": method,
                    "path": path_contains,
                    "times": times,
                    "reason": reason or reasons.get(status, "InternalError"),
                }
            )

    def wait_for_job(self, timeout: float = 10.0, *, index: int | None = None) -> dict:
        """The created Job number ``index`` (default: the next one not yet returned); waits for it."""
        with self._lock:
            if index is None:
                index = getattr(self, "_waited", 0)
                self._waited = index + 1
            if not self._created_cond.wait_for(lambda: len(self.created) > index, timeout):
                raise TimeoutError(f"no Job #{index} was created within {timeout}s")
            return copy.deepcopy(self.created[index])

    def wait_finished(self, namespace: str, name: str, timeout: float = 10.0) -> tuple[str, str | None]:
        """(condition type, reason) once the Job is Complete or Failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(namespace, name)
            for condition in (job or {}).get("status", {}).get("conditions", []):
                if condition["type"] in ("Complete", "Failed"):
                    return condition["type"], condition.get("reason")
            time.sleep(0.01)
        raise TimeoutError(f"Job {namespace}/{name} did not finish within {timeout}s")

    def job(self, namespace: str, name: str) -> dict | None:
        with self._lock:
            job = self.jobs.get((namespace, name))
            return copy.deepcopy(job) if job else None

    def pods_of(self, namespace: str, job_name: str) -> list[dict]:
        with self._lock:
            return [
                copy.deepcopy(p)
                for (ns, _), p in self.pods.items()
                if ns == namespace and p["metadata"]["labels"].get("job-name") == job_name
            ]

    # the controller's moves -------------------------------------------------------------------------------
    def start_pod(self, namespace: str, job_name: str, *, phase: str = "Running") -> str:
        """Create the Job's pod (Running by default) and mark the Job active; returns the pod name."""
        with self._lock:
            job = self._job(namespace, job_name)
            pod_name = f"{job_name}-{uuid.uuid4().hex[:5]}"
            template = job["spec"]["template"]
            labels = dict(template["metadata"].get("labels") or {})
            labels.update(
                {
                    "job-name": job_name,
                    "batch.kubernetes.io/job-name": job_name,
                    "controller-uid": job["metadata"]["uid"],
                    "batch.kubernetes.io/controller-uid": job["metadata"]["uid"],
                }
            )
            spec = copy.deepcopy(template["spec"])
            spec.setdefault("nodeName", "fake-node-1")
            containers = spec.get("containers") or []
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": labels,
                    "creationTimestamp": now_iso(),
                    "resourceVersion": str(next(self._resource_version)),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": job_name,
                            "uid": job["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": spec,
                "status": {
                    "phase": phase,
                    "startTime": now_iso(),
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c.get("image", ""),
                            "imageID": "",
                            "ready": phase == "Running",
                            "restartCount": 0,
                            "started": phase == "Running",
                            "state": {"running": {"startedAt": now_iso()}} if phase == "Running" else {},
                        }
                        for c in containers
                    ],
                },
            }
            self.pods[(namespace, pod_name)] = pod
            job["status"]["active"] = job["status"].get("active", 0) + 1
            job["status"].setdefault("startTime", now_iso())
            self._touch(job)
            return pod_name

    def set_pod_status(
        self,
        namespace: str,
        pod_name: str,
        *,
        phase: str | None = None,
        container_state: dict | None = None,
        reason: str | None = None,
        message: str | None = None,
        conditions: list[dict] | None = None,
        log: str | None = None,
    ) -> None:
        with self._lock:
            pod = self.pods.get((namespace, pod_name))
            if pod is None:
                raise KeyError(f"no pod {namespace}/{pod_name}")
            status = pod["status"]
            if phase:
                status["phase"] = phase
            if reason:
                status["reason"] = reason
            if message:
                status["message"] = message
            if conditions:
                types = {c["type"] for c in conditions}
                status["conditions"] = [
                    c for c in status["conditions"] if c["type"] not in types
                ] + conditions
            if container_state is not None:
                for container in status["containerStatuses"]:
                    container["state"] = copy.deepcopy(container_state)
                    container["ready"] = "running" in container_state
            if log is not None:
                self.logs[(namespace, pod_name)] = log
            self._touch(pod)

    def set_job_condition(
        self, namespace: str, job_name: str, type_: str, reason: str = "", message: str = ""
    ) -> None:
        """Finish the Job like the Job controller (Complete or Failed, plus the 1.31 companion condition)."""
        with self._lock:
            job = self._job(namespace, job_name)
            status = job["status"]
            conditions = status.setdefault("conditions", [])
            companion = {"Complete": "SuccessCriteriaMet", "Failed": "FailureTarget"}.get(type_)
            for kind in (companion, type_):
                if kind:
                    condition = {"type": kind, "status": "True", "lastProbeTime": now_iso()}
                    condition["lastTransitionTime"] = now_iso()
                    if reason:
                        condition["reason"] = reason
                    if message:
                        condition["message"] = message
                    conditions.append(condition)
            if type_ == "Complete":
                status.pop("active", None)
                status["succeeded"] = 1
                status["completionTime"] = now_iso()
            elif type_ == "Failed":
                status["failed"] = max(1, status.pop("active", 0))
            self._touch(job)

    def apply(self, namespace: str, job_name: str, outcome: Outcome, *, pod_name: str | None = None) -> str:
        """Play ``outcome`` on the Job: its pod (created if needed) and, for final outcomes, its condition."""
        with self._lock:
            job = self._job(namespace, job_name)
            if pod_name is None:
                pods = [
                    p
                    for p in self.pods_of(namespace, job_name)
                    if p["status"]["phase"] in ("Pending", "Running")
                ]
                pod_name = pods[0]["metadata"]["name"] if pods else self.start_pod(namespace, job_name)
            env = _env_of(job)
            log = outcome.log(env) if callable(outcome.log) else outcome.log
            self.set_pod_status(
                namespace,
                pod_name,
                phase=outcome.pod_phase,
                container_state=outcome.container_state,
                reason=outcome.pod_reason,
                message=outcome.pod_message,
                conditions=outcome.pod_conditions,
                log=log,
            )
            if outcome.job_condition:
                self.set_job_condition(namespace, job_name, *outcome.job_condition)
            return pod_name

    # internals -------------------------------------------------------------------------------------------
    def _job(self, namespace: str, name: str) -> dict:
        job = self.jobs.get((namespace, name))
        if job is None:
            raise KeyError(f"no Job {namespace}/{name}")
        return job

    def _touch(self, obj: dict) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._resource_version))

    def _outcome_for(self, job: dict) -> Outcome:
        env = _env_of(job)
        if env.get("AIGEN_FAKE_OUTCOME") in OUTCOMES:
            return OUTCOMES[env["AIGEN_FAKE_OUTCOME"]]()
        prompt = env.get("AIGEN_PROMPT", "")
        for marker, outcome in self._markers:
            if marker in prompt:
                return outcome()
        return self.default_outcome()

    def _auto_run(self, namespace: str, name: str) -> None:
        try:
            with self._lock:
                job = self.jobs.get((namespace, name))
                if job is None:
                    return
                outcome = self._outcome_for(job)
            self.apply(namespace, name, outcome)
        except KeyError:  # deleted meanwhile
            pass

    def _check_injected(self, method: str, path: str) -> None:
        with self._lock:
            for rule in self._errors:
                if rule["times"] > 0 and rule["method"] in (None, method) and rule["path"] in path:
                    rule["times"] -= 1
                    raise ApiError(rule["status"], rule["reason"], f"injected failure ({rule['status']})")

    def _check_namespace(self, namespace: str) -> None:
        if self.namespaces is not None and namespace not in self.namespaces:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')

    def _create_job(self, namespace: str, body: Any, dry_run: bool) -> dict:
        self._check_namespace(namespace)
        job = _validated_job(body, namespace)
        name = job["metadata"]["name"]
        with self._lock:
            if (namespace, name) in self.jobs:
                raise ApiError(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            if dry_run:
                return job
            job["metadata"]["resourceVersion"] = str(next(self._resource_version))
            self.jobs[(namespace, name)] = job
            self.created.append(copy.deepcopy(job))
            self._created_cond.notify_all()
            if self.auto:
                self.start_pod(namespace, name, phase="Pending")
                timer = threading.Timer(self.auto_delay, self._auto_run, (namespace, name))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            return copy.deepcopy(job)

    def _delete_job(self, namespace: str, name: str, policy: str | None) -> dict:
        with self._lock:
            job = self.jobs.pop((namespace, name), None)
            if job is None:
                raise ApiError(404, "NotFound", f'jobs.batch "{name}" not found')
            self.deleted.append((namespace, name, policy))
            if policy in ("Background", "Foreground"):
                for key in [
                    k for k, p in self.pods.items() if p["metadata"]["labels"].get("job-name") == name
                ]:
                    if key[0] == namespace:
                        self.pods.pop(key)
                        self.logs.pop(key, None)
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]},
            }


def _env_of(job: dict) -> dict[str, str]:
    containers = job["spec"]["template"]["spec"].get("containers") or []
    return {e["name"]: e.get("value", "") for c in containers for e in (c.get("env") or [])}


def _invalid(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _validated_job(body: Any, namespace: str) -> dict:
    """Defaults and refusals of the API server for a batch/v1 Job (the ones a client can get wrong)."""
    if not isinstance(body, dict) or body.get("kind", "Job") != "Job":
        raise ApiError(400, "BadRequest", "the body is not a batch/v1 Job")
    job = copy.deepcopy(body)
    meta = job.setdefault("metadata", {})
    name = meta.get("name")
    if not name and meta.get("generateName"):
        name = meta["generateName"] + uuid.uuid4().hex[:5]
    if not name or len(name) > 63 or not DNS_1123_LABEL.match(name):
        raise _invalid(
            f'Job.batch "{name}" is invalid: metadata.name: must be a DNS-1123 label of at most 63 chars'
        )
    for key, value in (meta.get("labels") or {}).items():
        if len(str(value)) > 63 or not re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", str(value)):
            raise _invalid(f'Job.batch "{name}" is invalid: metadata.labels: invalid value for {key}')
    spec = job.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    if not containers or any(not c.get("name") or not c.get("image") for c in containers):
        raise _invalid(f'Job.batch "{name}" is invalid: spec.template.spec.containers: Required value')
    restart = pod_spec.get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        raise _invalid(f'Job.batch "{name}" is invalid: spec.template.spec.restartPolicy: Unsupported value')
    if spec.get("podFailurePolicy") and restart != "Never":
        raise _invalid(f'Job.batch "{name}" is invalid: spec.podFailurePolicy requires restartPolicy Never')
    meta.update(
        name=name,
        namespace=namespace,
        uid=str(uuid.uuid4()),
        creationTimestamp=now_iso(),
        generation=1,
    )
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec["template"].setdefault("metadata", {})
    labels = spec["template"]["metadata"].setdefault("labels", {})
    labels.update({"job-name": name, "batch.kubernetes.io/job-name": name})
    job["status"] = {}
    return job


def _handler_for(fake: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
    jobs_path = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?(/status)?$")
    pods_path = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

        def do_DELETE(self):
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            authorization = self.headers.get("Authorization")
            with fake._lock:
                fake.requests.append(RecordedRequest(method, url.path, query, authorization, body))
            try:
                if authorization != f"Bearer {fake.token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                fake._check_injected(method, url.path)
                status, payload = self._route(method, url.path, query, body)
            except ApiError as exc:
                status, payload = exc.code, exc.status()
            self._send(status, payload)

        def _route(self, method, path, query, body):
            def one(name: str) -> str | None:
                return (query.get(name) or [None])[0]

            if path == "/version" and method == "GET":
                return 200, {
                    "major": "1",
                    "minor": "31",
                    "gitVersion": "v1.31.0-fake",
                    "platform": "linux/amd64",
                }
            if path == "/apis/batch/v1/jobs" and method == "GET":
                return 200, self._list("JobList", "batch/v1", fake.jobs, None, one("labelSelector"))
            match = jobs_path.match(path)
            if match:
                namespace, name, _status = match.groups()
                fake._check_namespace(namespace)
                if name is None and method == "POST":
                    return 201, fake._create_job(namespace, body, dry_run=one("dryRun") == "All")
                if name is None and method == "GET":
                    return 200, self._list("JobList", "batch/v1", fake.jobs, namespace, one("labelSelector"))
                if name and method == "GET":
                    job = fake.job(namespace, name)
                    if job is None:
                        raise ApiError(404, "NotFound", f'jobs.batch "{name}" not found')
                    return 200, job
                if name and method == "DELETE":
                    policy = one("propagationPolicy") or (body or {}).get("propagationPolicy")
                    return 200, fake._delete_job(namespace, name, policy)
            match = pods_path.match(path)
            if match and method == "GET":
                namespace, name, log = match.groups()
                fake._check_namespace(namespace)
                if name is None:
                    return 200, self._list("PodList", "v1", fake.pods, namespace, one("labelSelector"))
                with fake._lock:
                    pod = fake.pods.get((namespace, name))
                    if pod is None:
                        raise ApiError(404, "NotFound", f'pods "{name}" not found')
                    if log:
                        if pod["status"]["phase"] == "Pending":
                            message = (
                                f'container "model" in pod "{name}" is waiting to start: ContainerCreating'
                            )
                            raise ApiError(400, "BadRequest", message)
                        text = fake.logs.get((namespace, name), "")
                        tail = one("tailLines")
                        if tail is not None:
                            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
                        return 200, text
                    return 200, copy.deepcopy(pod)
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({method} {path})"
            )

        def _list(self, kind, api_version, store, namespace, selector):
            with fake._lock:
                items = [
                    copy.deepcopy(obj)
                    for (ns, _), obj in store.items()
                    if (namespace is None or ns == namespace)
                    and selector_matches(selector, obj["metadata"].get("labels"))
                ]
                version = str(next(fake._resource_version))
            return {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": version},
                "items": items,
            }

        def _send(self, status: int, payload: Any) -> None:
            if isinstance(payload, str):
                data, content_type = payload.encode(), "text/plain"
            else:
                data, content_type = json.dumps(payload).encode(), "application/json"
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


@pytest.fixture
def fake_k8s():
    """A started FakeKubernetes; the test plays the Job controller."""
    with FakeKubernetes() as fake:
        yield fake


@pytest.fixture
def fake_k8s_auto():
    """A started FakeKubernetes whose auto controller finishes each Job (success unless scripted)."""
    with FakeKubernetes(auto=True) as fake:
        yield fake
