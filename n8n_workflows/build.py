"""Render the n8n workflows of this folder from src/*.js and the repo's contracts.

The Code nodes never hold a hand-kept copy of a contract: schemas/error_taxonomy.json and the job
schemas are embedded here, as data, next to a small generic interpreter (src/taxonomy.js, the same
semantics as worker/classification.py). tests/n8n/test_workflow_build.py fails when a committed
workflow differs from what this script renders, so the embedded copies cannot drift.

    python n8n_workflows/build.py          # rewrite the committed files (default settings)
    python n8n_workflows/build.py --check  # exit 1 if a committed file is out of date
    python n8n_workflows/build.py --settings my-settings.json --out DIR
                                           # the workflows to import, with a deployment's settings

The settings are written into each workflow's "Settings" node as plain values: n8n's environment is
never read (2.x blocks $env in nodes by default), so the one place to configure is the settings file.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
SCHEMAS = HERE.parent / "schemas"

GENERATION_ID = "AigenGenerateJob"
ERROR_ID = "AigenErrorReport"
ALERTS_ID = "AigenAlertState0"

JOBS_QUEUE = "ai.generation.jobs"
DLQ = "ai.generation.jobs.dlq"
EVENTS_QUEUE = "ai.generation.n8n.events"
REJECT_REASON_HEADER = "x-aigen-reject-reason"

# Credentials are referred to by name; the ids are those of credentials.template.json.
CREDENTIALS = {
    "rabbitmq": {"id": "AigenRabbitMQ000", "name": "RabbitMQ"},
    "odoo": {"id": "AigenOdooSecret0", "name": "Odoo worker secret"},
    "openai": {"id": "AigenOpenAIKey00", "name": "OpenAI key"},
    "kubernetes": {"id": "AigenK8sToken000", "name": "Kubernetes token"},
    "n8n": {"id": "AigenN8nApiKey00", "name": "n8n API"},
}

# (name, the worker's variable, default, type, meaning): the values of the "Settings" node of each
# workflow, written into the workflow files when they are rendered (render_configured), never read from
# n8n's environment: n8n 2.x blocks $env by default, and a workflow that cannot read its settings fails
# before it can report anything. The names, defaults and meanings are the Python worker's
# (worker/config.py, the AIGEN_* variable) where it has the setting.
SETTINGS = [
    ("odoo_url", "AIGEN_ODOO_URL", "http://127.0.0.1:8069", "string", "Base URL of Odoo for the callbacks."),
    (
        "openai_base_url",
        "AIGEN_OPENAI_BASE_URL",
        "https://api.openai.com/v1",
        "string",
        "OpenAI-compatible API base URL (the key is the `OpenAI key` credential).",
    ),
    (
        "openai_max_tokens_param",
        "AIGEN_OPENAI_MAX_TOKENS_PARAM",
        "max_tokens",
        "string",
        "Name under which params.max_tokens is sent (`max_completion_tokens` for newer OpenAI models).",
    ),
    (
        "openai_image_response_format",
        "AIGEN_OPENAI_IMAGE_RESPONSE_FORMAT",
        "",
        "string",
        "`url` or `b64_json` for providers that accept response_format on images.",
    ),
    (
        "request_timeout",
        "AIGEN_REQUEST_TIMEOUT",
        120,
        "number",
        "Longest single AI attempt in seconds; the job's deadline bounds it further.",
    ),
    ("callback_timeout", "AIGEN_CALLBACK_TIMEOUT", 10, "number", "Seconds per Odoo callback request."),
    (
        "max_attempts",
        "AIGEN_MAX_ATTEMPTS",
        3,
        "number",
        "Attempts for retryable errors (the taxonomy may set fewer).",
    ),
    (
        "backoff_initial",
        "AIGEN_BACKOFF_INITIAL",
        1,
        "number",
        "First retry delay in seconds, doubled per attempt.",
    ),
    (
        "backoff_max",
        "AIGEN_BACKOFF_MAX",
        30,
        "number",
        "Longest retry delay (a longer Retry-After still wins).",
    ),
    (
        "backoff_jitter",
        "AIGEN_BACKOFF_JITTER",
        1,
        "number",
        "Random seconds (0..jitter) added to each delay.",
    ),
    # the internal backend: worker/backends/kubernetes_backend.py KubernetesConfig, same names and defaults
    (
        "k8s_host",
        "AIGEN_K8S_HOST",
        "https://kubernetes.default.svc",
        "string",
        "Kubernetes API URL (the token is the `Kubernetes token` credential).",
    ),
    ("k8s_namespace", "AIGEN_K8S_NAMESPACE", "aigen", "string", "Namespace of the Jobs."),
    (
        "k8s_image",
        "AIGEN_K8S_IMAGE",
        "registry.example/aigen-model:latest",
        "string",
        "The model's container image.",
    ),
    (
        "k8s_command",
        "AIGEN_K8S_COMMAND",
        "",
        "string",
        "Comma-separated container command (empty: the image's entrypoint).",
    ),
    ("k8s_request_timeout", "AIGEN_K8S_REQUEST_TIMEOUT", 10, "number", "Seconds per Kubernetes API call."),
    ("k8s_job_name_prefix", "AIGEN_K8S_JOB_NAME_PREFIX", "aigen", "string", "Prefix of the Job names."),
    (
        "k8s_container_name",
        "AIGEN_K8S_CONTAINER_NAME",
        "model",
        "string",
        "Name of the model container (its log carries the result).",
    ),
    (
        "k8s_service_account",
        "AIGEN_K8S_SERVICE_ACCOUNT",
        "",
        "string",
        "serviceAccountName of the pods (empty: the namespace default).",
    ),
    (
        "k8s_resources",
        "AIGEN_K8S_RESOURCES",
        "",
        "string",
        'Container resources as JSON, e.g. {"limits": {"memory": "2Gi"}}.',
    ),
    ("k8s_node_selector", "AIGEN_K8S_NODE_SELECTOR", "", "string", "nodeSelector as JSON."),
    ("k8s_extra_env", "AIGEN_K8S_EXTRA_ENV", "", "string", "Extra container environment as JSON."),
    (
        "k8s_active_deadline_seconds",
        "AIGEN_K8S_ACTIVE_DEADLINE_SECONDS",
        900,
        "number",
        "Ceiling of the Job's activeDeadlineSeconds (the job's remaining time lowers it).",
    ),
    (
        "k8s_ttl_seconds_after_finished",
        "AIGEN_K8S_TTL_SECONDS_AFTER_FINISHED",
        300,
        "number",
        "ttlSecondsAfterFinished: cleans up if the Job is not deleted.",
    ),
    (
        "k8s_backoff_limit",
        "AIGEN_K8S_BACKOFF_LIMIT",
        0,
        "number",
        "Job backoffLimit (0: the workflow owns retries).",
    ),
    (
        "k8s_user_input_exit_code",
        "AIGEN_K8S_USER_INPUT_EXIT_CODE",
        42,
        "number",
        'Exit code by which the model says "bad input" (podFailurePolicy FailJob).',
    ),
    ("k8s_poll_interval", "AIGEN_K8S_POLL_INTERVAL", 1, "number", "Seconds between looks at the Job."),
    (
        "k8s_pending_grace_seconds",
        "AIGEN_K8S_PENDING_GRACE_SECONDS",
        120,
        "number",
        "How long a pod may sit in ImagePullBackOff / Unschedulable before the attempt fails.",
    ),
    (
        "k8s_api_error_tolerance",
        "AIGEN_K8S_API_ERROR_TOLERANCE",
        3,
        "number",
        "Consecutive failed polls tolerated.",
    ),
    ("k8s_log_tail_lines", "AIGEN_K8S_LOG_TAIL_LINES", 20, "number", "Log lines read for the result."),
    (
        "alertmanager_url",
        "AIGEN_ALERT_ALERTMANAGER_URL",
        "http://127.0.0.1:9093",
        "string",
        "Alertmanager base URL (API v2).",
    ),
    # the alert rules' settings: worker/alerting.py AlertConfig, same names and defaults
    (
        "alert_service",
        "AIGEN_ALERT_SERVICE",
        "ai_generation",
        "string",
        "The alerts' service label (schemas/alerts.json).",
    ),
    ("alert_window_seconds", "AIGEN_ALERT_WINDOW_SECONDS", 300, "number", "Window of the error-rate rule."),
    (
        "alert_rate_threshold",
        "AIGEN_ALERT_RATE_THRESHOLD",
        10,
        "number",
        "N: errors of one (backend, error_type) within the window that raise an alert.",
    ),
    (
        "alert_persistent_seconds",
        "AIGEN_ALERT_PERSISTENT_SECONDS",
        600,
        "number",
        "T: errors going on longer than this raise an alert.",
    ),
    (
        "alert_consecutive_threshold",
        "AIGEN_ALERT_CONSECUTIVE_THRESHOLD",
        5,
        "number",
        "K: system-side failures in a row on one backend that raise an alert.",
    ),
    (
        "alert_resend_seconds",
        "AIGEN_ALERT_RESEND_SECONDS",
        60,
        "number",
        "Active alerts are re-sent this often (endsAt set ahead).",
    ),
    (
        "alert_quiet_seconds",
        "AIGEN_ALERT_QUIET_SECONDS",
        300,
        "number",
        "Without a matching error for this long, an alert resolves.",
    ),
    (
        "alert_sample_size",
        "AIGEN_ALERT_SAMPLE_SIZE",
        5,
        "number",
        "Sample request ids carried in an alert's annotations.",
    ),
    (
        "n8n_api_url",
        None,  # the worker has no such setting
        "http://127.0.0.1:5678/api/v1",
        "string",
        "This n8n's public API URL, for the error workflow (its key is the `n8n API` credential).",
    ),
]


def _js(name: str) -> str:
    return (SRC / name).read_text(encoding="utf-8")


def _json_literal(document) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


def taxonomy_js() -> str:
    """The interpreter with schemas/error_taxonomy.json embedded (what the parity test runs)."""
    taxonomy = json.loads((SCHEMAS / "error_taxonomy.json").read_text(encoding="utf-8"))
    return _js("taxonomy.js").replace("__TAXONOMY__", _json_literal(taxonomy))


def job_schemas_js() -> str:
    names = ("job_requested.v1.json", "params.json")
    schemas = {n: json.loads((SCHEMAS / n).read_text(encoding="utf-8")) for n in names}
    return _json_literal(schemas)


def code(*parts: str) -> str:
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"


# --- node builders -----------------------------------------------------------------------------------


class Flow:
    def __init__(self):
        self.nodes: list[dict] = []
        self.connections: dict[str, dict] = {}

    def add(self, name: str, type_: str, version, parameters: dict, **extra) -> str:
        x = 240 * len(self.nodes)
        node = {
            "id": f"{len(self.nodes) + 1:08d}-0000-4000-8000-000000000000",
            "name": name,
            "type": type_,
            "typeVersion": version,
            "position": [x, 0],
            "parameters": parameters,
        }
        node.update(extra)
        self.nodes.append(node)
        return name

    def link(self, source: str, target: str, output: int = 0) -> None:
        outputs = self.connections.setdefault(source, {}).setdefault("main", [])
        while len(outputs) <= output:
            outputs.append([])
        outputs[output].append({"node": target, "type": "main", "index": 0})

    def chain(self, *names: str) -> None:
        for a, b in itertools.pairwise(names):
            self.link(a, b)


def settings_values(overrides: dict | None = None) -> dict:
    """Every setting's value: the defaults, with ``overrides`` (a settings file's content) checked."""
    kinds = {name: kind for name, _env, _default, kind, _meaning in SETTINGS}
    values = {name: default for name, _env, default, _kind, _meaning in SETTINGS}
    problems = []
    for name, value in (overrides or {}).items():
        if name not in kinds:
            problems.append(f"{name}: no such setting")
        elif kinds[name] == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{name}: must be a number, not {json.dumps(value)}")
        elif kinds[name] == "string" and not isinstance(value, str):
            problems.append(f"{name}: must be a string, not {json.dumps(value)}")
        else:
            values[name] = value
    if problems:
        raise ValueError("; ".join(problems))
    return values


def settings_node(flow: Flow, values: dict) -> str:
    """The workflow's settings as plain values (no expression: nothing here can fail at run time)."""
    assignments = [
        {"id": f"setting-{i:02d}", "name": name, "value": values[name], "type": kind}
        for i, (name, _env, _default, kind, _meaning) in enumerate(SETTINGS)
    ]
    return flow.add(
        "Settings",
        "n8n-nodes-base.set",
        3.4,
        {
            "mode": "manual",
            "assignments": {"assignments": assignments},
            "includeOtherFields": False,
            "options": {},
        },
    )


