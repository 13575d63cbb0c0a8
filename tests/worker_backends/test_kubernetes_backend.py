"""The internal backend against the Kubernetes API stub, with the real kubernetes client."""

import threading

import pytest
from kubernetes.client.exceptions import ApiException

from tests.support import fake_k8s as fk
from tests.worker_backends.jobs import make_job
from worker.backends.base import BackendFailure
from worker.backends.kubernetes_backend import (
    KubernetesBackend,
    KubernetesConfig,
    failed_job_signal,
    job_name,
    parse_result,
)
from worker.classification import classify, signal_from_exception

NS = "aigen-test"


def backend_for(fake, **overrides):
    settings = {"namespace": NS, "host": fake.host, "token": fake.token, "poll_interval": 0.02} | overrides
    return KubernetesBackend(KubernetesConfig(**settings))


def failure_of(backend, job, timeout=10):
    with pytest.raises((BackendFailure, ApiException)) as caught:
        backend.generate(job, timeout=timeout)
    return classify(signal_from_exception(caught.value))


def test_job_manifest(fake_k8s_auto):
    backend = backend_for(fake_k8s_auto, active_deadline_seconds=600, ttl_seconds_after_finished=120)
    job = make_job(backend="internal", params={"temperature": 0.5}, prompt="Draw [marker] a cat", attempt=2)
    backend.generate(job, timeout=30.2)
    created = fake_k8s_auto.wait_for_job()
    name = created["metadata"]["name"]
    assert fk.DNS_1123_LABEL.match(name) and len(name) <= 63
    assert created["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aigen-worker"
    assert created["metadata"]["labels"]["aigen/request-id"] == job.request_id
    spec = created["spec"]
    assert (spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"], spec["backoffLimit"]) == (
        31,
        120,
        0,
    )
    rule = spec["podFailurePolicy"]["rules"][0]
    assert rule == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "model", "operator": "In", "values": [42]},
    }
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in pod_spec["containers"][0]["env"]}
    assert env["AIGEN_PROMPT"] == "Draw [marker] a cat"
    assert env["AIGEN_PARAMS_JSON"] == '{"temperature": 0.5}'
    assert (env["AIGEN_TASK"], env["AIGEN_MODEL"], env["AIGEN_REQUEST_ID"]) == (
        "text",
        "gpt-test",
        job.request_id,
    )
    assert spec["template"]["metadata"]["labels"]["aigen/request-id"] == job.request_id


def test_deadline_ceiling_applies():
    backend = KubernetesBackend(KubernetesConfig(active_deadline_seconds=60))
    assert backend.manifest(make_job(), timeout=3600)["spec"]["activeDeadlineSeconds"] == 60


def test_job_names_are_unique_per_attempt_and_valid():
    names = {job_name("aigen", "0f8e1c2a-1111-4222-8333-444455556666", 3) for _ in range(50)}
    assert len(names) == 50
    assert all(fk.DNS_1123_LABEL.match(n) and len(n) <= 63 for n in names)
    long = job_name("A_Very_Long_Prefix" * 4, "ID", 1)
    assert fk.DNS_1123_LABEL.match(long) and len(long) <= 63


def test_text_success_reads_the_last_log_line_and_cleans_up(fake_k8s_auto):
    fake_k8s_auto.on("[poem]", fk.succeeded(output="roses are red"))
    result = backend_for(fake_k8s_auto).generate(make_job(prompt="a [poem]"), timeout=10)
    assert (result.output, result.output_url) == ("roses are red", None)
    (created,) = fake_k8s_auto.created
    name = created["metadata"]["name"]
    assert fake_k8s_auto.deleted == [(NS, name, "Background")]
    assert fake_k8s_auto.pods_of(NS, name) == []


def test_image_success_with_usage(fake_k8s_auto):
    result = backend_for(fake_k8s_auto).generate(make_job(task="image"), timeout=10)
    assert result.output_url.endswith(".png")
    assert result.usage == {"images": 1}


