"""bench/api_load.py keeps working: its quick mode runs every phase in both Odoo modes and prints every line.

No figure is asserted (this machine's speed is no test result, and the targets are the bench's to show),
only that each phase measured something and that every POST with credits was accepted.
"""

import importlib.util
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.odoo import REPO, require_odoo

BENCH = REPO / "bench"


def _bench_module(name):
    """bench/<name>.py loaded as ``bench_<name>`` (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _require_odoo_and_wrk():
    """What every bench run here needs; skips with the reason otherwise."""
    require_odoo()
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (Debian: apt-get install wrk)")


def _run_bench(script, *args, timeout):
    """The name=value lines of a bench script run to its end (its output on failure)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_server_time_is_read_from_odoos_request_line():
    odoo_log = _bench_module("odoo_log")
    text = (
        "2026-12-01 09:46:01,384 31122 INFO ? odoo.service.server: HTTP service (werkzeug) running\n"
        "2026-12-01 09:46:25,669 31122 INFO db werkzeug: 127.0.0.1 - - [01/Dec/2026 09:46:25]"
        ' "POST /api/v1/generations HTTP/1.1" 202 - 31 0.012 0.020\n'
        "2026-12-01 09:46:25,700 31122 INFO db werkzeug: 127.0.0.1 - - [01/Dec/2026 09:46:25]"
        ' "GET /web/health?x=1 HTTP/1.1" 200 - 0 0.000 0.002\n'
        "2026-12-01 09:46:26,001 31122 ERROR db odoo.sql_db: bad query: could not serialize access\n"
        "2026-12-01 09:46:26,002 31122 INFO db odoo.service.model: SERIALIZATION_FAILURE, 4 tries left\n"
    )
    lines = odoo_log.parse_requests(text)
    assert [(r.method, r.path, r.status, r.queries) for r in lines] == [
        ("POST", "/api/v1/generations", 202, 31),
        ("GET", "/web/health", 200, 0),
    ]
    assert math.isclose(lines[0].server_seconds, 0.032)
    assert lines[1].at - lines[0].at == pytest.approx(0.031, abs=1e-6)
    assert odoo_log.serialization_failures(text) == 2
    assert len(odoo_log.error_lines(text)) == 1
    assert odoo_log.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert odoo_log.percentile([float(i) for i in range(1, 101)], 99) == 99.0


PER_MODE = [
    "health_rps",
    "post_16_users_rps",
    "post_16_users_ratio_to_health",
    "post_16_users_server_p50_ms",
    "post_16_users_server_p99_ms",
    "post_16_users_client_p99_ms",
    "post_hot_user_rps",
    "post_hot_user_ratio_to_health",
    "post_hot_user_server_p99_ms",
    "health_machine_cpu_ms",
    "post_16_users_machine_cpu_ms",
    "post_16_users_odoo_cpu_ms",
    "post_16_users_postgres_cpu_ms",
    "post_16_users_rabbitmq_cpu_ms",
    "health_odoo_cpu_ms",
    "post_16_users_machine_bound_ratio",
    "post_16_users_odoo_bound_ratio",
    "e2e_jobs_finished",
    "e2e_jobs_per_s",
    "e2e_ratio_to_health",
    "e2e_machine_cpu_ms_per_job",
    "e2e_machine_bound_ratio",
    "e2e_odoo_bound_ratio",
    "scaling_one_worker_jobs_per_s",
    "scaling_two_workers_jobs_per_s",
    "scaling_two_to_one_workers",
    "client_headroom",
    "serialization_failures",
    "error_lines",
]


@pytest.mark.odoo
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_bench_measures_every_phase_in_both_modes():
    _require_odoo_and_wrk()
    values = _run_bench("api_load.py", "--quick", timeout=840)
    print("\n".join(f"{name}={value}" for name, value in values.items()))
    for mode in ("threaded", "prefork"):
        for name in PER_MODE:
            value = float(values[f"{mode}_{name}"])  # present, and a number
            assert not math.isnan(value), f"{mode}_{name} measured nothing"
        for positive in ("health_rps", "post_16_users_rps", "post_hot_user_rps", "e2e_jobs_finished"):
            assert float(values[f"{mode}_{positive}"]) > 0, positive
        assert values[f"{mode}_post_16_users_non_202"] == "0"
        assert values[f"{mode}_post_hot_user_non_202"] == "0"
    assert float(values["client_ceiling_post_rps"]) > 0
    assert int(values["serialization_failures_total"]) >= 0 and int(values["error_lines_total"]) >= 0


def test_the_cpu_meters_count_what_the_machine_and_a_named_process_spent():
    api_stack = _bench_module("api_stack")
    command = (Path("/proc/self/comm").read_text().strip(),)  # this process's, as the kernel names it
    machine, named, own = (
        api_stack.machine_cpu_seconds(),
        api_stack.command_cpu_seconds(command),
        time.process_time(),
    )
    while time.process_time() - own < 0.3:  # this process busy for 0.3 s of CPU
        pass
    assert api_stack.machine_cpu_seconds() - machine >= 0.25
    assert api_stack.command_cpu_seconds(command) - named >= 0.25
    assert api_stack.command_cpu_seconds(("no-such-command",)) == 0


def test_profile_shares_count_each_frame_once_per_stack():
    profile = _bench_module("profile_post")
    folded = (
        "run (serving.py:10);create (api.py:5);create (models.py:7);create (models.py:7) 3\n"
        "run (serving.py:10);commit (sql_db.py:480) 1\n"
        "not a stack line\n"
    )
    total, seen = profile.inclusive_shares(folded)
    assert total == 4
    assert seen["run (serving.py:10)"] == 4
    assert seen["create (models.py:7)"] == 3  # recursion is not counted twice
    assert profile.short("create (/opt/odoo/odoo/models.py:4975)") == "models.py:create"


@pytest.mark.odoo
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_profile_post_measures_the_cpu_of_a_post_and_its_callbacks():
    _require_odoo_and_wrk()
    values = _run_bench(
        "profile_post.py", "--no-spy", "--with-worker", "--idempotency-keys", "--seconds", "2", timeout=540
    )
    assert float(values["post_rps"]) > 0
    # every POST accepted, each with a key of its own (none replayed)
    assert (values["post_non_202"], values["post_replayed"]) == ("0", "0")
    assert float(values["odoo_cpu_ms_per_post"]) > 0
    assert float(values["client_latency_p99_ms"]) >= float(values["client_latency_p50_ms"]) > 0
    # the worker finished every job the POSTs created
    assert int(values["jobs_finished"]) > 0
    assert int(values["jobs_unfinished"]) == 0


@pytest.mark.odoo
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_create_history_bench_posts_from_a_new_user_and_one_with_a_long_history():
    _require_odoo_and_wrk()
    values = _run_bench("create_history.py", "--history", "2000", "--phase-seconds", "1", timeout=540)
    assert values["history_requests"] == "2000"
    for user in ("new_user", "long_history_user"):
        assert float(values[f"post_{user}_rps"]) > 0
        assert values[f"post_{user}_non_202"] == "0"  # every POST accepted: the users have the credits
    assert float(values["long_history_to_new_user_ratio"]) > 0