def code_node(flow: Flow, name: str, js: str, **extra) -> str:
    return flow.add(name, "n8n-nodes-base.code", 2, {"mode": "runOnceForAllItems", "jsCode": js}, **extra)


def if_node(flow: Flow, name: str, expression: str) -> str:
    condition = {
        "id": f"cond-{name.lower().replace(' ', '-')}",
        "leftValue": expression,
        "rightValue": "",
        "operator": {"type": "boolean", "operation": "true", "singleValue": True},
    }
    parameters = {
        "conditions": {
            "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "loose"},
            "conditions": [condition],
            "combinator": "and",
        },
        "looseTypeValidation": True,
        "options": {},
    }
    return flow.add(name, "n8n-nodes-base.if", 2, parameters)


def switch_node(flow: Flow, name: str, expression: str, values: list[str]) -> str:
    rules = []
    for value in values:
        rules.append(
            {
                "conditions": {
                    "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict"},
                    "conditions": [
                        {
                            "id": f"rule-{value}",
                            "leftValue": expression,
                            "rightValue": value,
                            "operator": {"type": "string", "operation": "equals"},
                        }
                    ],
                    "combinator": "and",
                },
                "renameOutput": True,
                "outputKey": value,
            }
        )
    return flow.add(name, "n8n-nodes-base.switch", 3.2, {"rules": {"values": rules}, "options": {}})


