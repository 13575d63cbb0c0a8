"""README.md's reference sections agree with the code they describe."""

import re

import pytest

from devstack import run
from tests.stack.facts import ADDON, REPO
from tests.stack.test_compose import ENV_EXAMPLE
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
