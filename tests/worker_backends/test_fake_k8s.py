"""The Kubernetes API stub, driven by the real kubernetes client."""

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import fake_k8s as fk


def job_body(name="gen-1", labels=None, prompt="hello", restart="Never", policy=True):
    spec = {
        "template": {
            "metadata": {"labels": labels or {}},
            "spec": {
                "restartPolicy": restart,
                "containers": [
                    {"name": "model", "image": "m:1", "env": [{"name": "AIGEN_PROMPT", "value": prompt}]}
                ],
            },
        }
    }
    if policy:
        rule = {
            "action": "FailJob",
            "onExitCodes": {"containerName": "model", "operator": "In", "values": [42]},
        }
        spec["podFailurePolicy"] = {"rules": [rule]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


@pytest.fixture
def apis(fake_k8s):
    api_client = fake_k8s.api_client()
    yield client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    api_client.close()


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("a=1", True),
        ("a==1,b=2", True),
        ("a=1,b=3", False),
        ("a!=2", True),
        ("a in (1,5),b notin (3)", True),
        ("a in (5)", False),
        ("c", False),
        ("!c", True),
        ("a", True),
        ("", True),
    ],
)
def test_label_selector_semantics(selector, expected):
    assert fk.selector_matches(selector, {"a": "1", "b": "2"}) is expected


def test_create_read_list_with_label_selector(fake_k8s, apis):
    batch, _ = apis
    batch.create_namespaced_job("ns1", job_body("one", {"team": "a"}))
    batch.create_namespaced_job("ns1", job_body("two", {"team": "b"}))
    batch.create_namespaced_job("ns2", job_body("three", {"team": "a"}))
    job = batch.read_namespaced_job("one", "ns1")
    assert (job.metadata.namespace, job.spec.backoff_limit, job.metadata.uid is not None) == ("ns1", 6, True)
    names = [j.metadata.name for j in batch.list_namespaced_job("ns1", label_selector="team=a").items]
    assert names == ["one"]
    assert len(batch.list_job_for_all_namespaces(label_selector="team=a").items) == 2


def test_bearer_token_is_required(fake_k8s):
    configuration = fake_k8s.configuration()
    configuration.api_key = {"authorization": "wrong"}
    with client.ApiClient(configuration) as api_client, pytest.raises(ApiException) as caught:
        client.BatchV1Api(api_client).list_namespaced_job("ns")
    assert caught.value.status == 401
    assert fake_k8s.requests[-1].authorization == "Bearer wrong"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (job_body("Not_A_DNS_Name"), 422),
        (job_body("x" * 64), 422),
        (job_body("ok", restart="OnFailure"), 422),  # podFailurePolicy needs restartPolicy Never
        (job_body("ok", labels={"aigen/request-id": "not valid!"}), 422),
    ],
)
def test_api_server_refusals(apis, body, status):
    batch, _ = apis
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job("ns", body)
    assert caught.value.status == status


def test_duplicate_name_conflicts_and_missing_job_is_404(apis):
    batch, _ = apis
    batch.create_namespaced_job("ns", job_body("dup"))
    with pytest.raises(ApiException) as conflict:
        batch.create_namespaced_job("ns", job_body("dup"))
    with pytest.raises(ApiException) as missing:
        batch.read_namespaced_job("nope", "ns")
    assert (conflict.value.status, missing.value.status) == (409, 404)


def test_unknown_namespace_when_namespaces_are_declared():
    with (
        fk.FakeKubernetes(namespaces={"aigen"}) as fake,
        fake.api_client() as api_client,
        pytest.raises(ApiException) as caught,
    ):
        client.BatchV1Api(api_client).create_namespaced_job("other", job_body())
    assert caught.value.status == 404


def test_injected_api_errors(fake_k8s, apis):
    batch, _ = apis
    fake_k8s.inject_error(503, method="POST", times=1)
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job("ns", job_body())
    assert caught.value.status == 503
    batch.create_namespaced_job("ns", job_body())  # only once


