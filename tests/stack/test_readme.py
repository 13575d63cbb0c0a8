"""README.md's reference sections agree with the code they describe."""

import json
import os
import re
import subprocess

import pytest
import yaml

from devstack import run
from tests.stack.facts import ADDON, REPO
from tests.stack.test_compose import ENV_EXAMPLE
from tests.support.odoo import OdooServer, require_odoo, throwaway_database
from worker.config import markdown_table

README = (REPO / "README.md").read_text()


def test_readme_keeps_the_two_commands_first():
    assert README.splitlines()[2:6] == [
        "```sh",
        "./run-stack    # runs the system on this machine: Odoo 18.0 + addon, the worker, Alertmanager"
        ' (see "Run without Docker")',
        "./run-tests    # runs every test; installs what the tests need (run as root on Debian for the"
        " system packages)",
        "```",
    ]


def test_worker_settings_table_is_the_generated_one():
    block = re.search(r"<!-- worker-settings:begin -->\n(.*?)<!-- worker-settings:end -->", README, re.S)
    assert block.group(1).strip() == markdown_table().strip(), "refresh it from python -m worker.config"


def test_every_addon_parameter_is_documented_with_its_default():
    settings = (ADDON / "models" / "res_config_settings.py").read_text()
    defaults = dict(re.findall(r'"(ai_generation\.[a-z_]+)": ([^,\n]+),', settings))
    assert defaults
    for key, default in defaults.items():
        row = next((line for line in README.splitlines() if line.startswith(f"| `{key}` |")), None)
        assert row, f"{key} is not in the README"
        if default.strip().isdigit():
            assert f"`{default.strip()}`" in row


def test_every_compose_variable_is_documented():
    for name in ENV_EXAMPLE:
        assert f"`{name}`" in README, name


@pytest.mark.parametrize("flag", sorted(set(re.findall(r"\./run-stack (--[a-z-]+)", README))))
def test_run_stack_flags_in_the_readme_exist(flag):
    assert flag in run.build_parser()._option_string_actions


ALERT_SOURCES = {  # the README's "From" names -> where that source's alert names are written
    "worker": [REPO / "worker" / "alerting.py"],
    "Odoo": [ADDON / "pure" / "alerts.py"],
    "n8n": sorted((REPO / "n8n_workflows" / "src").glob("*.js")),
}


def readme_alert_table() -> dict[str, tuple[str | None, set[str]]]:
    """{alert name: (severity or None, the sources in its "From" column)} from the README's alert table."""
    rows = {}
    for line in README.splitlines():
        if not line.startswith("| `AIGeneration"):
            continue
        names_cell, from_cell = (cell.strip() for cell in line.strip("|").split("|")[:2])
        sources = {source.strip() for source in from_cell.split(",")}
        for name, severity in re.findall(r"`(AIGeneration\w+)`(?: \((\w+)\))?", names_cell):
            rows[name] = (severity or None, sources)
    return rows


def test_readme_alert_table_names_exactly_the_contract_alerts():
    contract = json.loads((REPO / "schemas" / "alerts.json").read_text())["alerts"]
    raised = {name: sev for name, (sev, sources) in readme_alert_table().items() if sources != {"Prometheus"}}
    assert raised == {name: alert["severity"] for name, alert in contract.items()}


def test_readme_alert_sources_are_the_ones_that_raise_them():
    for name, (_, sources) in readme_alert_table().items():
        if sources == {"Prometheus"}:
            continue
        for source, files in ALERT_SOURCES.items():
            raises = any(f'"{name}"' in f.read_text() or f"'{name}'" in f.read_text() for f in files)
            assert (source in sources) == raises, (
                f"{name}: README says {sorted(sources)}, {source} raises: {raises}"
            )


def test_readme_prometheus_alerts_are_the_rules():
    rules = yaml.safe_load((REPO / "docker" / "prometheus" / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    documented = {name for name, (_, sources) in readme_alert_table().items() if sources == {"Prometheus"}}
    assert documented == names


def demo_login_snippet() -> str:
    """The README's shell block that logs in as the demo user and reads her credits."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    found = [b for b in blocks if "/web/session/authenticate" in b and "jane.ai" in b]
    assert len(found) == 1, found
    return found[0]


def test_readme_demo_login_does_not_hard_code_the_database():
    snippet = demo_login_snippet()
    assert '"db": "\'"$DB"\'"' in snippet and snippet.count('"db"') == 1, snippet
    # the same variable and default run-stack's --db reads
    assert "DB=${AIGEN_ODOO_DB:-aigen}" in snippet
    assert run.build_parser().get_default("db") == os.environ.get("AIGEN_ODOO_DB", "aigen")


def json_values(text: str) -> list:
    """The JSON documents curl printed one after the other (no separator)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


@pytest.mark.odoo
def test_readme_demo_login_works_on_a_database_of_any_name(tmp_path):
    """The snippet as written, run by bash against a real Odoo whose database is not called aigen."""
    odoo = require_odoo()
    with (
        throwaway_database(odoo, ["ai_generation"], prefix="aigen_readme") as db,
        OdooServer(odoo, db) as server,
    ):
        script = demo_login_snippet().replace("http://127.0.0.1:8080", server.url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env={**os.environ, "AIGEN_ODOO_DB": db},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        login, credits = json_values(done.stdout)
        assert login["result"]["username"] == "jane.ai", login
        assert credits["available"] > 0, credits
