"""End to end, with real parts: a user with credits goes through the gateway, and every path is checked
from the user's side (API and the bus, read over the websocket like the PWA) and from the ledger.

One Odoo server, one worker process at a time, one module: (d) success, (a) provider 503 on every
attempt, (b) invalid input (free warning, then charged), (e) the worker SIGKILLed mid-job, (f) Odoo down
while the worker reports, (c) a burst of system errors alerting through Alertmanager, then resolving.
The figures (wall time per path, provider error → notification, N-th error → alert) are printed at the end.
"""

import shutil
import time

import pytest
import requests

import aigen_contracts
from devstack import alertmanager, gateway
from devstack.odoo import OdooHome
from tests.e2e import stack as e2e
from tests.e2e.bus import BusListener, login
from tests.e2e.figures import FIGURES
from tests.support import fake_openai as fo

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow, pytest.mark.timeout(600)]

TAXONOMY = aigen_contracts.load("error_taxonomy.json")
TERMINAL = {"succeeded", "failed", "cancelled"}
BURST = 3  # failures of one (backend, error_type) that make the worker alert (AIGEN_ALERT_* below)


def _skip_reason() -> str | None:
    home = OdooHome.from_env()
    if (why := home.problem()) is not None:
        return f"needs a real Odoo 18.0: {why}"
    if gateway.nginx_binary() is None:
        return "needs nginx (apt-get install nginx-light)"
    if alertmanager.binary() is None:
        return "needs prometheus-alertmanager (apt-get install prometheus-alertmanager)"
    return None


@pytest.fixture(scope="module")
def stack():
    if (reason := _skip_reason()) is not None:
        pytest.skip(reason)
    from tests.support.rabbit import throwaway_vhost

    tmp = e2e.new_tmp()
    with throwaway_vhost("aigen-e2e") as vhost, fo.FakeOpenAI() as fake:
        s = e2e.Stack(OdooHome.from_env(), vhost.url, fake, tmp, log=print)
        try:
            started = time.monotonic()
            s.start_alertmanager()
            s.prepare_odoo()
            s.start_odoo()
            s.start_gateway()
            s.start_worker(**alert_settings(s))
            FIGURES["stack start (s)"] = time.monotonic() - started
            yield s
        except Exception:
            for name in ("odoo", "worker", "alertmanager"):
                print(f"----- {name} log (tail) -----\n{s.tail(name)}")
            raise
        finally:
            s.stop()
    shutil.rmtree(tmp, ignore_errors=True)  # kept (logs inside) when the stack failed to start


def alert_settings(s: e2e.Stack) -> dict[str, str]:
    """The worker's alert settings for a fast test: Alertmanager's URL, BURST errors in a short window."""
    from worker.config import all_options

    env = {o.name: o.env for o in all_options() if o.section == "alert"}
    wanted = {
        "alertmanager_url": s.alertmanager_url,
        "rate_threshold": str(BURST),
        "window_seconds": "30",
        "eval_interval_seconds": "0.5",
        "resend_seconds": "5",
        "quiet_seconds": "4",  # no matching error for this long: the alert resolves
        "consecutive_threshold": "1000",  # keep the other detectors out of this test's way
        "persistent_seconds": "3600",
    }
    missing = set(wanted) - set(env)
    assert not missing, f"worker/alerting.py AlertConfig lacks {missing}"
    return {env[name]: value for name, value in wanted.items()}


