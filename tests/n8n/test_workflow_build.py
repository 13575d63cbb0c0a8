"""The n8n workflows hold no hand-kept copy of the contracts, and classify exactly like the worker.

Runs without n8n: the committed workflow JSON must be what n8n_workflows/build.py renders (so the
taxonomy embedded in the Code nodes is schemas/error_taxonomy.json as it is now), and the Classify
node's own JavaScript, taken from the workflow file and run by node, must give the same answers as
worker.classification for every shared vector (and a few more signals).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import subprocess
from datetime import datetime

import pytest

import aigen_contracts
from tests.n8n.harness import WORKFLOWS
from worker.classification import Signal, classify

# n8n_workflows/build.py is a script, not a package: load it under a name of its own
_spec = importlib.util.spec_from_file_location("aigen_n8n_build", WORKFLOWS / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

VECTORS = aigen_contracts.load("error_vectors.json")["vectors"]
# beyond the shared vectors: Retry-After only for rate_limited, case-insensitive message match, odd kinds
EXTRA_SIGNALS = [
    {"kind": "http", "status": 429, "retry_after": 7.5},
    {"kind": "http", "status": 503, "retry_after": 7.5},
    {"kind": "http", "status": 429, "message": "REQUEST TOO LARGE for model"},
    {"kind": "http", "status": 599},
    {"kind": "http", "status": 600},
    {"kind": "http", "status": 200, "code": "content_policy_violation"},
    {"kind": "k8s", "reason": "OOMKilled", "exit_code": 137},
    {"kind": "k8s", "exit_code": 42},
    {"kind": "timeout", "status": 503},
    {"kind": "other", "status": 400, "message": "Kubernetes API 400 Bad Request"},
]
COMPARED = (
    "error_type",
    "side",
    "user_message",
    "retry_suggestion",
    "specific_guidance",
    "retryable",
    "max_attempts",
    "alert",
    "error_code",
    "retry_after",
)


def workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text(encoding="utf-8"))


def node_code(workflow_name: str, node_name: str) -> str:
    nodes = {n["name"]: n for n in workflow(workflow_name)["nodes"]}
    return nodes[node_name]["parameters"]["jsCode"]


@pytest.mark.parametrize("name", [*sorted(build.WORKFLOWS), "README.md"])
def test_committed_workflow_is_what_build_renders(name):
    rendered = build.render()[name]
    assert (WORKFLOWS / name).read_text(encoding="utf-8") == rendered, "run python n8n_workflows/build.py"


def test_every_code_node_using_the_taxonomy_embeds_the_current_file():
    embedded = build.taxonomy_js()
    users = [
        (wf, n["name"])
        for wf in build.WORKFLOWS
        for n in workflow(wf)["nodes"]
        if n["type"] == "n8n-nodes-base.code" and "const TAXONOMY" in n["parameters"]["jsCode"]
    ]
    assert ("generation.json", "Classify") in users and ("error_handler.json", "Build report") in users
    for wf, name in users:
        assert embedded in node_code(wf, name), f"{wf}/{name} holds another taxonomy"


def test_credentials_are_referred_to_by_name_only():
    template = {c["id"]: c["name"] for c in json.loads((WORKFLOWS / "credentials.template.json").read_text())}
    for wf in build.WORKFLOWS:
        for node in workflow(wf)["nodes"]:
            for ref in node.get("credentials", {}).values():
                assert set(ref) == {"id", "name"} and template.get(ref["id"]) == ref["name"], (
                    wf,
                    node["name"],
                )
        text = (WORKFLOWS / wf).read_text()
        assert "Bearer " not in text and "guest" not in text


def run_classify_node(signals: list[dict]) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (JavaScript) is not installed: apt-get install nodejs")
    program = (
        f"const SIGNALS = {json.dumps(signals)};\n"
        "const $input = { all: () => SIGNALS.map((signal) => ({ json: { signal } })) };\n"
        "(async () => {\n" + node_code("generation.json", "Classify") + "\n})()"
        ".then((items) => process.stdout.write(JSON.stringify(items.map((i) => i.json.classification))));\n"
    )
    done = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def python_verdict(signal: dict) -> dict:
    return {k: v for k, v in dataclasses.asdict(classify(Signal.from_dict(signal))).items() if k in COMPARED}


def test_javascript_and_python_classify_every_vector_identically():
    signals = [v["signal"] for v in VECTORS] + EXTRA_SIGNALS
    js = run_classify_node(signals)
    assert len(js) == len(signals)
    for signal, answer in zip(signals, js, strict=True):
        assert {k: answer[k] for k in COMPARED} == python_verdict(signal), signal


def test_javascript_answers_match_the_vectors_themselves():
    js = run_classify_node([v["signal"] for v in VECTORS])
    assert [(a["error_type"], a["side"]) for a in js] == [(v["error_type"], v["side"]) for v in VECTORS]


# --- nothing read from n8n's environment; no job acknowledged without its outcome ------------------------


def test_no_workflow_reads_the_environment_of_n8n():
    # n8n 2.x blocks $env in nodes by default: an expression reading it fails the execution
    for name, text in build.render_workflows().items():
        assert "$env" not in text and "process.env" not in text, name


def test_a_job_is_acknowledged_only_when_its_execution_succeeds():
    trigger = next(n for n in workflow("generation.json")["nodes"] if n["type"].endswith("rabbitmqTrigger"))
    # n8n nacks (requeues) the message of a failed execution in this mode only
    assert trigger["parameters"]["options"]["acknowledge"] == "executionFinishesSuccessfully"


def test_every_successful_end_of_a_job_execution_is_an_outcome():
    """A job execution that succeeds has its outcome in Odoo or the DLQ: it ends at an outcome node, and
    no node delivering an outcome swallows its own error (that would let the execution succeed)."""
    wf = workflow("generation.json")
    nodes = {n["name"]: n for n in wf["nodes"]}
    ends = {name for name in nodes if not any(wf["connections"].get(name, {}).get("main", []))}
    assert ends == {"Result event", "Failure event", "Dead-letter"}
    for name in ("Failure callback", "Notify callback", "Dead-letter"):
        assert "onError" not in nodes[name], name
    # the result's error output goes to one node only, which reports a 413 (the result too large for
    # Odoo) as a failure and fails the execution on anything else
    assert nodes["Result callback"]["onError"] == "continueErrorOutput"
    assert [c["node"] for c in wf["connections"]["Result callback"]["main"][1]] == ["Result refused"]
    refused = nodes["Result refused"]["parameters"]["jsCode"]
    assert "throw new Error" in refused and "413" in refused
    # the nodes that go on after an error, each for a reason of its own (best effort or read later)
    tolerant = {name for name, n in nodes.items() if "onError" in n}
    assert tolerant == {
        "Progress callback",
        "Call provider",
        "Create Job",
        "Get Job",
        "List Job pods",
        "Get pod log",
        "Delete Job",
        "Result callback",
    }


# --- configuration in one place: the settings file rendered into the Settings nodes ----------------------


def settings_of(text: str) -> dict:
    node = next(n for n in json.loads(text)["nodes"] if n["name"] == "Settings")
    return {a["name"]: a["value"] for a in node["parameters"]["assignments"]["assignments"]}


def test_the_settings_file_is_rendered_into_every_workflow(tmp_path):
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"odoo_url": "http://odoo:8069", "max_attempts": 5}))
    out = tmp_path / "deploy"
    assert build.main(["--settings", str(settings_file), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.json")) == sorted(build.WORKFLOWS)
    assert (out / ".gitignore").read_text() == "*\n"
    defaults = {name: default for name, _env, default, _kind, _meaning in build.SETTINGS}
    for name in build.WORKFLOWS:
        values = settings_of((out / name).read_text())
        assert values == {**defaults, "odoo_url": "http://odoo:8069", "max_attempts": 5}, name


def test_the_compose_settings_file_names_only_settings_that_exist():
    settings = json.loads((WORKFLOWS / "settings.compose.json").read_text())
    assert build.settings_values(settings)["odoo_url"] == settings["odoo_url"]


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ({"odoo_ur": "http://odoo:8069"}, "odoo_ur: no such setting"),
        ({"max_attempts": "5"}, 'max_attempts: must be a number, not "5"'),
        ({"max_attempts": True}, "max_attempts: must be a number, not true"),
        ({"odoo_url": 8069}, "odoo_url: must be a string, not 8069"),
        (["odoo_url"], "must hold a JSON object"),
    ],
)
def test_a_wrong_settings_file_is_refused_with_the_reason(tmp_path, capsys, content, complaint):
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(content))
    assert build.main(["--settings", str(settings_file), "--out", str(tmp_path / "deploy")]) == 2
    assert complaint in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()


# --- alerts: the source label, and the streak a user's error does not break -------------------------------

ALERTS = aigen_contracts.load("alerts.json")
ALERT_SETTINGS = {
    **{name: default for name, _env, default, _kind, _meaning in build.SETTINGS},
    "alert_consecutive_threshold": 3,
    "alert_quiet_seconds": 300,
    "alert_resend_seconds": 60,
}


def run_alert_state(batches: list[tuple[float, list[dict]]]) -> list[list[dict]]:
    """The "Update alert state" node's JavaScript, run by node once per (now, events) batch with the
    workflow static data kept between runs, as n8n runs it; the alerts each run posts."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (JavaScript) is not installed: apt-get install nodejs")
    program = (
        f"const BATCHES = {json.dumps(batches)};\n"
        f"const SETTINGS = {json.dumps(ALERT_SETTINGS)};\n"
        "const STATIC = {};\n"
        "let EVENTS = [];\n"
        "const $getWorkflowStaticData = () => STATIC;\n"
        "const $ = (name) => name === 'Settings'\n"
        "  ? { first: () => ({ json: SETTINGS }) } : { all: () => EVENTS.map((json) => ({ json })) };\n"
        "const run = async () => {\n" + node_code("alerts.json", "Update alert state") + "\n};\n"
        "(async () => {\n"
        "  const posted = [];\n"
        "  for (const [now, events] of BATCHES) {\n"
        "    Date.now = () => now * 1000;\n"
        "    EVENTS = events;\n"
        "    const items = await run();\n"
        "    posted.push(items.length ? items[0].json.alerts : []);\n"
        "  }\n"
        "  process.stdout.write(JSON.stringify(posted));\n"
        "})();\n"
    )
    done = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def failure(at: float, side: str, error_type: str, request_id: str) -> dict:
    return {
        "event": "failure",
        "backend": "external",
        "error_type": error_type,
        "side": side,
        "alert": "rate",
        "request_id": request_id,
        "at": at,
    }


