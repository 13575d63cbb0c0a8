"""Callbacks to Odoo: auth, keep-alive, retries while Odoo is away, settled vs rejected answers."""

import contextlib
import gc
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.worker.helpers import SECRET, job_message
from worker.reporting import (
    FAILURE,
    NOTIFY,
    PROGRESS,
    RESULT,
    Callback,
    CallbackRejected,
    OdooReporter,
    OdooUnavailable,
    ReporterConfig,
    is_terminal,
    new_event_id,
    now_iso,
)


def progress(request_id, event_id=None):
    body = {
        "generation_request_id": request_id,
        "event_id": event_id or new_event_id("progress"),
        "state": "running",
        "attempt": 1,
        "occurred_at": now_iso(),
    }
    return Callback(PROGRESS, body)


def failure(request_id):
    body = {
        "generation_request_id": request_id,
        "event_id": new_event_id("failure"),
        "error_type": "provider_unavailable",
        "is_system_error": True,
        "is_user_error": False,
        "error_code": "http_503",
        "detail": "x",
        "backend": "external",
        "attempt": 1,
        "occurred_at": now_iso(),
    }
    return Callback(FAILURE, body)


def reporter_for(odoo, secret=SECRET, patience=2.0, stop=None):
    return OdooReporter(
        ReporterConfig(odoo.url, secret, timeout=2, patience=patience, backoff_initial=0.05, backoff_max=0.2),
        stop=stop,
    )


def rid():
    return job_message()["generation_request_id"]


def test_a_callback_is_authenticated_and_answered(odoo):
    rep = reporter_for(odoo)
    answer = rep.post(progress(rid()))
    assert answer["status"] == "running" and answer["duplicate"] is False
    assert odoo.invalid == []


def test_the_same_event_twice_is_a_harmless_duplicate(odoo):
    rep, request_id = reporter_for(odoo), rid()
    callback = failure(request_id)
    assert rep.post(callback)["duplicate"] is False
    assert rep.post(callback)["duplicate"] is True
    assert odoo.state(request_id).status == "failed"


def test_a_wrong_secret_is_retried_then_reported_unavailable(odoo):
    rep = reporter_for(odoo, secret="wrong", patience=0.3)
    with pytest.raises(OdooUnavailable, match="401"):
        rep.post(progress(rid()))
    assert odoo.calls == []


def test_a_body_odoo_refuses_is_rejected_at_once(odoo):
    rep = reporter_for(odoo, patience=5)
    bad = Callback(FAILURE, {"generation_request_id": rid(), "event_id": "e" * 10})
    started = time.monotonic()
    with pytest.raises(CallbackRejected) as caught:
        rep.post(bad)
    assert caught.value.status == 400 and time.monotonic() - started < 2


def test_a_result_goes_as_utf8_not_as_escapes(odoo):
    # Odoo bounds a callback by twice the result it keeps: \uXXXX escapes made a Cyrillic result of
    # 100 KB a body of 300 KB, refused (413) though its result was within the limit
    odoo.max_body_bytes = 150_000
    request_id = rid()
    body = {
        "generation_request_id": request_id,
        "event_id": new_event_id("result"),
        "output": "ж" * 50_000 + " 🙂",
        "usage": {},
        "backend": "external",
        "attempt": 1,
        "occurred_at": now_iso(),
    }
    answer = reporter_for(odoo).post(Callback(RESULT, body))
    assert answer["status"] == "succeeded"
    assert odoo.state(request_id).output == "ж" * 50_000 + " 🙂"


def test_a_body_too_large_for_odoo_is_rejected_at_once(odoo):
    odoo.max_body_bytes = 1024
    started = time.monotonic()
    with pytest.raises(CallbackRejected) as caught:
        reporter_for(odoo, patience=5).post(Callback(FAILURE, {**failure(rid()).body, "detail": "d" * 2000}))
    assert caught.value.status == 413 and time.monotonic() - started < 2


def test_an_unknown_request_is_rejected(odoo):
    odoo.known_only = True
    with pytest.raises(CallbackRejected) as caught:
        reporter_for(odoo).post(progress(rid()))
    assert caught.value.status == 404


def test_odoo_down_then_back_within_the_patience_gets_the_callback(odoo):
    rep, request_id = reporter_for(odoo, patience=10), rid()
    odoo.down()
    threading.Timer(0.5, odoo.up).start()
    answer = rep.post(failure(request_id))
    assert answer["duplicate"] is False and odoo.state(request_id).status == "failed"


def test_odoo_failing_with_503_is_retried(odoo):
    rep = reporter_for(odoo, patience=10)
    odoo.fail_with = 503
    threading.Timer(0.4, lambda: setattr(odoo, "fail_with", None)).start()
    assert rep.post(progress(rid()))["status"] == "running"


def test_odoo_down_past_the_patience_raises_unavailable(odoo):
    rep = reporter_for(odoo, patience=0.5)
    odoo.down()
    with pytest.raises(OdooUnavailable):
        rep.post(failure(rid()))