def http_node(
    flow: Flow,
    name: str,
    *,
    url: str,
    method: str = "POST",
    body: str | None = None,
    credential: str | None = None,
    timeout: str = "={{ $('Settings').first().json.callback_timeout * 1000 }}",
    full_response: bool = False,
    on_error: str | None = None,
    retries: int = 0,
    response_format: str = "json",
) -> str:
    parameters: dict = {"method": method, "url": url}
    if credential == "odoo" or credential == "kubernetes":
        parameters.update(authentication="genericCredentialType", genericAuthType="httpBearerAuth")
    elif credential == "openai":
        parameters.update(authentication="predefinedCredentialType", nodeCredentialType="openAiApi")
    elif credential == "n8n":
        parameters.update(authentication="predefinedCredentialType", nodeCredentialType="n8nApi")
    if body is not None:
        parameters.update(sendBody=True, contentType="json", specifyBody="json", jsonBody=body)
    options: dict = {"timeout": timeout}
    if full_response:
        options["response"] = {
            "response": {"fullResponse": True, "neverError": True, "responseFormat": response_format}
        }
    parameters["options"] = options
    extra: dict = {}
    if credential:
        cred_type = {
            "odoo": "httpBearerAuth",
            "kubernetes": "httpBearerAuth",
            "openai": "openAiApi",
            "n8n": "n8nApi",
        }
        extra["credentials"] = {cred_type[credential]: dict(CREDENTIALS[credential])}
    if on_error:
        extra["onError"] = on_error
    if retries:
        extra.update(retryOnFail=True, maxTries=retries, waitBetweenTries=1000)
    return flow.add(name, "n8n-nodes-base.httpRequest", 4.2, parameters, **extra)


