"""The internal backend: one Kubernetes batch/v1 Job per generation, through the ``kubernetes`` client.

The Job gets the prompt and params as env vars (AIGEN_PROMPT, AIGEN_PARAMS_JSON, ...), an
activeDeadlineSeconds within the job's remaining time, a ttlSecondsAfterFinished as a safety net, and a
podFailurePolicy that fails the Job at once when the model exits with the configured "bad input" code.
The model prints its result as the last line of its log: {"output": ...} or {"output_url": ...}, with an
optional "usage" object. The backend polls the Job, reads the result or turns the Job's conditions and
its pods' states into a taxonomy Signal, and deletes the Job (propagationPolicy Background) in all cases.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from worker.backends.base import BackendFailure, GenerationOutput
from worker.classification import Signal
from worker.sanitize import usage_counts

log = logging.getLogger(__name__)

MANAGED_BY = "aigen-worker"
# Pod states that never fix themselves quickly: after pending_grace_seconds the backend gives up.
STUCK_WAITING_REASONS = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError"}
)


@dataclass
class KubernetesConfig:
    namespace: str = "aigen"
    image: str = "registry.example/aigen-model:latest"
    command: list[str] | None = None  # None: the image's entrypoint
    # API access: host + token, else in-cluster service account, else kubeconfig (file or default)
    host: str | None = None
    token: str | None = field(default=None, repr=False)
    verify_ssl: bool = True
    ca_cert: str | None = None
    kubeconfig: str | None = None
    request_timeout: float = 10.0  # per API call
    connection_pool_maxsize: int = 32
    # the Job
    job_name_prefix: str = "aigen"
    container_name: str = "model"
    service_account: str | None = None
    resources: dict[str, dict[str, str]] = field(default_factory=dict)  # {"limits": {"memory": "2Gi"}, ...}
    node_selector: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    active_deadline_seconds: int = 900  # ceiling; the job's remaining time lowers it
    ttl_seconds_after_finished: int = 300  # cleans up if the worker dies before deleting the Job
    backoff_limit: int = 0  # the worker owns retries
    user_input_exit_code: int = 42  # the model's way of saying "bad input" (podFailurePolicy FailJob)
    # watching it
    poll_interval: float = 1.0
    pending_grace_seconds: float = 120.0  # how long a pod may sit in ImagePullBackOff / Unschedulable
    api_error_tolerance: int = 3  # consecutive failed polls tolerated before giving up
    log_tail_lines: int = 20


# --- pure functions over Job / Pod JSON (camelCase dicts, as the API serves them) ----------


def job_finished(job: dict) -> str | None:
    """ "Complete", "Failed", or None while the Job runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return condition["type"]
    return None


def _condition(obj: dict, type_: str) -> dict | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return condition
    return None


def _newest_first(pods: list[dict]) -> list[dict]:
    return sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "", reverse=True)


def pod_signal(pod: dict, user_input_exit_code: int) -> Signal | None:
    """What went wrong with one pod, if anything: evicted, a container's exit, a stuck wait, unschedulable."""
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return Signal(kind="k8s", reason="Evicted", message=status.get("message"))
    containers = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    for container in containers:
        state = container.get("state") or {}
        terminated = state.get("terminated")
        if terminated and terminated.get("exitCode") not in (None, 0):
            code = terminated["exitCode"]
            if terminated.get("reason") == "OOMKilled":
                return Signal(
                    kind="k8s", reason="OOMKilled", exit_code=code, message=terminated.get("message")
                )
            if code == user_input_exit_code:
                return Signal(kind="k8s", reason="UserInputExitCode", exit_code=code)
            return Signal(kind="k8s", reason="Error", exit_code=code, message=terminated.get("message"))
        waiting = state.get("waiting")
        if waiting and waiting.get("reason") in STUCK_WAITING_REASONS:
            return Signal(kind="k8s", reason=waiting["reason"], message=waiting.get("message"))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return Signal(kind="k8s", reason="Unschedulable", message=scheduled.get("message"))
    return None