def streak_alerts(posted: list[dict]) -> list[dict]:
    return [a for a in posted if a["labels"]["alertname"] == "AIGenerationConsecutiveFailures"]


def test_a_user_side_failure_neither_counts_nor_breaks_a_system_streak_and_a_success_ends_it():
    t = 1_000_000.0
    events = [
        failure(t, "system", "provider_unavailable", "r1"),
        failure(t + 1, "user", "invalid_input", "u1"),
        failure(t + 2, "system", "provider_unavailable", "r2"),
        failure(t + 3, "user", "content_policy", "u2"),
    ]
    posted = run_alert_state(
        [
            (t + 4, events),
            (t + 5, [failure(t + 5, "system", "provider_timeout", "r3")]),  # the third in the row
            (t + 6, [failure(t + 6, "user", "invalid_input", "u3")]),  # must not resolve it
            (t + 7, [{"event": "success", "backend": "external", "at": t + 7}]),
        ]
    )
    assert streak_alerts(posted[0]) == []  # two system failures so far: below the threshold
    (fired,) = streak_alerts(posted[1])
    assert fired["labels"] == {
        "alertname": "AIGenerationConsecutiveFailures",
        "service": ALERTS["service"],
        "backend": "external",
        "error_type": "any",
        "severity": "critical",
        "source": "n8n",
    }
    assert set(fired["labels"]) == set(ALERTS["labels"]) and fired["labels"]["source"] in ALERTS["sources"]
    assert fired["annotations"]["consecutive_failures"] == "3"
    assert set(fired["annotations"]["sample_request_ids"].split(",")) == {"r1", "r2", "r3"}
    assert epoch(fired["endsAt"]) > t + 7
    assert streak_alerts(posted[2]) == []  # still firing (not due for re-send), not resolved
    (resolved,) = streak_alerts(posted[3])
    assert resolved["labels"] == fired["labels"] and epoch(resolved["endsAt"]) == t + 7