def rabbit_send(
    flow: Flow, name: str, queue: str, message: str, headers: list[tuple[str, str]] = (), **opts
) -> str:
    options: dict = {"durable": True, **opts}
    if headers:
        options["headers"] = {"header": [{"key": k, "value": v} for k, v in headers]}
    return flow.add(
        name,
        "n8n-nodes-base.rabbitmq",
        1.1,
        {
            "operation": "sendMessage",
            "queue": queue,
            "sendInputData": False,
            "message": message,
            "options": options,
        },
        credentials={"rabbitmq": dict(CREDENTIALS["rabbitmq"])},
    )


K8S_JOBS_URL = (
    "={{ $('Settings').first().json.k8s_host.replace(/\\/+$/, '') }}/apis/batch/v1/namespaces/"
    "{{ encodeURIComponent($('Settings').first().json.k8s_namespace) }}/jobs"
)
K8S_PODS_URL = (
    "={{ $('Settings').first().json.k8s_host.replace(/\\/+$/, '') }}/api/v1/namespaces/"
    "{{ encodeURIComponent($('Settings').first().json.k8s_namespace) }}/pods"
)


def backend_call(flow: Flow, name: str, credential: str) -> str:
    """The request the Attempt node prepared (``$json.call``); transport errors take the error output."""
    return http_node(
        flow,
        name,
        url="={{ $json.call.url }}",
        body="={{ JSON.stringify($json.call.body) }}",
        credential=credential,
        timeout="={{ $json.call.timeout_ms }}",
        full_response=True,
        on_error="continueErrorOutput",
    )