def failed_job_signal(job: dict, pods: list[dict], user_input_exit_code: int) -> Signal:
    """The Signal for a Job whose Failed condition is set, refined by what its pods show."""
    condition = _condition(job, "Failed") or {}
    reason = condition.get("reason") or "Failed"
    message = condition.get("message")
    found = [s for s in (pod_signal(p, user_input_exit_code) for p in _newest_first(pods)) if s]
    if reason == "DeadlineExceeded":
        return Signal(kind="k8s", reason=reason, message=message)
    if reason == "PodFailurePolicy":
        exit_code = next((s.exit_code for s in found if s.exit_code == user_input_exit_code), None)
        return Signal(kind="k8s", reason=reason, exit_code=exit_code, message=message)
    if found and found[0].reason != "Error":  # OOMKilled, Evicted, UserInputExitCode ... say more
        return found[0]
    exit_code = found[0].exit_code if found else None
    return Signal(kind="k8s", reason=reason, exit_code=exit_code, message=message)


def stuck_signal(pods: list[dict], user_input_exit_code: int) -> Signal | None:
    """A pod of a still-active Job that is waiting on something that will not come (image, a node)."""
    for pod in _newest_first(pods):
        signal = pod_signal(pod, user_input_exit_code)
        if signal and (signal.reason in STUCK_WAITING_REASONS or signal.reason == "Unschedulable"):
            return signal
    return None


def parse_result(log_text: str) -> GenerationOutput:
    """The last non-empty log line as the JSON result {"output"|"output_url", "usage"?}."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        result = {}
    # each field on its own: a string output must not carry a non-string output_url along with it
    output = result["output"] if isinstance(result.get("output"), str) else None
    url = result["output_url"] if isinstance(result.get("output_url"), str) else None
    if output is None and url is None:
        raise BackendFailure(Signal(kind="other", message="the model's log does not end with a JSON result"))
    return GenerationOutput(output=output, output_url=url or None, usage=usage_counts(result.get("usage")))


def job_name(prefix: str, request_id: str, attempt: int) -> str:
    """A DNS-1123 label (<= 63 chars), unique per call even for the same request and attempt."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{request_id}-a{attempt}".lower())
    suffix = uuid.uuid4().hex[:6]
    return f"{base[: 63 - len(suffix) - 1].strip('-')}-{suffix}"


# --- the backend ----------


