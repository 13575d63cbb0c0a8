"""worker.keepalive: a kept-alive connection per thread, replaced when the server closed it; TLS."""

import contextlib
import json
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.worker.helpers import SECRET, job_message
from worker.keepalive import KeepAlivePoster

PROGRESS = "/ai/generation/progress"


def progress_body() -> bytes:
    body = {
        "generation_request_id": job_message()["generation_request_id"],
        "event_id": "progress-1",
        "state": "running",
        "attempt": 1,
        "occurred_at": "2026-01-01T00:00:00.000Z",
    }
    return json.dumps(body).encode()


def poster_for(url: str, **kwargs) -> KeepAlivePoster:
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    return KeepAlivePoster(url, headers, timeout=5, **kwargs)


def test_a_thread_keeps_its_connection_and_threads_do_not_share_one(odoo):
    poster = poster_for(odoo.url)
    answers = []

    def three_posts():
        answers.extend(poster.post(PROGRESS, progress_body()).status for _ in range(3))

    threads = [threading.Thread(target=three_posts) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 12
    assert odoo.connections_accepted == 4


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(odoo):
    poster = poster_for(odoo.url)
    assert poster.post(PROGRESS, progress_body()).status == 200
    odoo.down()  # cuts the kept-alive connection
    odoo.up()
    assert poster.post(PROGRESS, progress_body()).status == 200
    assert odoo.connections_accepted == 2


def test_no_server_is_an_error_at_once(odoo):
    poster = poster_for(odoo.url)
    odoo.down()
    with pytest.raises(ConnectionRefusedError):
        poster.post(PROGRESS, progress_body())


def test_close_ends_every_threads_connection(odoo):
    poster = poster_for(odoo.url)
    other = threading.Thread(target=lambda: poster.post(PROGRESS, progress_body()))
    other.start()
    other.join()
    poster.post(PROGRESS, progress_body())
    poster.close()
    assert poster.post(PROGRESS, progress_body()).status == 200  # a new connection
    assert odoo.connections_accepted == 3


def test_a_path_in_the_base_url_prefixes_every_post(odoo):
    seen = []
    answer = odoo.handle
    odoo.handle = lambda path, *rest: (seen.append(path), answer(PROGRESS, *rest))[1]
    assert poster_for(odoo.url + "/odoo/").post(PROGRESS, progress_body()).status == 200
    assert seen == ["/odoo" + PROGRESS]


def test_only_an_http_proxy_is_taken():
    with pytest.raises(ValueError, match="http:// proxy"):
        poster_for("http://127.0.0.1:1", proxy="socks5://127.0.0.1:1080")


# -- TLS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    self_signed = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        ["openssl", *self_signed, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    return cert, key


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def https_server(certificate):
    cert, key = certificate
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_https_with_a_trusted_certificate(certificate):
    with https_server(certificate) as url:
        poster = poster_for(url, ssl_context=ssl.create_default_context(cafile=str(certificate[0])))
        assert [poster.post(PROGRESS, b"{}").status for _ in range(2)] == [200, 200]


def test_https_with_an_unknown_certificate_is_refused(certificate):
    with https_server(certificate) as url, pytest.raises(ssl.SSLCertVerificationError):
        poster_for(url).post(PROGRESS, b"{}")


def test_https_goes_through_a_connect_tunnel_when_a_proxy_is_set(certificate):
    with https_server(certificate) as target, tunnel_proxy() as (proxy, seen):
        context = ssl.create_default_context(cafile=str(certificate[0]))
        poster = poster_for(target, proxy=proxy, ssl_context=context)
        assert poster.post(PROGRESS, b"{}").status == 200
    assert seen == [f"CONNECT {target.removeprefix('https://')} HTTP/1.0"]


@contextlib.contextmanager
def tunnel_proxy():
    """A CONNECT-only proxy: opens the tunnel, then copies bytes both ways."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = []

    def pipe(source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve():
        client, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        request_line = head.split(b"\r\n", 1)[0].decode()
        seen.append(request_line)
        host, port = request_line.split()[1].rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        listener.close()