def k8s_call(flow: Flow, name: str, method: str, url: str, **options) -> str:
    """A Kubernetes API call while a Job runs; a failed call goes on (the Code nodes read the answers)."""
    return http_node(
        flow,
        name,
        method=method,
        url=url,
        credential="kubernetes",
        timeout="={{ $('Settings').first().json.k8s_request_timeout * 1000 }}",
        full_response=True,
        on_error="continueRegularOutput",
        **options,
    )


def odoo_url(path: str) -> str:
    return f"={{{{ $('Settings').first().json.odoo_url.replace(/\\/+$/, '') }}}}{path}"


ALERTMANAGER_ALERTS_URL = (
    "={{ $('Settings').first().json.alertmanager_url.replace(/\\/+$/, '') }}/api/v2/alerts"
)


def failure_callback(flow: Flow) -> str:
    return http_node(
        flow,
        "Failure callback",
        url=odoo_url("/ai/generation/failure"),
        body="={{ JSON.stringify($json.failure) }}",
        credential="odoo",
        retries=3,
    )


def notify_callback(flow: Flow, source: str) -> str:
    """The user's notice, as the ``source`` node worked it out."""
    return http_node(
        flow,
        "Notify callback",
        url=odoo_url("/notify/generation-error"),
        body=f"={{{{ JSON.stringify($('{source}').first().json.notify) }}}}",
        credential="odoo",
        retries=3,
    )


def workflow(id_: str, name: str, flow: Flow, settings: dict) -> dict:
    return {
        "id": id_,
        "name": name,
        "nodes": flow.nodes,
        "connections": flow.connections,
        "settings": settings,
        "active": False,
        "pinData": {},
        "tags": [],
    }


# --- the workflows -----------------------------------------------------------------------------------


