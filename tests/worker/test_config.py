"""Settings: environment, flags over environment, types, the backends' sections, the documented table."""

import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import parser
from worker.config import ConfigError, all_options, load, markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "worker.md"


def test_defaults_without_environment():
    settings = load(None, {})
    assert settings.worker.max_in_flight >= 100  # one process keeps 100+ jobs in flight by default
    assert settings.worker.backend_names() == ["external"]
    assert settings.worker.fallback_models() == {}


def test_environment_is_read_and_typed():
    env = {
        "AIGEN_MAX_IN_FLIGHT": "150",
        "AIGEN_SHUTDOWN_GRACE": "2.5",
        "AIGEN_BACKENDS": "external, internal",
        "AIGEN_FALLBACK_INTERNAL_MODEL": "llama",
        "AIGEN_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "AIGEN_OPENAI_ORGANIZATION": "",
        "AIGEN_K8S_RESOURCES": '{"limits": {"memory": "2Gi"}}',
        "AIGEN_K8S_COMMAND": '["python", "-c", "print(1, 2)"]',
        "AIGEN_K8S_VERIFY_SSL": "false",
    }
    settings = load(None, env)
    assert settings.worker.max_in_flight == 150 and settings.worker.shutdown_grace == 2.5
    assert settings.worker.backend_names() == ["external", "internal"]
    assert settings.worker.fallback_models() == {"internal": "llama"}
    assert settings.sections["openai"].base_url == "http://127.0.0.1:9/v1"
    assert settings.sections["openai"].organization is None
    k8s = settings.sections["kubernetes"]
    assert k8s.resources == {"limits": {"memory": "2Gi"}} and k8s.verify_ssl is False
    assert k8s.command == ["python", "-c", "print(1, 2)"]


def test_a_flag_wins_over_the_environment():
    args = parser().parse_args(["--max-in-flight", "200", "--openai-timeout", "7"])
    settings = load(args, {"AIGEN_MAX_IN_FLIGHT": "150", "AIGEN_OPENAI_TIMEOUT": "9"})
    assert settings.worker.max_in_flight == 200 and settings.sections["openai"].timeout == 7.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIGEN_MAX_IN_FLIGHT": "lots"}, "AIGEN_MAX_IN_FLIGHT"),
        ({"AIGEN_MAX_IN_FLIGHT": "0"}, "at least 1"),
        ({"AIGEN_K8S_VERIFY_SSL": "maybe"}, "AIGEN_K8S_VERIFY_SSL"),
        ({"AIGEN_K8S_RESOURCES": "[1]"}, "AIGEN_K8S_RESOURCES"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load(None, env)


def test_secrets_stay_out_of_reprs(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cr3t-from-file\n")
    env = {
        "AIGEN_WORKER_SECRET_FILE": str(secret_file),
        "AIGEN_OPENAI_API_KEY": "sk-very-secret",
        "AIGEN_AMQP_URL": "amqp://u:pw-secret@127.0.0.1/x",
    }
    settings = load(None, env)
    assert settings.worker.secret() == "s3cr3t-from-file"
    text = repr(settings.worker) + repr(settings.sections)
    assert "sk-very-secret" not in text and "pw-secret" not in text and "s3cr3t" not in text


def test_the_documented_table_is_current():
    doc = DOC.read_text(encoding="utf-8")
    assert markdown_table() in doc, "regenerate docs/worker.md with: python -m worker.config"
    for option in all_options():
        assert option.help, f"{option.env} has no meaning documented"


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_cli_help_lists_settings_with_their_variables():
    done = run_cli("--help")
    assert done.returncode == 0
    assert "--amqp-url" in done.stdout and "AIGEN_AMQP_URL" in done.stdout and "SIGTERM" in done.stdout


def test_cli_refuses_to_start_without_a_secret():
    done = run_cli("--worker-secret", "", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "AIGEN_WORKER_SECRET" in done.stderr