def test_a_stopping_worker_gives_up_waiting_at_once(odoo):
    stop = threading.Event()
    rep = reporter_for(odoo, patience=60, stop=stop)
    odoo.down()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(OdooUnavailable):
        rep.post(failure(rid()))
    assert time.monotonic() - started < 5


def test_keep_alive_reuses_one_connection(odoo):
    rep = reporter_for(odoo)
    for _ in range(5):
        rep.post(progress(rid()))
    assert odoo.connections_accepted == 1


def test_is_terminal_reads_status_and_conflicts():
    assert is_terminal({"status": "failed", "duplicate": True})
    assert is_terminal({"terminal": True, "duplicate": True})
    assert not is_terminal({"status": "running", "duplicate": False})
    assert not is_terminal(None)


def notify(request_id):
    body = {
        "generation_request_id": request_id,
        "event_id": new_event_id("notify"),
        "user_message": "AI processing failed. Please try again or adjust your parameters.",
        "retry_suggestion": "Try again.",
    }
    return Callback(NOTIFY, body)


def test_a_late_failure_for_a_cancelled_request_does_not_tell_the_user_it_failed(odoo):
    request_id = rid()
    odoo.register(request_id, status="cancelled")
    answers = reporter_for(odoo).deliver([failure(request_id), notify(request_id)])
    assert answers[0]["duplicate"] is True and answers[1] is None
    assert odoo.state(request_id).notifications == []


def test_a_replayed_outcome_still_delivers_its_notify(odoo):
    rep, request_id = reporter_for(odoo), rid()
    first = failure(request_id)
    rep.post(first)  # delivered before Odoo went away; the notify was not
    answers = rep.deliver([first, notify(request_id)])
    assert answers[0]["duplicate"] is True and answers[1]["duplicate"] is False
    assert len(odoo.state(request_id).notifications) == 1


class _Answering(BaseHTTPRequestHandler):
    """A loopback server: ``answer(handler)`` gives (status, headers, body); request lines are kept."""

    answer = staticmethod(lambda _handler: (200, {}, b"{}"))
    seen: list

    def log_message(self, *args):
        pass

    def _reply(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append(f"{self.command} {self.path}")
        status, headers, body = self.answer(self)
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply


@contextlib.contextmanager
def answering(answer):
    handler = type("Handler", (_Answering,), {"answer": staticmethod(answer), "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_is_not_taken_for_an_answer_the_outcome_waits_instead():
    # Odoo sends a browser to /web/login; followed, that page's 200 would pass for a delivered callback
    def login_redirect(handler):
        if handler.command == "POST":
            return 302, {"Location": "/web/login"}, b""
        return 200, {"Content-Type": "text/html"}, b"<html>login</html>"

    with answering(login_redirect) as (url, seen):
        rep = OdooReporter(ReporterConfig(url, SECRET, timeout=2, patience=0.3, backoff_initial=0.05))
        with pytest.raises(OdooUnavailable, match="302"):
            rep.post(progress(rid()))
    assert seen and all(line.startswith("POST /ai/generation/progress") for line in seen)


def test_the_environment_proxy_is_used_unless_no_proxy_names_odoo(monkeypatch):
    answer = json.dumps({"status": "running", "duplicate": False}).encode()
    with answering(lambda _h: (200, {"Content-Type": "application/json"}, answer)) as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        odoo_url = "http://odoo.invalid:8069"  # only the proxy can reach it
        assert OdooReporter(ReporterConfig(odoo_url, SECRET)).post(progress(rid()))["status"] == "running"
        assert seen == [f"POST {odoo_url}{PROGRESS}"]  # a proxy gets the absolute URL

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = OdooReporter(ReporterConfig(proxy, SECRET))  # the same server, now as "Odoo" itself
        assert direct.post(progress(rid()))["status"] == "running"
        assert seen[-1] == f"POST {PROGRESS}"


def test_a_callback_settled_at_once_leaves_nothing_for_the_garbage_collector(odoo):
    # a retry loop built per callback is a reference cycle: every job left ~50 objects to the collector
    rep = reporter_for(odoo)
    rep.post(progress(rid()))  # the thread's connection is made
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds stays in gc.garbage to be looked at
    try:
        for _ in range(5):
            rep.post(progress(rid()))
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.split(".")[0] in ("tenacity", "worker")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == []  # (other threads of the test process may leave garbage of their own)


def test_retries_after_a_first_failure_are_numbered_from_it(odoo, caplog):
    rep = reporter_for(odoo, patience=10)
    odoo.fail_with = 503
    threading.Timer(0.3, lambda: setattr(odoo, "fail_with", None)).start()
    with caplog.at_level(logging.WARNING, logger="worker.reporting"):
        assert rep.post(progress(rid()))["status"] == "running"
    attempts = [r.attempt for r in caplog.records if r.message == "odoo callback failed; retrying"]
    assert attempts and attempts == list(range(1, len(attempts) + 1))  # the first try is attempt 1
