"""The load client of bench/api_load.py: wrk (Debian's, C, epoll) with bench/api_load.lua, and a trivial
nginx on loopback to measure the client's own ceiling in the same run.

wrk runs with as many threads as connections, so each connection is one thread with its own API key.
Its CPU time is read from the kernel (``os.wait4``): the bench prints how much of the 2 cores the client
itself took while Odoo was measured.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().with_name("api_load.lua")


@dataclass(frozen=True)
class WrkRun:
    values: dict[str, float]  # the wrk_* lines of api_load.lua's done()
    cpu_seconds: float  # user + system time of wrk
    wall_seconds: float

    @property
    def requests(self) -> int:
        return int(self.values.get("wrk_requests", 0))

    @property
    def rps(self) -> float:
        return self.requests / self.values["wrk_duration_s"] if self.values.get("wrk_duration_s") else 0.0

    def status_count(self, status: int) -> int:
        return int(self.values.get(f"wrk_status_{status}", 0))

    @property
    def client_cores(self) -> float:
        """The client's CPU use while it ran, in cores."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    seconds: float,
    connections: int = 16,
    keys: list[str] | None = None,
    timeout: float = 30,
    idempotency_keys: bool = False,
) -> WrkRun:
    """GET ``url`` (no keys) or POST generation requests to it with ``keys`` (one per connection,
    round-robin; one key: a hot account) for ``seconds``; ``idempotency_keys``: each POST with a new
    Idempotency-Key, as the PWA sends them."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    env = dict(os.environ)
    with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as keys_file:
        keys_file.write("\n".join(keys or []) + "\n")
    if keys:
        env["AIGEN_BENCH_KEYS"] = keys_file.name
    else:
        env.pop("AIGEN_BENCH_KEYS", None)
    env["AIGEN_BENCH_IDEMPOTENCY"] = "1" if idempotency_keys else "0"
    command = [
        binary,
        f"-t{connections}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(LUA),
        url,
    ]
    try:
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - started
            out.seek(0)
            output = out.read()
    finally:
        os.unlink(keys_file.name)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{output[-2000:]}")
    values = {}
    for line in output.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("wrk_"):
            values[name] = float(value)
    return WrkRun(values, usage.ru_utime + usage.ru_stime, wall)


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 202 '{{"request_id": "00000000-0000-4000-8000-000000000000", "status": "queued"}}';
        }}
    }}
}}
"""


@contextmanager
def trivial_server(port: int):
    """An nginx that answers every request with a fixed 202 JSON: what the client can do at most."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = Path(tempfile.mkdtemp(prefix="aigen-bench-nginx-"))
    prefix.chmod(0o755)  # nginx's worker drops root for "nobody"
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port))
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(prefix, ignore_errors=True)


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nginx did not listen on {port}")
