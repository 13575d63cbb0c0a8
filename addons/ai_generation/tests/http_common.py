# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import contextlib
import http.client
import json
import logging
from urllib.parse import urlsplit

from odoo.tests import HttpCase

from .common import AiGenerationMixin


@contextlib.contextmanager
def captured_logs():
    """Every record Odoo's loggers emit at INFO or above meanwhile (the server's threads included)."""
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    odoo_logger = logging.getLogger("odoo")
    level = odoo_logger.level
    odoo_logger.setLevel(logging.INFO)  # the test config logs warnings only: INFO must reach us too
    odoo_logger.addHandler(handler)
    try:
        yield records
    finally:
        odoo_logger.removeHandler(handler)
        odoo_logger.setLevel(level)


class AiGenerationHttpCase(AiGenerationMixin, HttpCase):
    """HTTP tests: real requests to the test server, answers checked against the repo's schemas."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_ai_generation()
        cls.secret = "test-worker-secret-0123456789"
        Keys = cls.env["res.users.apikeys"]
        cls.alice_key = Keys.with_user(cls.alice).sudo()._generate(None, "pwa", None)
        cls.bob_key = Keys.with_user(cls.bob).sudo()._generate(None, "pwa", None)

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        """(status, decoded JSON) of a real HTTP call; every JSON error is checked against the schema."""
        all_headers = {"Content-Type": "application/json"}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self.opener.request(
            method, self.base_url() + path, data=data, headers=all_headers, timeout=30
        )
        self.assertTrue(
            response.headers.get("Content-Type", "").startswith("application/json"), response.text[:300]
        )
        decoded = response.json()
        if response.status_code >= 400:
            self.assertValid("error_response.json", decoded)
        self.last_response = response
        return response.status_code, decoded

    def post_chunked(self, path, data, token, chunk=64 * 1024):
        """(status, decoded JSON) of a POST whose body has no Content-Length (chunked transfer)."""
        url = urlsplit(self.base_url())
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            connection.putrequest("POST", path)
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Authorization", f"Bearer {token}")
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            # sent whole: a server that answers before reading it all must still let it be sent
            for start in range(0, len(data), chunk):
                piece = data[start : start + chunk]
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.send(b"0\r\n\r\n")
            response = connection.getresponse()
            decoded = json.loads(response.read())
            if response.status >= 400:
                self.assertValid("error_response.json", decoded)
            return response.status, decoded
        finally:
            connection.close()