class User:
    """The PWA's side: a logged-in session through the gateway, and its bus."""

    def __init__(self, s: e2e.Stack):
        self.s = s
        self.http = login(s.url, s.db, e2e.USER_LOGIN, e2e.USER_PASSWORD)
        self.bus = BusListener(s.url, self.http.cookies["session_id"]).start()

    def generate(self, prompt: str) -> str:
        body = {"backend": "external", "model": e2e.MODEL, "task": "text", "prompt": prompt, "params": {}}
        resp = self.http.post(f"{self.s.url}/api/v1/generations", json=body, timeout=30)
        assert resp.status_code == 202, resp.text
        assert resp.json()["credits_reserved"] == e2e.PRICE
        return resp.json()["request_id"]

    def status(self, request_id: str) -> dict:
        resp = self.http.get(f"{self.s.url}/api/v1/generations/{request_id}", timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def credits(self) -> dict:
        resp = self.http.get(f"{self.s.url}/api/v1/credits", timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def ledger(self, request_id: str) -> list[dict]:
        return [line for line in self.credits()["recent_lines"] if line["request_id"] == request_id]

    def wait_terminal(self, request_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.status(request_id)
            if body["status"] in TERMINAL:
                return body
            time.sleep(0.2)
        raise TimeoutError(f"{request_id} not terminal after {timeout} s: {body}")

    def update(self, request_id: str, status: str, timeout: float = 60, **fields):
        """The first ai_generation/update for the request with that status (and fields) on the bus."""

        def matches(note):
            return (
                note.type == "ai_generation/update"
                and note.payload.get("request_id") == request_id
                and note.payload.get("status") == status
                and all(note.payload.get(k) == v for k, v in fields.items())
            )

        return self.bus.wait_for(matches, timeout)


@pytest.fixture(scope="module")
def user(stack):
    u = User(stack)
    yield u
    u.bus.close()


def balance(u: User) -> tuple[int, int, int]:
    c = u.credits()
    return c["balance"], c["held"], c["available"]


def parked_outcomes(s: e2e.Stack) -> float:
    """aigen_worker_jobs_total{outcome="parked"} read from the worker's /metrics, as Prometheus would."""
    text = requests.get(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aigen_worker_jobs_total{") and 'outcome="parked"' in line
    )


def provider_calls(s: e2e.Stack, marker: str) -> list:
    return [r for r in s.fake.requests if marker in r.prompt]


# ----------------------------------------------------------------------------------------------- (d)
def test_d_success_captures_once_and_the_result_is_readable(stack, user):
    marker = "[e2e-ok]"
    stack.fake.on(marker, fo.text("a poem about fair credits"))
    before = balance(user)
    started = time.monotonic()
    rid = user.generate(f"write a poem {marker}")
    note = user.update(rid, "succeeded")
    FIGURES["path d success wall (s)"] = time.monotonic() - started

    assert note.payload["result_available"] is True and note.payload["credits_charged"] == e2e.PRICE
    body = user.status(rid)
    assert body["status"] == "succeeded"
    assert body["result"]["output"] == "a poem about fair credits"
    assert body["credits_charged"] == e2e.PRICE
    assert balance(user) == (before[0] - e2e.PRICE, before[1], before[2] - e2e.PRICE)
    kinds = sorted(line["kind"] for line in user.ledger(rid))
    assert kinds == ["capture", "hold"]
    assert len(provider_calls(stack, marker)) == 1


# ----------------------------------------------------------------------------------------------- (a)
def test_a_provider_503_on_every_attempt_costs_nothing_and_the_user_is_told(stack, user):
    marker = "[e2e-503]"
    stack.fake.on(marker, fo.unavailable())
    before = balance(user)
    started = time.monotonic()
    rid = user.generate(f"draw a cat {marker}")
    suggestion = TAXONOMY["error_types"]["provider_unavailable"]["retry_suggestion"]
    note = user.update(rid, "failed", retry_suggestion=suggestion)
    FIGURES["path a provider-503 wall (s)"] = time.monotonic() - started

    calls = provider_calls(stack, marker)
    assert len(calls) == 3  # AIGEN_MAX_ATTEMPTS: every attempt met the 503
    FIGURES["path a provider error -> notification in the user's hands (s)"] = (
        note.received_at - calls[-1].received_at
    )
    assert note.payload["message"] == TAXONOMY["messages"]["system"]
    assert note.payload["is_system_error"] is True and note.payload["credits_charged"] == 0

    body = user.wait_terminal(rid)
    assert body["status"] == "failed" and body["error_type"] == "provider_unavailable"
    assert body["credits_charged"] == 0 and body["retry_suggestion"] == suggestion
    assert balance(user) == before  # exactly as before: balance, held, available
    lines = user.ledger(rid)
    assert sorted(line["kind"] for line in lines) == ["hold", "release"]
    release = next(line for line in lines if line["kind"] == "release")
    assert release["amount"] == 0 and release["hold_amount"] == -e2e.PRICE
    assert "not charged" in release["reason"] and "provider_unavailable" in release["reason"]


# ----------------------------------------------------------------------------------------------- (b)
def test_b_invalid_input_is_free_while_warnings_last_then_charged(stack, user):
    marker = "[e2e-invalid]"
    stack.fake.on(marker, fo.invalid_value("size"))
    guidance = TAXONOMY["error_types"]["invalid_input"]["specific_guidance"]
    before = balance(user)

    started = time.monotonic()
    first = user.generate(f"an image of size 1x99999 {marker}")
    warned = user.update(first, "failed", specific_guidance=guidance)
    FIGURES["path b invalid-input (warning) wall (s)"] = time.monotonic() - started
    FIGURES["path b provider 400 -> guidance notification (s)"] = (
        warned.received_at - provider_calls(stack, marker)[-1].received_at
    )
    assert warned.payload["message"] == TAXONOMY["messages"]["user"]
    assert warned.payload["warning"] is True and warned.payload["credits_charged"] == 0
    assert balance(user) == before
    assert sorted(line["kind"] for line in user.ledger(first)) == ["hold", "release"]

    started = time.monotonic()
    second = user.generate(f"again, size 1x99999 {marker}")
    charged = user.update(second, "failed", specific_guidance=guidance)
    FIGURES["path b invalid-input (charged) wall (s)"] = time.monotonic() - started
    assert (
        charged.payload["warning"] is False and charged.payload["credits_charged"] == e2e.PRICE
    )  # policy: full
    assert "charged" in charged.payload["charge_note"]
    assert balance(user) == (before[0] - e2e.PRICE, before[1], before[2] - e2e.PRICE)
    lines = user.ledger(second)
    assert sorted(line["kind"] for line in lines) == ["hold", "user_error_charge"]
    charge = next(line for line in lines if line["kind"] == "user_error_charge")
    assert charge["amount"] == -e2e.PRICE
    assert len(provider_calls(stack, marker)) == 2  # user errors are not retried


# ----------------------------------------------------------------------------------------------- (e)
def test_e_worker_killed_mid_job_is_redelivered_and_charged_once(stack, user):
    marker = "[e2e-kill]"
    # the first call hangs long enough for the kill to land mid-job; the redelivered one answers at once
    stack.fake.on(marker, fo.text("lost with the worker", delay=8), fo.text("after redelivery"))
    before = balance(user)
    started = time.monotonic()
    rid = user.generate(f"a long story {marker}")
    deadline = time.monotonic() + 30
    while not provider_calls(stack, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert provider_calls(stack, marker), "the worker never called the provider"
    stack.kill_worker()  # SIGKILL: no ack, no callback, no goodbye
    stack.start_worker(**alert_settings(stack))
    note = user.update(rid, "succeeded")
    FIGURES["path e SIGKILL + redelivery wall (s)"] = time.monotonic() - started

    body = user.status(rid)
    assert body["result"]["output"] == "after redelivery"
    assert len(provider_calls(stack, marker)) == 2
    assert note.payload["credits_charged"] == e2e.PRICE
    assert balance(user) == (before[0] - e2e.PRICE, before[1], before[2] - e2e.PRICE)
    assert sorted(line["kind"] for line in user.ledger(rid)) == ["capture", "hold"]
    time.sleep(1)  # a second outcome, if any, would land now
    assert len(user.bus.updates_for(rid)) == len({n.id for n in user.bus.updates_for(rid)})
    assert [n.payload["status"] for n in user.bus.updates_for(rid)].count("succeeded") == 1


# ----------------------------------------------------------------------------------------------- (f)
def test_f_odoo_down_while_the_worker_reports_lands_after_odoo_is_back(stack, user):
    marker = "[e2e-odoo-down]"
    stack.fake.on(marker, fo.text("kept safe while Odoo was away"))
    before = balance(user)
    started = time.monotonic()
    stack.fake.hold()  # the provider answers only once Odoo is down
    try:
        rid = user.generate(f"a haiku {marker}")
        deadline = time.monotonic() + 30
        while not provider_calls(stack, marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert provider_calls(stack, marker), "the worker never called the provider"
        stack.stop_odoo()
        down_at = time.monotonic()
        during = requests.get(f"{stack.url}/api/v1/credits", timeout=10)
        assert during.status_code == 503  # the gateway's JSON 503: Odoo is away
    finally:
        stack.fake.release()
    # the worker retries the result callback for AIGEN_CALLBACK_PATIENCE (2 s), then parks the outcome
    time.sleep(max(0.0, 6 - (time.monotonic() - down_at)))
    stack.start_odoo()
    back_at, back_wall = time.monotonic(), time.time()
    note = user.update(rid, "succeeded", timeout=90)
    assert note.received_at > back_wall  # delivered by the Odoo that came back ...
    assert user.bus.connections >= 2  # ... over the websocket the client reopened, like the PWA
    assert parked_outcomes(stack) >= 1  # the worker kept the outcome aside while Odoo was away
    FIGURES["path f Odoo down wall (s)"] = time.monotonic() - started
    FIGURES["path f Odoo back -> outcome at the user (s)"] = time.monotonic() - back_at
    FIGURES["path f Odoo down for (s)"] = back_at - down_at

    assert note.payload["credits_charged"] == e2e.PRICE
    body = user.status(rid)
    assert body["status"] == "succeeded" and body["result"]["output"] == "kept safe while Odoo was away"
    assert balance(user) == (before[0] - e2e.PRICE, before[1], before[2] - e2e.PRICE)
    assert sorted(line["kind"] for line in user.ledger(rid)) == ["capture", "hold"]
    assert len(provider_calls(stack, marker)) == 1  # the outcome was kept, not the job redone


# ----------------------------------------------------------------------------------------------- (g)
SET_RESULT_LIMIT = """
env["ir.config_parameter"].sudo().set_param("ai_generation.max_result_bytes", {value!r})
env.cr.commit()
env.registry.signal_changes()  # what a request's end does: the running server drops its cached value
print("E2E-LIMIT-SET")
"""


def test_g_a_result_too_large_for_odoo_costs_nothing_and_the_user_is_told(stack, user):
    # 1 KiB: a 5 KB text is over it (Odoo fails the request itself), a 200 KB one is over the body
    # limit too (2 x 1 KiB + 64 KiB: Odoo answers 413 and the worker reports the failure)
    stack.shell(SET_RESULT_LIMIT.format(value="1024"), "E2E-LIMIT-SET")
    try:
        suggestion = TAXONOMY["error_types"]["result_too_large"]["retry_suggestion"]
        parked_before = parked_outcomes(stack)
        for size in (5_000, 200_000):
            marker = f"[e2e-too-large-{size}]"
            stack.fake.on(marker, fo.text("é" * (size // 2)))  # UTF-8: two bytes each
            before = balance(user)
            rid = user.generate(f"a long story {marker}")
            note = user.update(rid, "failed", retry_suggestion=suggestion)
            assert note.payload["is_system_error"] is True and note.payload["credits_charged"] == 0
            body = user.wait_terminal(rid)
            assert (body["error_type"], body["result"], body["credits_charged"]) == (
                "result_too_large",
                None,
                0,
            )
            assert balance(user) == before
            assert sorted(line["kind"] for line in user.ledger(rid)) == ["hold", "release"]
            assert len(provider_calls(stack, marker)) == 1  # reported at once, not retried
        assert parked_outcomes(stack) == parked_before  # the 413 was read, not taken for Odoo away
    finally:
        stack.shell(SET_RESULT_LIMIT.format(value=""), "E2E-LIMIT-SET")


# ----------------------------------------------------------------------------------------------- (c)
def test_c_a_burst_of_system_errors_alerts_through_alertmanager_and_resolves(stack, user):
    marker = "[e2e-burst]"
    stack.fake.on(marker, fo.error(408, "request timeout", type="timeout", code=None))
    started = time.monotonic()
    ids = [user.generate(f"burst {i} {marker}") for i in range(BURST)]
    for rid in ids:
        assert user.wait_terminal(rid)["error_type"] == "provider_timeout"
    calls = sorted(c.received_at for c in provider_calls(stack, marker))
    assert len(calls) == BURST * 3  # provider_timeout is retried: every attempt is an error the worker counts
    nth_error_at, last_error_at = calls[BURST - 1], calls[-1]

    def firing(alert):
        return alert["status"] == "firing" and alert["labels"].get("error_type") == "provider_timeout"

    fired_at, alert = stack.webhook.wait_for(firing, timeout=60)
    assert fired_at > nth_error_at
    FIGURES["path c N-th error -> alert at the webhook (s)"] = fired_at - nth_error_at
    assert alert["labels"]["backend"] == "external" and alert["labels"]["alertname"]
    assert alert["labels"].get("severity")
    assert int(alert["annotations"]["count"]) >= BURST

    def resolved(alert):
        return alert["status"] == "resolved" and alert["labels"].get("error_type") == "provider_timeout"

    resolved_at, _ = stack.webhook.wait_for(resolved, timeout=120)
    assert resolved_at > last_error_at
    FIGURES["path c last error -> resolved at the webhook (s)"] = resolved_at - last_error_at
    FIGURES["path c burst wall (s)"] = time.monotonic() - started