def test_a_pause_ends_a_streak_and_the_next_failures_start_a_new_row():
    t = 2_000_000.0
    row = [failure(t + i, "system", "provider_unavailable", f"r{i}") for i in range(3)]
    later = t + 2 + ALERT_SETTINGS["alert_quiet_seconds"]
    posted = run_alert_state(
        [(t + 3, row), (later + 1, [failure(later, "system", "provider_unavailable", "x")])]
    )
    assert len(streak_alerts(posted[0])) == 1
    (resolved,) = streak_alerts(posted[1])  # the quiet period ended it; one new failure does not re-fire
    assert epoch(resolved["endsAt"]) == later + 1


def test_every_alert_of_the_workflows_carries_the_contract_labels_with_source_n8n():
    for wf, node_name in (("alerts.json", "Update alert state"), ("error_handler.json", "Build report")):
        assert "source: 'n8n'" in node_code(wf, node_name), (wf, node_name)
    # the error workflow's alert, run by node on an Error Trigger payload without execution data
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (JavaScript) is not installed: apt-get install nodejs")
    program = (
        f"const SETTINGS = {json.dumps(ALERT_SETTINGS)};\n"
        "const TRIGGER = { execution: { id: '7', lastNodeExecuted: 'Result callback',"
        " error: { message: 'boom' } }, workflow: { name: 'wf' } };\n"
        "const $ = (name) => ({ first: () => ({ json: name === 'Settings' ? SETTINGS : TRIGGER }) });\n"
        "const $input = { first: () => ({ json: {} }) };\n"
        "(async () => {\n" + node_code("error_handler.json", "Build report") + "\n})()"
        ".then((items) => process.stdout.write(JSON.stringify(items[0].json)));\n"
    )
    done = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(done.stdout)
    (alert,) = report["alert"]
    assert set(alert["labels"]) == set(ALERTS["labels"]) and alert["labels"]["source"] == "n8n"
    assert "failure" not in report  # no request known without the execution's data


def test_every_worker_variable_the_settings_name_is_the_workers():
    from worker.config import all_options

    worker_variables = {option.env for option in all_options()}
    named = [env for _name, env, _default, _kind, _meaning in build.SETTINGS if env]
    assert [env for env in named if env not in worker_variables] == []