# Each failure the cluster can show, played by the auto controller, lands in its taxonomy row.
CLUSTER_FAILURES = [
    (fk.oom_killed, "pod_error", "OOMKilled"),
    (fk.evicted, "pod_error", "Evicted"),
    (fk.crashed, "pod_error", "BackoffLimitExceeded"),
    (fk.deadline_exceeded, "model_timeout", "DeadlineExceeded"),
    (fk.user_input_exit, "model_rejected_input", "PodFailurePolicy"),
    (fk.image_pull_backoff, "pod_error", "ImagePullBackOff"),
    (lambda: fk.image_pull_backoff("ErrImagePull"), "pod_error", "ErrImagePull"),
    (fk.unschedulable, "pod_error", "Unschedulable"),
]


@pytest.mark.parametrize(
    ("outcome", "error_type", "error_code"), CLUSTER_FAILURES, ids=[c[2] for c in CLUSTER_FAILURES]
)
def test_cluster_failure_is_classified_and_cleaned_up(fake_k8s_auto, outcome, error_type, error_code):
    fake_k8s_auto.on("[x]", outcome)
    backend = backend_for(fake_k8s_auto, pending_grace_seconds=0.2)
    result = failure_of(backend, make_job(prompt="[x]"))
    assert (result.error_type, result.error_code) == (error_type, error_code)
    assert [d[2] for d in fake_k8s_auto.deleted] == ["Background"]


def test_user_input_exit_code_is_user_side(fake_k8s_auto):
    fake_k8s_auto.on("[bad]", fk.user_input_exit)
    result = failure_of(backend_for(fake_k8s_auto), make_job(prompt="[bad]"))
    assert (result.side, result.retryable) == ("user", False)
    assert result.specific_guidance