def generation_workflow(values: dict) -> dict:
    f = Flow()
    common = _js("common.js")
    tax = taxonomy_js()
    trigger = f.add(
        "Job queue",
        "n8n-nodes-base.rabbitmqTrigger",
        1,
        {
            "queue": JOBS_QUEUE,
            "options": {
                # the quorum queue, its DLQ and the binding are declared by Odoo / the worker / setup:
                # n8n would pass its own option object as queue arguments (PRECONDITION_FAILED)
                "assertQueue": False,
                # acknowledged only when the execution succeeds, that is once the outcome reached Odoo
                # (result, or failure and notice), Odoo said the request is finished, or the message is in
                # the DLQ. A failed execution is nacked: the message is redelivered, and the quorum queue's
                # x-delivery-limit dead-letters it after repeated failures. Never lost, whatever happened.
                "acknowledge": "executionFinishesSuccessfully",
                "parallelMessages": 16,
                "jsonParseBody": False,
                "onlyContent": False,
            },
        },
        credentials={"rabbitmq": dict(CREDENTIALS["rabbitmq"])},
    )
    settings = settings_node(f, values)
    read_job = code_node(
        f, "Read job", code(common, _js("read_job.js").replace("__JOB_SCHEMAS__", job_schemas_js()))
    )
    valid = if_node(f, "Job valid?", "={{ $json.valid }}")
    dead_letter = rabbit_send(
        f,
        "Dead-letter",
        DLQ,
        "={{ $json.raw }}",
        headers=[(REJECT_REASON_HEADER, "={{ $json.reason }}")],
        assertQueue=False,
    )
    attempt = code_node(f, "Attempt", code(common, _js("k8s_common.js"), _js("attempt.js")))
    route = switch_node(f, "Route", "={{ $json.route }}", ["run", "expired"])
    progress = http_node(
        f,
        "Progress callback",
        url=odoo_url("/ai/generation/progress"),
        body="={{ JSON.stringify($json.progress) }}",
        credential="odoo",
        full_response=True,
        on_error="continueRegularOutput",
    )
    still = code_node(f, "Still wanted?", code(common, _js("still_wanted.js")))
    wanted = switch_node(f, "Wanted", "={{ $json.next }}", ["run", "refused"])
    backend = switch_node(f, "Backend", "={{ $json.job.backend }}", ["external", "internal"])
    provider = backend_call(f, "Call provider", "openai")
    k8s_js = _js("k8s_common.js")
    create_job = backend_call(f, "Create Job", "kubernetes")
    created = code_node(f, "Read create answer", code(common, k8s_js, _js("k8s_created.js")))
    created_next = switch_node(f, "Job created?", "={{ $json.next }}", ["poll", "done"])
    k8s_wait = f.add(
        "Wait for the Job",
        "n8n-nodes-base.wait",
        1.1,
        {"amount": "={{ $('Settings').first().json.k8s_poll_interval }}", "unit": "seconds"},
        webhookId="00000000-0000-4000-8000-00000000b22b",
    )
    get_job = k8s_call(f, "Get Job", "GET", K8S_JOBS_URL + "/{{ $json.k8s.name }}")
    list_pods = k8s_call(
        f,
        "List Job pods",
        "GET",
        K8S_PODS_URL + "?labelSelector=job-name%3D{{ $('Wait for the Job').first().json.k8s.name }}",
    )
    status = code_node(f, "Read Job status", code(common, k8s_js, _js("k8s_status.js")))
    status_next = switch_node(f, "Job state", "={{ $json.next }}", ["poll", "log", "done"])
    get_log = k8s_call(
        f,
        "Get pod log",
        "GET",
        K8S_PODS_URL
        + "/{{ $json.k8s.pod }}/log?container={{ $('Settings').first().json.k8s_container_name }}"
        "&tailLines={{ $('Settings').first().json.k8s_log_tail_lines }}",
        response_format="text",
    )
    read_log = code_node(f, "Read pod log", code(common, k8s_js, _js("k8s_log.js")))
    # a failed delete goes on too: the TTL removes the Job later; the outcome stands
    delete_job = k8s_call(
        f, "Delete Job", "DELETE", K8S_JOBS_URL + "/{{ $json.k8s.name }}?propagationPolicy=Background"
    )
    k8s_outcome = code_node(f, "Job outcome", code(_js("k8s_outcome.js")))
    answer = code_node(f, "Read answer", code(common, _js("read_answer.js")))
    ok = if_node(f, "Succeeded?", "={{ $json.ok }}")
    result = http_node(
        f,
        "Result callback",
        url=odoo_url("/ai/generation/result"),
        body="={{ JSON.stringify($json.result) }}",
        credential="odoo",
        retries=3,
        on_error="continueErrorOutput",
    )
    refused = code_node(f, "Result refused", code(_js("result_refused.js")))
    result_answer = code_node(f, "Result answer", code(tax, _js("result_answer.js")))
    success_event = rabbit_send(
        f,
        "Result event",
        EVENTS_QUEUE,
        "={{ JSON.stringify($json.event) }}",
        assertQueue=True,
    )
    classify = code_node(f, "Classify", code(tax, _js("classify.js")))
    decide = code_node(f, "Decide", code(common, tax, _js("decide.js")))
    retry = if_node(f, "Retry?", "={{ $json.retry }}")
    wait = f.add(
        "Wait before retry",
        "n8n-nodes-base.wait",
        1.1,
        {"amount": "={{ $json.delay_s }}", "unit": "seconds"},
        webhookId="00000000-0000-4000-8000-00000000a11a",
    )
    failure = failure_callback(f)
    notify = notify_callback(f, "Decide")
    event = rabbit_send(
        f,
        "Failure event",
        EVENTS_QUEUE,
        "={{ JSON.stringify($('Decide').first().json.event) }}",
        assertQueue=True,
    )

    f.chain(trigger, settings, read_job, valid)
    f.link(valid, attempt, 0)
    f.link(valid, dead_letter, 1)
    f.link(attempt, route)
    f.link(route, progress, 0)
    f.link(route, classify, 1)
    f.chain(progress, still, wanted)
    f.link(wanted, backend, 0)
    f.link(wanted, dead_letter, 1)
    f.link(backend, provider, 0)
    f.link(backend, create_job, 1)
    f.link(create_job, created, 0)
    f.link(create_job, created, 1)
    f.link(created, created_next)
    f.link(created_next, k8s_wait, 0)
    f.link(created_next, ok, 1)
    f.chain(k8s_wait, get_job, list_pods, status, status_next)
    f.link(status_next, k8s_wait, 0)
    f.link(status_next, get_log, 1)
    f.link(status_next, delete_job, 2)
    f.chain(get_log, read_log, delete_job)
    f.link(delete_job, k8s_outcome)
    f.link(k8s_outcome, ok)
    f.link(provider, answer, 0)
    f.link(provider, answer, 1)  # transport errors (refused, timeout) take the error output
    f.link(answer, ok)
    f.link(ok, result, 0)
    f.link(result, result_answer, 0)
    f.link(result_answer, success_event)
    f.link(result, refused, 1)  # a 413: the failure result_too_large; anything else fails the run
    f.link(refused, classify)
    f.link(ok, classify, 1)
    f.chain(classify, decide, retry)
    f.link(retry, wait, 0)
    f.link(wait, attempt)
    f.link(retry, failure, 1)
    f.chain(failure, notify, event)
    return workflow(
        GENERATION_ID,
        "AI generation: run jobs (n8n consumer)",
        f,
        {
            "executionOrder": "v1",
            "errorWorkflow": ERROR_ID,
            # failed executions are kept: the error workflow reads them to find the request
            "saveDataErrorExecution": "all",
            "saveDataSuccessExecution": "none",
            "saveManualExecutions": False,
        },
    )


