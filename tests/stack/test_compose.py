"""docker/compose.yaml (which cannot run here: no Docker engine) checked against what the code reads.

Every service, port, volume and environment name the compose file uses must match the worker's settings
(worker/config.py), the addon's settings script, the gateway template, Prometheus' targets and the
example env file, so that `docker compose up` starts a stack whose parts find each other.
"""

import configparser
import re
import urllib.parse
from pathlib import Path

import pytest
import yaml

from devstack import gateway
from tests.stack.facts import ADDON, REPO, env_names_read
from worker.config import all_options

DOCKER = REPO / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
COMPOSE_TEXT = (DOCKER / "compose.yaml").read_text()
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (DOCKER / ".env.example").read_text().splitlines()
    if line.strip() and not line.lstrip().startswith("#")
)
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}")
WORKER_ENV = {opt.env: opt for opt in all_options()}


def env_of(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def expand(value: str) -> str:
    """A compose value with ${VAR:-default} / ${VAR} filled from .env.example, as compose would."""
    return INTERPOLATION.sub(lambda m: ENV_EXAMPLE.get(m.group(1)) or (m.group(3) or ""), value)


def host_port(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlparse(expand(url))
    return parts.hostname, parts.port


def test_every_part_of_the_system_is_a_service():
    expected = {
        "db",
        "rabbitmq",
        "odoo-init",
        "odoo",
        "worker",
        "n8n",
        "gateway",
        "prometheus",
        "alertmanager",
    }
    assert set(SERVICES) == expected


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_uses_an_official_image_or_a_dockerfile_of_docker_dir(name):
    service = SERVICES[name]
    if "build" in service:
        dockerfile = (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).resolve()
        assert dockerfile.parent == DOCKER and dockerfile.is_file()
        base = re.search(r"^FROM (\S+)", dockerfile.read_text(), re.M).group(1)
        assert base.split(":")[0] in {"odoo", "python"}
    else:
        repo = service["image"].split(":")[0]
        assert repo in {"postgres", "rabbitmq", "n8nio/n8n", "nginx", "prom/prometheus", "prom/alertmanager"}
        assert ":" in service["image"] and not service["image"].endswith(":latest"), "pin a version"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_long_running_services_have_health_checks_and_restart(name):
    service = SERVICES[name]
    if service.get("restart") == "no":  # the one-shot odoo-init
        return
    assert service["healthcheck"]["test"], name
    assert service["restart"] == "unless-stopped"


def test_named_volumes_are_declared_and_bind_mounts_exist():
    declared = set(COMPOSE["volumes"])
    used = set()
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{source} is mounted but missing"
            else:
                used.add(source)
    assert used == declared


def test_only_the_gateway_is_published_beyond_loopback():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            published = expand(port)
            if name == "gateway":
                assert published == "8080:8080"
            else:
                assert published.startswith("127.0.0.1:"), f"{name} publishes {published} to every interface"
    assert (
        "ports" not in SERVICES["odoo"]
        and "ports" not in SERVICES["db"]
        and "ports" not in SERVICES["worker"]
    )


def test_every_interpolated_variable_is_in_the_example_env_file_or_has_a_default():
    for match in INTERPOLATION.finditer(COMPOSE_TEXT):
        name, kind = match.group(1), match.group(2)
        assert name in ENV_EXAMPLE or kind == "-", f"{name} has no default and is not in .env.example"
        if kind == "?":
            assert ENV_EXAMPLE.get(name), f"required {name} needs an example value"


def test_every_example_variable_is_used():
    used = {m.group(1) for m in INTERPOLATION.finditer(COMPOSE_TEXT)}
    assert set(ENV_EXAMPLE) - used == set()


def test_the_real_env_file_stays_out_of_git():
    ignored = (REPO / ".gitignore").read_text().split()
    assert "docker/.env" in ignored


def test_worker_environment_names_are_settings_the_worker_reads():
    unknown = set(env_of("worker")) - set(WORKER_ENV)
    assert unknown == set()


def test_worker_gets_what_it_needs_to_work():
    env = env_of("worker")
    for name in ("AIGEN_AMQP_URL", "AIGEN_ODOO_URL", "AIGEN_WORKER_SECRET", "AIGEN_OPENAI_API_KEY"):
        assert name in env
    alert_urls = [
        name for name, opt in WORKER_ENV.items() if opt.section == "alert" and name.endswith("_URL")
    ]
    assert alert_urls, "worker/alerting.py should have an Alertmanager URL setting"
    assert host_port(env[alert_urls[0]]) == ("alertmanager", 9093)
    assert host_port(env["AIGEN_ODOO_URL"]) == ("odoo", 8069)
    assert env["AIGEN_METRICS_HOST"] == "0.0.0.0"


def test_metrics_port_agrees_everywhere():
    port = int(env_of("worker")["AIGEN_METRICS_PORT"])
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert f"worker:{port}" in targets
    assert f"127.0.0.1:{port}/healthz" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert f"EXPOSE {port}" in (DOCKER / "worker.Dockerfile").read_text()


def test_prometheus_sends_to_the_alertmanager_service():
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    mounted = {v.split(":")[1] for v in SERVICES["prometheus"]["volumes"] if v.startswith(".")}
    for rule_file in prometheus["rule_files"]:
        assert f"/etc/prometheus/{rule_file}" in mounted


def test_odoo_and_worker_use_the_same_broker_vhost_and_secret():
    odoo, worker = env_of("odoo-init"), env_of("worker")
    assert odoo["AIGEN_AMQP_URL"] == worker["AIGEN_AMQP_URL"]
    secret_var = INTERPOLATION.fullmatch(odoo["AIGEN_WORKER_SECRET"]).group(1)
    assert (
        secret_var == INTERPOLATION.fullmatch(worker["AIGEN_WORKER_SECRET"]).group(1) == "AIGEN_WORKER_SECRET"
    )
    vhost = urllib.parse.urlparse(expand(worker["AIGEN_AMQP_URL"])).path.lstrip("/")
    assert vhost == env_of("rabbitmq")["RABBITMQ_DEFAULT_VHOST"]
    assert host_port(worker["AIGEN_AMQP_URL"]) == ("rabbitmq", 5672)


def test_odoo_environment_names_are_read_by_the_addon_or_the_settings_script():
    read = env_names_read(DOCKER / "odoo" / "configure.py") | env_names_read(ADDON / "pure" / "contracts.py")
    image_own = {"HOST", "USER", "PASSWORD"}  # the odoo image's entrypoint turns these into --db_* flags
    assert set(env_of("odoo-init")) - read - image_own == set()
    assert SERVICES["odoo"]["environment"] == SERVICES["odoo-init"]["environment"]


def test_settings_script_writes_parameters_the_addon_defines():
    script = (DOCKER / "odoo" / "configure.py").read_text()
    settings = (ADDON / "models" / "res_config_settings.py").read_text()
    keys = re.findall(r"\"(ai_generation\.[a-z_]+)\"", script)
    assert keys
    for key in keys:
        assert f'"{key}"' in settings, f"{key} is not a setting of the addon"


def test_contracts_are_mounted_where_the_addon_is_told_to_look():
    schemas_dir = env_of("odoo")["AIGEN_SCHEMAS_DIR"]
    assert f"../schemas:{schemas_dir}:ro" in SERVICES["odoo"]["volumes"]
    assert "../addons:/mnt/extra-addons:ro" in SERVICES["odoo"]["volumes"]


def test_gateway_variables_match_the_template_and_the_local_defaults():
    env = env_of("gateway")
    assert set(env) == gateway.placeholders()
    for name, default in gateway.DEFAULTS.items():
        assert env[name] == f"${{{name}:-{default}}}"
        assert ENV_EXAMPLE[name] == default
    assert env["AIGEN_GATEWAY_ODOO"] == "odoo:8069"
    gevent = re.search(r"--gevent-port=(\d+)", SERVICES["odoo"]["command"]).group(1)
    assert env["AIGEN_GATEWAY_ODOO_BUS"] == f"odoo:{gevent}"
    assert env["AIGEN_GATEWAY_LISTEN"] == expand(SERVICES["gateway"]["ports"][0]).split(":")[1]
    assert (
        "./nginx/aigen.conf.template:/etc/nginx/templates/default.conf.template:ro"
        in SERVICES["gateway"]["volumes"]
    )


def test_worker_image_copies_every_package_setup_cfg_installs():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    packages = cfg["options"]["packages"].split()
    package_dir = dict(
        line.split(" = ") for line in cfg["options"].get("package_dir", "").strip().splitlines() if line
    )
    copied = re.findall(r"^COPY (\S+) ", (DOCKER / "worker.Dockerfile").read_text(), re.M)
    for package in packages:
        top = package.split(".")[0]
        source = package_dir.get(top, top)
        assert source in copied, f"{source}/ ({package}) is not copied into the worker image"
        assert Path(REPO / source).is_dir()


def test_n8n_settings_for_compose_name_its_services():
    """The n8n workflows read no environment: their settings are rendered from settings.compose.json."""
    import json

    settings = json.loads((REPO / "n8n_workflows" / "settings.compose.json").read_text())
    workflow = json.loads((REPO / "n8n_workflows" / "generation.json").read_text())
    node = next(n for n in workflow["nodes"] if n["name"] == "Settings")
    defaults = {a["name"]: a["value"] for a in node["parameters"]["assignments"]["assignments"]}
    # a default that points at this host is wrong inside the container (n8n's own API excepted)
    loopback = {k for k, v in defaults.items() if "127.0.0.1" in str(v)} - {"n8n_api_url"}
    assert loopback and loopback - set(settings) == set()
    for name in loopback:
        assert host_port(settings[name])[0] in SERVICES, name
    env = env_of("n8n")
    assert {name for name in env if name.startswith("AIGEN_")} == set()  # nothing would read them
    assert "N8N_BLOCK_ENV_ACCESS_IN_NODE" not in env  # n8n 2.x's default (true): no $env in nodes


def test_worker_and_odoo_alerts_carry_the_same_service_label():
    """Alertmanager merges the worker's and Odoo's copy of an alert only when every label is equal."""
    addon_service = re.search(
        r'^SERVICE = "([^"]+)"', (ADDON / "pure" / "alerts.py").read_text(), re.M
    ).group(1)
    assert env_of("worker")["AIGEN_ALERT_SERVICE"] == addon_service
    rules = yaml.safe_load((DOCKER / "prometheus" / "alerts.yml").read_text())
    assert {r["labels"]["service"] for g in rules["groups"] for r in g["rules"]} == {addon_service}
