"""A real n8n (installed by scripts/install-n8n) run for a test session, on loopback, in a throwaway folder.

Lifecycle, as n8n 2.x wants it and n8n_workflows/README.md documents it: render the workflows with the
deployment's settings (``build.py --settings``), import the credentials and the workflows with the CLI,
publish them (import always deactivates), then start; an owner account and an API key are made through
the REST API once it runs (the error workflow reads failed executions through the public API), and the
"n8n API" credential is imported with that key. n8n runs with its 2.x default
N8N_BLOCK_ENV_ACCESS_IN_NODE=true and no AIGEN_* variable in its environment: the workflows must not
need either. ``stop()`` ends the process group it started, task runner included.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "n8n_workflows"
WORKFLOW_FILES = ("error_handler.json", "alerts.json", "generation.json")
WORKFLOW_IDS = ("AigenErrorReport", "AigenAlertState0", "AigenGenerateJob")  # as in n8n_workflows/build.py


def load_build():
    """n8n_workflows/build.py (a script, not a package) as a module of its own."""
    spec = importlib.util.spec_from_file_location("aigen_n8n_build", WORKFLOWS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def n8n_home() -> Path:
    return Path(os.environ.get("AIGEN_N8N_HOME", "/opt/n8n"))


def n8n_bin() -> Path:
    return n8n_home() / "bin" / "n8n"


def missing_reason() -> str | None:
    """Why the n8n tier cannot run here, or None when it can."""
    if not os.access(n8n_bin(), os.X_OK):
        return f"n8n is not installed at {n8n_bin()} (run scripts/install-n8n or set AIGEN_N8N_HOME)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def credential_ids() -> dict[str, str]:
    """Credential name -> the id the workflows use for it (n8n_workflows/credentials.template.json)."""
    template = json.loads((WORKFLOWS / "credentials.template.json").read_text(encoding="utf-8"))
    return {c["name"]: c["id"] for c in template}


class N8n:
    def __init__(self, settings: dict, folder: str | None = None, *, with_api_url: bool = True):
        """``settings``: the workflows' settings (n8n_workflows/build.py SETTINGS names) for this instance;
        ``with_api_url`` False leaves n8n_api_url empty (the error workflow cannot read executions)."""
        self._tmp = None if folder else tempfile.TemporaryDirectory(prefix="aigen-n8n-")
        self.folder = Path(folder or self._tmp.name)
        self.port = free_port()
        self.broker_port = free_port()
        self.settings = {**settings, "n8n_api_url": f"{self.url}/api/v1" if with_api_url else ""}
        self.process: subprocess.Popen | None = None
        self.log_path = self.folder / "n8n.log"
        self.api_key: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "AIGEN_"))}
        env.update(
            N8N_USER_FOLDER=str(self.folder),
            DB_TYPE="sqlite",
            N8N_ENCRYPTION_KEY="aigen-test-only-encryption-key",
            N8N_LISTEN_ADDRESS="127.0.0.1",
            N8N_PORT=str(self.port),
            N8N_RUNNERS_BROKER_PORT=str(self.broker_port),
            N8N_RUNNERS_BROKER_LISTEN_ADDRESS="127.0.0.1",
            N8N_DIAGNOSTICS_ENABLED="false",
            N8N_VERSION_NOTIFICATIONS_ENABLED="false",
            N8N_PERSONALIZATION_ENABLED="false",
            N8N_TEMPLATES_ENABLED="false",
            N8N_BLOCK_ENV_ACCESS_IN_NODE="true",  # n8n 2.x's default, said explicitly: nothing reads $env
            N8N_SECURE_COOKIE="false",
            N8N_LOG_LEVEL="warn",
            N8N_LOG_OUTPUT="console",
            EXECUTIONS_DATA_PRUNE="false",
            # as many Code-node tasks at once as the trigger's parallel jobs (the default is 10)
            N8N_RUNNERS_MAX_CONCURRENCY="16",
        )
        return env

    # -- CLI -------------------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [str(n8n_bin()), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"n8n {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def import_credentials(self, credentials: list[dict]) -> None:
        path = self.folder / f"credentials-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(credentials), encoding="utf-8")
        try:
            self.cli("import:credentials", f"--input={path}")
        finally:
            path.unlink()  # it holds secrets in clear

    def import_workflows(self) -> None:
        """The documented path: a settings file, build.py --settings/--out, import of that folder."""
        settings_file = self.folder / "settings.json"
        settings_file.write_text(json.dumps(self.settings), encoding="utf-8")
        staging = self.folder / "workflows"
        if load_build().main(["--settings", str(settings_file), "--out", str(staging)]) != 0:
            raise RuntimeError(f"build.py refused the settings {self.settings}")
        # import:workflow --separate reads every *.json of the folder: only the three workflows
        assert sorted(p.name for p in staging.glob("*.json")) == sorted(WORKFLOW_FILES)
        self.cli("import:workflow", "--separate", f"--input={staging}")

    def publish(self, workflow_id: str) -> None:
        self.cli("publish:workflow", f"--id={workflow_id}")

    # -- server ----------------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.process = subprocess.Popen(
            [str(n8n_bin()), "start"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            if self.process.poll() is not None:
                raise RuntimeError(f"n8n exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz/readiness", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"n8n not ready within {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)  # our own process group: n8n and its task runner
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    # -- REST ------------------------------------------------------------------------------------------

    def create_api_key(self) -> str:
        """Set up the owner account (a fresh instance has none) and make a public-API key for it."""
        session = requests.Session()
        password = "Aa1-" + secrets.token_hex(12)
        answer = session.post(
            f"{self.url}/rest/owner/setup",
            json={
                "email": "owner@example.invalid",
                "firstName": "Test",
                "lastName": "Owner",
                "password": password,
            },
            timeout=30,
        )
        answer.raise_for_status()
        answer = session.post(
            f"{self.url}/rest/api-keys",
            json={"label": "aigen-tests", "scopes": ["execution:read", "execution:list"], "expiresAt": None},
            timeout=30,
        )
        answer.raise_for_status()
        self.api_key = answer.json()["data"]["rawApiKey"]
        return self.api_key

    def version(self) -> str:
        return self.cli("--version").strip().splitlines()[-1]


# The credentials' URL fields only serve n8n's own "Test" button: the workflows call the URLs of their
# settings. Filled with an address nothing listens on, a workflow that used them would fail the tier.
UNUSED_URL = "http://127.0.0.1:9/the-workflows-use-their-settings"


def deploy(
    vhost_name: str,
    settings: dict,
    *,
    worker_secret: str,
    openai_key: str,
    k8s_token: str | None = None,
    with_api_url: bool = True,
) -> N8n:
    """An n8n running the three workflows of n8n_workflows/ on ``vhost_name`` (the topology declared).

    The documented path: workflows rendered with ``settings`` (build.py SETTINGS names), credentials and
    workflows imported with the CLI, published, n8n started, then the n8n API credential (for the error
    workflow) made from a fresh owner's API key.
    """
    ids = credential_ids()
    n8n = N8n(settings, with_api_url=with_api_url)
    try:
        n8n.import_credentials(
            [
                {
                    "id": ids["RabbitMQ"],
                    "name": "RabbitMQ",
                    "type": "rabbitmq",
                    "data": {
                        "hostname": "127.0.0.1",
                        "port": 5672,
                        "username": "guest",
                        "password": "guest",
                        "vhost": vhost_name,
                        "ssl": False,
                    },
                },
                {
                    "id": ids["Odoo worker secret"],
                    "name": "Odoo worker secret",
                    "type": "httpBearerAuth",
                    "data": {"token": worker_secret},
                },
                {
                    "id": ids["Kubernetes token"],
                    "name": "Kubernetes token",
                    "type": "httpBearerAuth",
                    "data": {"token": k8s_token or "not-configured"},
                },
                {
                    "id": ids["OpenAI key"],
                    "name": "OpenAI key",
                    "type": "openAiApi",
                    "data": {"apiKey": openai_key, "url": UNUSED_URL},
                },
            ]
        )
        n8n.import_workflows()
        for workflow_id in WORKFLOW_IDS:
            n8n.publish(workflow_id)
        n8n.start()
        key = n8n.create_api_key()
        n8n.import_credentials(
            [
                {
                    "id": ids["n8n API"],
                    "name": "n8n API",
                    "type": "n8nApi",
                    "data": {"apiKey": key, "baseUrl": UNUSED_URL},
                }
            ]
        )
    except BaseException:
        n8n.close()
        raise
    return n8n
