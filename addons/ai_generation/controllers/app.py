# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The reference PWA, served on Odoo's own origin at /ai_generation/app (static/src/app/).

Same origin as the API and the bus: the Odoo session cookie signs every call and the websocket, so
no CORS and no API key are involved. The service worker's scope is the app's path; its cache name
carries a digest of the shell files, so a changed file installs a new worker and a fresh cache.
"""

import hashlib
import json
from functools import cache
from pathlib import Path

from odoo import http
from odoo.http import Response, request

from ..models.ir_http import APP_PREFIX
from ..models.json_http import json_response

try:  # the bus's protocol version: the websocket drops clients that announce another one
    from odoo.addons.bus.websocket import WebsocketConnectionHandler

    WEBSOCKET_VERSION = WebsocketConnectionHandler._VERSION
except ImportError:  # pragma: no cover (bus is a dependency of the addon)
    WEBSOCKET_VERSION = "18.0-3"

STATIC = Path(__file__).resolve().parent.parent / "static" / "src"
APP_PATH = APP_PREFIX
# URL name -> (file under static/src, content type)
FILES = {
    "app.js": ("app/app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app/app.css", "text/css; charset=utf-8"),
    "client.js": ("client/ai_generation_client.js", "text/javascript; charset=utf-8"),
    "manifest.webmanifest": ("app/manifest.webmanifest", "application/manifest+json; charset=utf-8"),
    "icon.png": ("../description/icon.png", "image/png"),
}
INDEX = ("app/index.html", "text/html; charset=utf-8")
WORKER = ("app/sw.js", "text/javascript; charset=utf-8")


@cache
def _read(relative):
    return (STATIC / relative).read_bytes()


@cache
def shell_version():
    """A digest of every file the service worker caches: a new one whenever one of them changes."""
    digest = hashlib.sha256()
    for relative, _type in [INDEX, WORKER, *FILES.values()]:
        digest.update(_read(relative))
    return digest.hexdigest()[:16]


def _file_response(relative, content_type, body=None):
    response = Response(body if body is not None else _read(relative), content_type=content_type)
    # always revalidated: the service worker, not the HTTP cache, keeps the app available offline
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


class PwaApp(http.Controller):
    @http.route([APP_PATH, f"{APP_PATH}/"], type="http", auth="none", methods=["GET"], save_session=False)
    def index(self, **_kwargs):
        response = _file_response(*INDEX)
        response.headers["Content-Security-Policy"] = (
            # 'self' covers the bus's websocket on this origin (CSP 3): no socket to any other host
            "default-src 'self'; img-src 'self' data: https:; connect-src 'self'; "
            "style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        )
        return response

    @http.route(f"{APP_PATH}/sw.js", type="http", auth="none", methods=["GET"], save_session=False)
    def service_worker(self, **_kwargs):
        body = _read(WORKER[0]).replace(b"__SHELL_VERSION__", shell_version().encode())
        response = _file_response(WORKER[0], WORKER[1], body)
        # lets the worker control the app's own URL (/ai_generation/app, without the trailing slash)
        response.headers["Service-Worker-Allowed"] = APP_PATH
        return response

    @http.route(f"{APP_PATH}/<string:name>", type="http", auth="none", methods=["GET"], save_session=False)
    def shell_file(self, name, **_kwargs):
        if name not in FILES:
            return request.not_found()
        return _file_response(*FILES[name])

    @http.route(f"{APP_PATH}/config.json", type="http", auth="public", methods=["GET"], save_session=False)
    def config(self, **_kwargs):
        """What the app needs before signing in: the database (so nobody types it) and the bus version;
        and who is signed in, if anyone."""
        user = request.env.user
        signed_in = bool(request.session.uid) and not user._is_public()
        return json_response(
            {
                "db": request.db,
                "websocket_version": WEBSOCKET_VERSION,
                "shell_version": shell_version(),
                "user": {"name": user.name, "login": user.login} if signed_in else None,
            }
        )


def manifest_json():
    """The manifest as a dict (tests read it the way a browser does)."""
    return json.loads(_read(FILES["manifest.webmanifest"][0]))
