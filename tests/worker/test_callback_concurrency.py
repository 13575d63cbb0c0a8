"""A worker sends at most AIGEN_CALLBACK_CONCURRENCY callbacks to Odoo at once, whatever its job threads."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from worker.reporting import Callback, OdooReporter, ReporterConfig


class _CountingOdoo(BaseHTTPRequestHandler):
    lock = threading.Lock()
    current = 0
    highest = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).current += 1
            type(self).highest = max(type(self).highest, type(self).current)
        time.sleep(0.05)  # Odoo at work: overlapping callbacks would pile up here
        with self.lock:
            type(self).current -= 1
        body = b'{"status": "running", "duplicate": false}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


def test_callbacks_wait_for_a_slot_instead_of_flooding_odoo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingOdoo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reporter = OdooReporter(
            ReporterConfig(f"http://127.0.0.1:{server.server_port}", "s" * 32, concurrency=4)
        )
        callback = Callback("/ai/generation/progress", {"generation_request_id": "x", "event_id": "e"})
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda _i: reporter.post(callback), range(64)))
        reporter.close()
    finally:
        server.shutdown()
    assert all(answer["status"] == "running" for answer in answers)
    assert _CountingOdoo.highest == 4