def error_workflow(values: dict) -> dict:
    f = Flow()
    common = _js("common.js")
    trigger = f.add("Error Trigger", "n8n-nodes-base.errorTrigger", 1, {})
    settings = settings_node(f, values)
    fetch = http_node(
        f,
        "Fetch failed execution",
        method="GET",
        url="={{ $('Settings').first().json.n8n_api_url.replace(/\\/+$/, '') }}/executions/"
        "{{ $('Error Trigger').first().json.execution.id }}?includeData=true",
        credential="n8n",
        on_error="continueRegularOutput",
    )
    report = code_node(f, "Build report", code(common, taxonomy_js(), _js("error_report.js")))
    has_request = if_node(f, "Request known?", "={{ !!$json.failure }}")
    failure = failure_callback(f)
    notify = notify_callback(f, "Build report")
    alert = http_node(
        f,
        "Alert",
        url=ALERTMANAGER_ALERTS_URL,
        body="={{ JSON.stringify($('Build report').first().json.alert) }}",
        retries=3,
    )
    f.chain(trigger, settings, fetch, report)
    f.link(report, has_request)
    f.link(report, alert)
    f.link(has_request, failure, 0)
    f.link(failure, notify)
    return workflow(
        ERROR_ID,
        "AI generation: report unhandled errors",
        f,
        {"executionOrder": "v1", "saveDataSuccessExecution": "none"},
    )