def test_configured_exit_code_is_honoured(fake_k8s_auto):
    fake_k8s_auto.on("[bad]", lambda: fk.user_input_exit(7))
    backend = backend_for(fake_k8s_auto, user_input_exit_code=7)
    assert failure_of(backend, make_job(prompt="[bad]")).error_type == "model_rejected_input"
    assert fake_k8s_auto.created[0]["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [7]


def test_bad_input_exit_without_pod_failure_policy_still_counts(fake_k8s_auto):
    # an older cluster ignoring podFailurePolicy reports BackoffLimitExceeded; the exit code still tells
    fake_k8s_auto.on("[bad]", lambda: fk.crashed(42))
    assert (
        failure_of(backend_for(fake_k8s_auto), make_job(prompt="[bad]")).error_type == "model_rejected_input"
    )


def test_worker_deadline_ends_a_job_that_never_finishes(fake_k8s_auto):
    fake_k8s_auto.on("[hang]", fk.running)
    result = failure_of(backend_for(fake_k8s_auto), make_job(prompt="[hang]"), timeout=0.3)
    assert result.error_type == "model_timeout"
    assert len(fake_k8s_auto.deleted) == 1


def test_log_without_a_result_is_unknown(fake_k8s_auto):
    fake_k8s_auto.on("[mute]", fk.succeeded("started\nfinished without printing\n"))
    assert failure_of(backend_for(fake_k8s_auto), make_job(prompt="[mute]")).error_type == "unknown"


def test_manual_controller_drives_the_backend(fake_k8s):
    backend = backend_for(fake_k8s)
    outcome = {}

    def run():
        try:
            outcome["result"] = backend.generate(make_job(), timeout=10)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    name = fake_k8s.wait_for_job()["metadata"]["name"]
    pod = fake_k8s.start_pod(NS, name)
    fake_k8s.apply(NS, name, fk.succeeded(output="by hand"), pod_name=pod)
    thread.join(10)
    assert "error" not in outcome, outcome
    assert outcome["result"].output == "by hand"


@pytest.mark.parametrize(("status", "error_type"), [(403, "provider_auth"), (500, "provider_unavailable")])
def test_api_errors_on_create(fake_k8s, status, error_type):
    fake_k8s.inject_error(status, method="POST")
    result = failure_of(backend_for(fake_k8s), make_job())
    assert (result.error_type, result.side) == (error_type, "system")
    assert fake_k8s.created == []


def test_transient_poll_errors_are_tolerated(fake_k8s_auto):
    fake_k8s_auto.auto_delay = 0.2
    fake_k8s_auto.inject_error(503, method="GET", path_contains="/jobs/", times=2)
    assert backend_for(fake_k8s_auto).generate(make_job(), timeout=10).output


def test_persistent_poll_errors_fail_the_generation(fake_k8s_auto):
    fake_k8s_auto.auto_delay = 5
    fake_k8s_auto.inject_error(503, method="GET", path_contains="/jobs/", times=100)
    result = failure_of(backend_for(fake_k8s_auto, api_error_tolerance=2), make_job())
    assert result.error_type == "provider_unavailable"
    assert len(fake_k8s_auto.deleted) == 1


def test_job_deleted_by_someone_else_is_unknown(fake_k8s):
    backend = backend_for(fake_k8s)
    errors = []

    def run():
        try:
            backend.generate(make_job(), timeout=10)
        except BackendFailure as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    name = fake_k8s.wait_for_job()["metadata"]["name"]
    fake_k8s._delete_job(NS, name, "Background")
    thread.join(10)
    assert classify(errors[0].signal).error_type == "unknown"


# --- the pure status → signal function, row by row ----------


def _job(reason):
    return {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": reason}]}}


def _pod(**status):
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": status}


def _terminated(code, reason="Error"):
    return _pod(containerStatuses=[{"state": {"terminated": {"exitCode": code, "reason": reason}}}])


@pytest.mark.parametrize(
    ("job", "pods", "error_type", "reason"),
    [
        (_job("DeadlineExceeded"), [_terminated(143)], "model_timeout", "DeadlineExceeded"),
        (_job("PodFailurePolicy"), [_terminated(42)], "model_rejected_input", "PodFailurePolicy"),
        (_job("BackoffLimitExceeded"), [_terminated(137, "OOMKilled")], "pod_error", "OOMKilled"),
        (_job("BackoffLimitExceeded"), [_pod(reason="Evicted")], "pod_error", "Evicted"),
        (_job("BackoffLimitExceeded"), [_terminated(1)], "pod_error", "BackoffLimitExceeded"),
        (_job("BackoffLimitExceeded"), [_terminated(42)], "model_rejected_input", "UserInputExitCode"),
        (_job("BackoffLimitExceeded"), [], "pod_error", "BackoffLimitExceeded"),
        (_job("MaxFailedIndexesExceeded"), [], "unknown", "MaxFailedIndexesExceeded"),
    ],
)
def test_failed_job_signal(job, pods, error_type, reason):
    signal = failed_job_signal(job, pods, user_input_exit_code=42)
    assert (classify(signal).error_type, signal.reason) == (error_type, reason)


@pytest.mark.parametrize(
    ("log", "output", "output_url"),
    [
        ('noise\n{"output": "hi", "usage": {"total_tokens": 3, "bad": -1}}\n\n', "hi", None),
        ('{"output_url": "https://x/y.png"}', None, "https://x/y.png"),
    ],
)
def test_parse_result(log, output, output_url):
    result = parse_result(log)
    assert (result.output, result.output_url) == (output, output_url)


@pytest.mark.parametrize("log", ["", "plain text", '{"result": 1}', "[1, 2]"])
def test_parse_result_refuses_logs_without_a_result(log):
    with pytest.raises(BackendFailure):
        parse_result(log)


def test_token_stays_out_of_the_config_repr():
    assert "s3cret" not in repr(KubernetesConfig(token="s3cret"))
