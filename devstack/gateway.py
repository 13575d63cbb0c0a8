"""The nginx API gateway on loopback, from the same template docker/compose.yaml uses.

nginx runs with a private prefix (config, logs, temp files, pid), in the foreground, never as the system
service: several stacks and test runs can share one machine.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import free_port, wait_http

TEMPLATE = Path(__file__).resolve().parents[1] / "docker" / "nginx" / "aigen.conf.template"
PLACEHOLDER = re.compile(r"\$\{(AIGEN_GATEWAY_[A-Z_]+)\}")
# The values docker/compose.yaml passes when .env says nothing (keep the two in step; tests/stack checks).
DEFAULTS = {
    "AIGEN_GATEWAY_CALLBACK_ALLOW": "127.0.0.1",
    "AIGEN_GATEWAY_RATE": "10r/s",
    "AIGEN_GATEWAY_BURST": "20",
    "AIGEN_GATEWAY_LOGIN_RATE": "30r/m",
    "AIGEN_GATEWAY_LOGIN_BURST": "10",
    # twice ai_generation.max_result_bytes' default (16 MiB) plus 64 KiB, rounded up: what Odoo reads
    "AIGEN_GATEWAY_CALLBACK_MAX_BODY": "33m",
}

MAIN_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include aigen.conf;
}}
"""


def placeholders(template: str | None = None) -> set[str]:
    """The ${AIGEN_GATEWAY_*} names the template expects."""
    return set(PLACEHOLDER.findall(template if template is not None else TEMPLATE.read_text()))


def body_limit(template: str | None = None) -> int:
    """client_max_body_size of the template, in bytes."""
    text = template if template is not None else TEMPLATE.read_text()
    number, unit = re.search(r"client_max_body_size (\d+)([kKmM]?);", text).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def render(values: dict[str, str], template: str | None = None) -> str:
    """The template with every ${AIGEN_GATEWAY_*} replaced, as the nginx image's envsubst step does."""
    text = template if template is not None else TEMPLATE.read_text()
    values = {**DEFAULTS, **values}
    missing = placeholders(text) - values.keys()
    if missing:
        raise ValueError(f"gateway template needs values for {sorted(missing)}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def write_prefix(prefix: Path, values: dict[str, str]) -> Path:
    """Lay out an nginx prefix with the rendered gateway; returns the main config file."""
    for sub in ("conf", "logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    # nginx's workers drop root for "nobody": they must be able to reach the temp folders
    prefix.chmod(0o755)
    (prefix / "conf" / "aigen.conf").write_text(render(values))
    main = prefix / "conf" / "nginx.conf"
    main.write_text(MAIN_CONF.format(prefix=prefix))
    return main


def check(values: dict[str, str]) -> subprocess.CompletedProcess:
    """``nginx -t`` on the rendered gateway, in a throwaway prefix."""
    with tempfile.TemporaryDirectory(prefix="aigen-nginx-t-") as tmp:
        prefix = Path(tmp)
        main = write_prefix(prefix, values)
        return subprocess.run(  # noqa: S603 (our own arguments)
            [nginx_binary(), "-t", "-p", str(prefix), "-c", str(main), "-e", str(prefix / "logs/error.log")],
            capture_output=True,
            text=True,
            check=False,
        )


@dataclass
class Gateway:
    """A running gateway; ``url`` is where clients talk to it."""

    odoo: str
    odoo_bus: str | None = None
    port: int = 0
    callback_allow: str = DEFAULTS["AIGEN_GATEWAY_CALLBACK_ALLOW"]
    rate: str = DEFAULTS["AIGEN_GATEWAY_RATE"]
    burst: int = int(DEFAULTS["AIGEN_GATEWAY_BURST"])
    login_rate: str = DEFAULTS["AIGEN_GATEWAY_LOGIN_RATE"]
    login_burst: int = int(DEFAULTS["AIGEN_GATEWAY_LOGIN_BURST"])
    callback_max_body: str = DEFAULTS["AIGEN_GATEWAY_CALLBACK_MAX_BODY"]
    prefix: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    name = "gateway"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def values(self) -> dict[str, str]:
        return {
            "AIGEN_GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "AIGEN_GATEWAY_ODOO": self.odoo,
            "AIGEN_GATEWAY_ODOO_BUS": self.odoo_bus or self.odoo,
            "AIGEN_GATEWAY_CALLBACK_ALLOW": self.callback_allow,
            "AIGEN_GATEWAY_RATE": self.rate,
            "AIGEN_GATEWAY_BURST": str(self.burst),
            "AIGEN_GATEWAY_LOGIN_RATE": self.login_rate,
            "AIGEN_GATEWAY_LOGIN_BURST": str(self.login_burst),
            "AIGEN_GATEWAY_CALLBACK_MAX_BODY": self.callback_max_body,
        }

    def start(self, timeout: float = 15) -> "Gateway":
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
        self.port = self.port or free_port()
        self.prefix = self.prefix or Path(tempfile.mkdtemp(prefix="aigen-gateway-"))
        main = write_prefix(self.prefix, self.values())
        cmd = [binary, "-p", str(self.prefix), "-c", str(main), "-e", str(self.prefix / "logs/error.log")]
        self.proc = subprocess.Popen([*cmd, "-g", "daemon off;"])  # noqa: S603
        wait_http(f"{self.url}/gateway/health", timeout, ok=lambda s: s == 200, proc=self.proc)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log" if self.prefix else None
        return path.read_text() if path and path.exists() else ""

    def stop(self, remove: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if remove and self.prefix is not None:
            shutil.rmtree(self.prefix, ignore_errors=True)