def alerts_workflow(values: dict) -> dict:
    f = Flow()
    common = _js("common.js")
    events = f.add(
        "Events",
        "n8n-nodes-base.rabbitmqTrigger",
        1,
        {
            "queue": EVENTS_QUEUE,
            "options": {
                "assertQueue": True,
                "durable": True,
                "acknowledge": "executionFinishes",
                "parallelMessages": 1,  # one at a time: the counts live in static data
                "jsonParseBody": True,
                "onlyContent": True,
            },
        },
        credentials={"rabbitmq": dict(CREDENTIALS["rabbitmq"])},
    )
    ticker = f.add(
        "Every 10 seconds",
        "n8n-nodes-base.scheduleTrigger",
        1.2,
        {"rule": {"interval": [{"field": "seconds", "secondsInterval": 10}]}},
    )
    tick = rabbit_send(f, "Queue a tick", EVENTS_QUEUE, '{"event": "tick"}', assertQueue=True)
    settings = settings_node(f, values)
    state = code_node(
        f,
        "Update alert state",
        code(common, _js("alert_state.js")),
    )
    post = http_node(
        f,
        "Post to Alertmanager",
        url=ALERTMANAGER_ALERTS_URL,
        body="={{ JSON.stringify($json.alerts) }}",
        retries=3,
    )
    f.link(ticker, tick)
    f.chain(events, settings, state, post)
    return workflow(
        ALERTS_ID,
        "AI generation: alert on persistent and frequent errors",
        f,
        {"executionOrder": "v1", "saveDataSuccessExecution": "none"},
    )


WORKFLOWS = {
    "generation.json": generation_workflow,
    "error_handler.json": error_workflow,
    "alerts.json": alerts_workflow,
}


def settings_table() -> str:
    lines = ["| Setting | The worker's variable | Default | Meaning |", "|---|---|---|---|"]
    for name, env, default, _kind, meaning in SETTINGS:
        shown = f"`{json.dumps(default)}`" if default != "" else '`""`'
        lines.append(f"| `{name}` | {f'`{env}`' if env else '(none)'} | {shown} | {meaning} |")
    return "\n".join(lines)


def readme(current: str) -> str:
    """README.md with its settings table rendered from SETTINGS (so the doc cannot drift)."""
    start, end = "<!-- n8n-settings:start -->", "<!-- n8n-settings:end -->"
    head, rest = current.split(start, 1)
    return f"{head}{start}\n{settings_table()}\n{end}{rest.split(end, 1)[1]}"


def render_workflows(overrides: dict | None = None) -> dict[str, str]:
    """The workflow files, their Settings nodes holding the defaults with ``overrides`` applied."""
    values = settings_values(overrides)
    return {
        name: json.dumps(build(values), indent=2, ensure_ascii=False) + "\n"
        for name, build in WORKFLOWS.items()
    }


def render() -> dict[str, str]:
    """What is committed: the workflows with the default settings, and the README's settings table."""
    files = render_workflows()
    files["README.md"] = readme((HERE / "README.md").read_text(encoding="utf-8"))
    return files


def write_configured(settings_file: Path, out: Path) -> None:
    """The workflows to import, configured by ``settings_file`` (a JSON object: setting -> value)."""
    overrides = json.loads(settings_file.read_text(encoding="utf-8"))
    if not isinstance(overrides, dict):
        raise ValueError(f"{settings_file}: must hold a JSON object (setting name -> value)")
    files = render_workflows(overrides)
    out.mkdir(parents=True, exist_ok=True)
    # a configured copy is a deployment's, not the repo's: keep it out of git wherever it is written
    (out / ".gitignore").write_text("*\n", encoding="utf-8")
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    if "--settings" in argv or "--out" in argv:
        try:
            settings_file = Path(argv[argv.index("--settings") + 1])
            out = Path(argv[argv.index("--out") + 1])
        except (ValueError, IndexError):
            print("usage: build.py --settings FILE --out DIR", file=sys.stderr)
            return 2
        try:
            write_configured(settings_file, out)
        except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError
            print(f"build.py: {error}", file=sys.stderr)
            return 2
        return 0
    stale = []
    for name, text in render().items():
        path = HERE / name
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run python n8n_workflows/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