def test_controller_success_pod_log_and_conditions(fake_k8s, apis):
    batch, core = apis
    batch.create_namespaced_job("ns", job_body("ok-job"))
    pod_name = fake_k8s.start_pod("ns", "ok-job")
    assert batch.read_namespaced_job("ok-job", "ns").status.active == 1
    fake_k8s.apply("ns", "ok-job", fk.succeeded(output="a poem"))
    job = batch.read_namespaced_job("ok-job", "ns")
    assert [c.type for c in job.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert job.status.succeeded == 1
    (pod,) = core.list_namespaced_pod("ns", label_selector="job-name=ok-job").items
    assert (pod.metadata.name, pod.status.phase) == (pod_name, "Succeeded")
    log = core.read_namespaced_pod_log(pod_name, "ns", _preload_content=False).data.decode()
    assert log.splitlines()[-1] == '{"output": "a poem"}'
    tail = core.read_namespaced_pod_log(pod_name, "ns", tail_lines=1, _preload_content=False).data.decode()
    assert tail == '{"output": "a poem"}\n'


@pytest.mark.parametrize(
    ("outcome", "job_reason", "pod_check"),
    [
        (
            fk.oom_killed(),
            "BackoffLimitExceeded",
            lambda p: p.status.container_statuses[0].state.terminated.reason,
        ),
        (fk.evicted(), "BackoffLimitExceeded", lambda p: p.status.reason),
        (fk.deadline_exceeded(), "DeadlineExceeded", lambda p: p.status.phase),
        (
            fk.user_input_exit(42),
            "PodFailurePolicy",
            lambda p: p.status.container_statuses[0].state.terminated.exit_code,
        ),
        (
            fk.crashed(3),
            "BackoffLimitExceeded",
            lambda p: p.status.container_statuses[0].state.terminated.exit_code,
        ),
    ],
)
def test_failed_outcomes(fake_k8s, apis, outcome, job_reason, pod_check):
    batch, core = apis
    batch.create_namespaced_job("ns", job_body("bad"))
    fake_k8s.apply("ns", "bad", outcome)
    failed = [c for c in batch.read_namespaced_job("bad", "ns").status.conditions if c.type == "Failed"]
    assert failed[0].reason == job_reason
    (pod,) = core.list_namespaced_pod("ns", label_selector="job-name=bad").items
    expected = {"oom_killed": "OOMKilled", "evicted": "Evicted", "deadline_exceeded": "Failed"}
    expected |= {"user_input_exit": 42, "crashed": 3}
    assert pod_check(pod) == expected[outcome.name]


def test_stuck_outcomes_leave_the_job_active(fake_k8s, apis):
    batch, core = apis
    batch.create_namespaced_job("ns", job_body("stuck"))
    fake_k8s.apply("ns", "stuck", fk.image_pull_backoff())
    (pod,) = core.list_namespaced_pod("ns", label_selector="job-name=stuck").items
    assert pod.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    assert batch.read_namespaced_job("stuck", "ns").status.conditions is None
    batch.create_namespaced_job("ns", job_body("nowhere"))
    fake_k8s.apply("ns", "nowhere", fk.unschedulable())
    (pod,) = core.list_namespaced_pod("ns", label_selector="job-name=nowhere").items
    scheduled = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    assert (scheduled[0].status, scheduled[0].reason) == ("False", "Unschedulable")


def test_delete_background_removes_pods_orphan_keeps_them(fake_k8s, apis):
    batch, core = apis
    for name in ("bg", "orphan"):
        batch.create_namespaced_job("ns", job_body(name))
        fake_k8s.start_pod("ns", name)
    batch.delete_namespaced_job("bg", "ns", propagation_policy="Background")
    batch.delete_namespaced_job("orphan", "ns")
    assert core.list_namespaced_pod("ns", label_selector="job-name=bg").items == []
    assert len(core.list_namespaced_pod("ns", label_selector="job-name=orphan").items) == 1
    assert fake_k8s.deleted == [("ns", "bg", "Background"), ("ns", "orphan", None)]
    assert batch.list_namespaced_job("ns").items == []


def test_auto_controller_scripts_by_prompt_marker_and_env(fake_k8s_auto):
    fake_k8s_auto.on("[oom]", fk.oom_killed)
    with fake_k8s_auto.api_client() as api_client:
        batch = client.BatchV1Api(api_client)
        batch.create_namespaced_job("ns", job_body("fine", prompt="just a prompt"))
        batch.create_namespaced_job("ns", job_body("boom", prompt="please [oom] now"))
        body = job_body("env")
        body["spec"]["template"]["spec"]["containers"][0]["env"].append(
            {"name": "AIGEN_FAKE_OUTCOME", "value": "deadline_exceeded"}
        )
        batch.create_namespaced_job("ns", body)
    assert fake_k8s_auto.wait_for_job()["metadata"]["name"] == "fine"
    assert fake_k8s_auto.wait_finished("ns", "fine") == ("Complete", None)
    assert fake_k8s_auto.wait_finished("ns", "boom") == ("Failed", "BackoffLimitExceeded")
    assert fake_k8s_auto.wait_finished("ns", "env") == ("Failed", "DeadlineExceeded")
