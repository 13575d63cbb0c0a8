"""The GitHub workflow a user of this repo gets (it cannot run here): its shape checked against the repo."""

import yaml

from tests.stack.facts import REPO

WORKFLOW = yaml.safe_load((REPO / ".github" / "workflows" / "test.yml").read_text())
JOBS = WORKFLOW["jobs"]


def test_addon_job_is_the_oca_shape_for_odoo_18():
    job = JOBS["addon"]
    assert job["container"] == "ghcr.io/oca/oca-ci/py3.10-odoo18.0:latest"
    assert {"postgres", "rabbitmq"} <= set(job["services"])
    assert job["services"]["postgres"]["env"]["POSTGRES_USER"] == "odoo"
    steps = [step.get("run") for step in job["steps"]]
    assert (
        steps.index("oca_install_addons")
        < steps.index("oca_init_test_database")
        < steps.index("oca_run_tests")
    )


def test_addon_job_finds_the_addon_and_its_contracts():
    env = JOBS["addon"]["env"]
    assert (REPO / env["ADDONS_DIR"] / "ai_generation" / "__manifest__.py").is_file()
    schemas = env["AIGEN_SCHEMAS_DIR"].replace("${{ github.workspace }}/", "")
    assert (REPO / schemas / "error_taxonomy.json").is_file()


def test_the_rest_runs_through_the_readme_test_command():
    assert any(step.get("run") == "./run-tests" for step in JOBS["suite"]["steps"])
    assert any(str(step.get("run", "")).startswith("./run-tests -m") for step in JOBS["e2e"]["steps"])


def test_e2e_job_lays_odoo_out_as_aigen_odoo_home_expects():
    job = JOBS["e2e"]
    home = job["env"]["AIGEN_ODOO_HOME"].replace("${{ github.workspace }}/", "")
    checkout = next(s for s in job["steps"] if s.get("with", {}).get("repository") == "odoo/odoo")
    assert checkout["with"]["ref"] == "18.0" and checkout["with"]["path"] == f"{home}/src"
    assert any('"$AIGEN_ODOO_HOME/venv"' in str(s.get("run", "")) for s in job["steps"])
