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