class KubernetesBackend:
    name = "internal"

    def __init__(self, config: KubernetesConfig, *, api_client: Any = None, clock=time.monotonic):
        self.config = config
        self._api_client = api_client
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def api_client(self):
        # built lazily: a worker that only runs the external backend needs no cluster access
        with self._lock:
            if self._api_client is None:
                self._api_client = _make_api_client(self.config)
            return self._api_client

    def close(self) -> None:
        with self._lock:
            if self._api_client is not None:
                self._api_client.close()
                self._api_client = None

    def generate(self, job: Any, *, timeout: float) -> GenerationOutput:
        if timeout <= 0:
            raise BackendFailure(Signal(kind="deadline", message="no time left before the job's deadline"))
        from kubernetes import client

        batch = client.BatchV1Api(self.api_client)
        core = client.CoreV1Api(self.api_client)
        manifest = self.manifest(job, timeout)
        name = manifest["metadata"]["name"]
        batch.create_namespaced_job(
            self.config.namespace,
            manifest,
            _request_timeout=self.config.request_timeout,
            _preload_content=False,
        )
        log.info("created Job %s for request %s", name, job.request_id)
        try:
            return self._wait(batch, core, name, self._clock() + timeout)
        finally:
            self._delete(batch, name)

    def manifest(self, job: Any, timeout: float) -> dict:
        """The batch/v1 Job for ``job`` (plain JSON)."""
        config = self.config
        name = job_name(config.job_name_prefix, job.request_id, job.attempt)
        labels = {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/component": "generation",
            "aigen/request-id": job.request_id,
            "aigen/attempt": str(job.attempt),
        }
        env = {
            **config.extra_env,
            "AIGEN_REQUEST_ID": job.request_id,
            "AIGEN_TASK": job.task,
            "AIGEN_MODEL": job.model,
            "AIGEN_PROMPT": job.prompt,
            "AIGEN_PARAMS_JSON": json.dumps(job.params or {}, sort_keys=True),
            "AIGEN_USER_INPUT_EXIT_CODE": str(config.user_input_exit_code),
        }
        container: dict[str, Any] = {
            "name": config.container_name,
            "image": config.image,
            "env": [{"name": k, "value": v} for k, v in env.items()],
        }
        if config.command:
            container["command"] = list(config.command)
        if config.resources:
            container["resources"] = config.resources
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",  # podFailurePolicy requires it; retries belong to the worker
            "automountServiceAccountToken": False,
            "containers": [container],
        }
        if config.service_account:
            pod_spec["serviceAccountName"] = config.service_account
        if config.node_selector:
            pod_spec["nodeSelector"] = config.node_selector
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": config.namespace, "labels": labels},
            "spec": {
                "activeDeadlineSeconds": max(1, min(config.active_deadline_seconds, math.ceil(timeout))),
                "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
                "backoffLimit": config.backoff_limit,
                "podFailurePolicy": {
                    "rules": [
                        {
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": config.container_name,
                                "operator": "In",
                                "values": [config.user_input_exit_code],
                            },
                        }
                    ]
                },
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        }

    # watching ----------
    def _wait(self, batch, core, name: str, deadline: float) -> GenerationOutput:
        namespace, config = self.config.namespace, self.config
        stuck_since: dict[str, float] = {}
        api_errors = 0
        while True:
            try:
                job = self._read(batch.read_namespaced_job, name, namespace)
                pods = self._read(core.list_namespaced_pod, namespace, label_selector=f"job-name={name}")[
                    "items"
                ]
                api_errors = 0
            except Exception as exc:
                if _is_not_found(exc):
                    raise BackendFailure(
                        Signal(kind="k8s", reason="JobDeleted", message=f"Job {name} vanished")
                    ) from exc
                api_errors += 1
                if api_errors > config.api_error_tolerance:
                    raise
                log.warning(
                    "polling Job %s failed (%s/%s): %s", name, api_errors, config.api_error_tolerance, exc
                )
                job, pods = None, []
            if job is not None:
                finished = job_finished(job)
                if finished == "Complete":
                    return self._result(core, pods, name)
                if finished == "Failed":
                    signal = failed_job_signal(job, pods, config.user_input_exit_code)
                    raise BackendFailure(signal, f"Job {name} failed: {signal.reason}")
                stuck = stuck_signal(pods, config.user_input_exit_code)
                if stuck is None:
                    stuck_since.clear()
                else:
                    first = stuck_since.setdefault(stuck.reason, self._clock())
                    if self._clock() - first >= config.pending_grace_seconds:
                        raise BackendFailure(stuck, f"Job {name} stuck: {stuck.reason}")
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise BackendFailure(Signal(kind="deadline", message=f"Job {name} did not finish in time"))
            time.sleep(min(config.poll_interval, remaining))

    def _read(self, method, *args, **kwargs) -> dict:
        response = method(
            *args, _request_timeout=self.config.request_timeout, _preload_content=False, **kwargs
        )
        return json.loads(response.data)

    def _result(self, core, pods: list[dict], name: str) -> GenerationOutput:
        done = [p for p in _newest_first(pods) if (p.get("status") or {}).get("phase") == "Succeeded"]
        if not done:
            raise BackendFailure(
                Signal(kind="other", message=f"Job {name} completed without a succeeded pod")
            )
        response = core.read_namespaced_pod_log(
            done[0]["metadata"]["name"],
            self.config.namespace,
            container=self.config.container_name,
            tail_lines=self.config.log_tail_lines,
            _request_timeout=self.config.request_timeout,
            _preload_content=False,  # the client would turn a JSON log line into a Python repr
        )
        return parse_result(response.data.decode("utf-8", "replace"))

    def _delete(self, batch, name: str) -> None:
        try:
            batch.delete_namespaced_job(
                name,
                self.config.namespace,
                propagation_policy="Background",  # the default would orphan the pods
                _request_timeout=self.config.request_timeout,
                _preload_content=False,
            )
        except Exception as exc:  # the TTL removes it later; the generation's outcome stands
            if not _is_not_found(exc):
                log.warning("could not delete Job %s: %s", name, exc)


def _is_not_found(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == 404


def _make_api_client(config: KubernetesConfig):
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    if config.host:
        configuration.host = config.host
        if config.token:
            configuration.api_key = {"authorization": config.token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.verify_ssl = config.verify_ssl
        configuration.ssl_ca_cert = config.ca_cert
    else:
        try:
            kube_config.load_incluster_config(client_configuration=configuration)
        except kube_config.ConfigException:
            kube_config.load_kube_config(config_file=config.kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = config.connection_pool_maxsize
    return client.ApiClient(configuration)
