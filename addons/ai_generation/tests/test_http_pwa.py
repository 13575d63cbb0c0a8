# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""What a PWA needs over HTTP: the catalogue, JSON for every /api/v1/* path, CORS for listed origins
with API keys, and the reference app's own files on Odoo's origin."""

import json

from odoo.addons.bus.websocket import WebsocketConnectionHandler
from odoo.exceptions import ValidationError
from odoo.tests import tagged

from ..models.ir_http import is_own_redirect
from .common import IMAGE_MODEL, IMAGE_PRICE, TEXT_MODEL, TEXT_PRICE
from .http_common import AiGenerationHttpCase
from .test_http_api import BODY

ALLOWED = "https://app.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
}


@tagged("at_install", "-post_install", "ai_generation")
class TestCatalogueAndFallback(AiGenerationHttpCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 4)

    def test_models_lists_what_is_offered_its_price_and_the_callers_credits(self):
        self.env["ai.generation.price"].search([("model_name", "=", IMAGE_MODEL)]).task = "image"
        self.env["ai.generation.price"].create(
            {"backend": "external", "model_name": "retired", "credits": 1, "active": False}
        )
        status, catalogue = self.call("GET", "/api/v1/models", token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertValid("api_models.json", catalogue)
        offered = {(m["backend"], m["model"], m["task"]): m for m in catalogue["models"]}
        self.assertEqual(
            set(offered),
            {
                ("external", TEXT_MODEL, "text"),
                ("external", TEXT_MODEL, "image"),
                ("internal", IMAGE_MODEL, "image"),
            },
        )
        self.assertEqual(offered["internal", IMAGE_MODEL, "image"]["price"], IMAGE_PRICE)
        self.assertEqual(offered["internal", IMAGE_MODEL, "image"]["price_per"], "image")
        self.assertEqual(
            (
                offered["external", TEXT_MODEL, "text"]["price"],
                offered["external", TEXT_MODEL, "text"]["affordable"],
            ),
            (TEXT_PRICE, True),
        )
        self.assertFalse(offered["internal", IMAGE_MODEL, "image"]["affordable"])  # 5 > 4
        self.assertEqual(catalogue["credits"], {"balance": 4, "held": 0, "available": 4})

    def test_a_model_offered_for_one_task_refuses_the_other(self):
        self.env["ai.generation.price"].search([("model_name", "=", TEXT_MODEL)]).task = "text"
        status, error = self.call(
            "POST", "/api/v1/generations", dict(BODY, task="image"), token=self.alice_key
        )
        self.assertEqual((status, error["error"]["code"]), (400, "validation_error"))
        self.assertIn("text requests only", error["error"]["fields"]["task"])
        self.assertEqual(self.call("POST", "/api/v1/generations", BODY, token=self.alice_key)[0], 202)

    def test_unknown_api_paths_answer_json(self):
        for path in ("/api/v1/nope", "/api/v1", "/api/v1/", "/api/v1/generations/a/b", "/api/v1/models/x"):
            with self.subTest(path=path):
                status, error = self.call("GET", path, token=self.alice_key)
                self.assertEqual((status, error["error"]["code"]), (404, "not_found"))
        # without credentials too: the path does not exist for anyone
        self.assertEqual(self.call("POST", "/api/v1/nope", {})[0], 404)

    def test_a_known_path_with_another_method_is_405_with_allow(self):
        status, error = self.call("DELETE", "/api/v1/generations", token=self.alice_key)
        self.assertEqual((status, error["error"]["code"]), (405, "method_not_allowed"))
        self.assertEqual(self.last_response.headers["Allow"], "GET, HEAD, POST")
        status, _error = self.call("POST", "/api/v1/credits", {}, token=self.alice_key)
        self.assertEqual((status, self.last_response.headers["Allow"]), (405, "GET, HEAD"))
        # what Allow says is so: HEAD is answered where GET is
        response = self.opener.head(
            self.base_url() + "/api/v1/credits", headers={"Authorization": f"Bearer {self.alice_key}"}
        )
        self.assertEqual((response.status_code, response.content), (200, b""))

    def test_a_doubled_slash_is_a_json_404_that_names_the_path_meant(self):
        # werkzeug answered 308 to the merged path, with an HTML body; a POST is not sent on by guess
        for method, path in (("POST", "/api/v1//generations"), ("GET", "/api/v1/credits//")):
            with self.subTest(method=method, path=path):
                status, error = self.call(
                    method, path, BODY if method == "POST" else None, token=self.alice_key
                )
                self.assertEqual((status, error["error"]["code"]), (404, "not_found"))
                self.assertIn(f"Did you mean {path.replace('//', '/')}?", error["error"]["message"])
        self.assertFalse(self.env["ai.generation.request"].search([("user_id", "=", self.alice.id)]))

    def test_a_redirect_is_ours_by_where_it_leads_too(self):
        # http_routing (portal, website) matches /fr/... again without the language: werkzeug's
        # redirect then leads to the addon's path while the path asked for does not look like it
        base = "http://127.0.0.1:8069"
        self.assertTrue(is_own_redirect("/fr/ai/generation//progress", f"{base}/ai/generation/progress"))
        self.assertTrue(is_own_redirect("/fr/api/v1//generations", f"{base}/api/v1/generations"))
        self.assertTrue(is_own_redirect("/notify//generation-error", f"{base}/notify/generation-error"))
        self.assertFalse(is_own_redirect("/web//login", f"{base}/web/login"))
        self.assertFalse(is_own_redirect("/notify//other", f"{base}/notify/other"))


@tagged("at_install", "-post_install", "ai_generation")
class TestCors(AiGenerationHttpCase):
    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param(
            "ai_generation.cors_origins", f"{ALLOWED}\nbad-entry"
        )
        self.grant(self.alice, 10)

    def options(self, path, origin, headers=None):
        headers = PREFLIGHT if headers is None else headers
        return self.opener.request(
            "OPTIONS", self.base_url() + path, headers={"Origin": origin, **headers}, timeout=30
        )

    def test_a_listed_origins_preflight_is_answered_without_credentials(self):
        for path in ("/api/v1/generations", "/api/v1/models", "/api/v1/credits", "/api/v1/generations/x"):
            with self.subTest(path=path):
                response = self.options(path, ALLOWED)
                self.assertEqual(response.status_code, 204, response.text[:300])
                self.assertEqual(response.headers["Access-Control-Allow-Origin"], ALLOWED)
                allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
                for name in ("authorization", "content-type", "idempotency-key"):
                    self.assertIn(name, allowed_headers)
                self.assertIn("POST", response.headers["Access-Control-Allow-Methods"])
                self.assertNotIn("Access-Control-Allow-Credentials", response.headers)
                # a 204 has no body: no type claimed for it (it said text/html); no session either
                self.assertNotIn("Content-Type", response.headers)
                self.assertNotIn("Set-Cookie", response.headers)

    def test_another_origins_preflight_is_refused(self):
        response = self.options("/api/v1/generations", "https://evil.example.com")
        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json()["error"]["code"], "origin_not_allowed")
        self.assertNotIn("Access-Control-Allow-Origin", response.headers)
        self.assertNotIn("Set-Cookie", response.headers)

    def test_answers_carry_cors_headers_for_listed_origins_only(self):
        status, accepted = self.call(
            "POST", "/api/v1/generations", BODY, token=self.alice_key, headers={"Origin": ALLOWED}
        )
        self.assertEqual(status, 202)
        headers = self.last_response.headers
        self.assertEqual((headers["Access-Control-Allow-Origin"], headers["Vary"]), (ALLOWED, "Origin"))
        self.assertIn("Location", headers["Access-Control-Expose-Headers"])
        self.call(
            "GET", accepted["status_url"], token=self.alice_key, headers={"Origin": "https://evil.example"}
        )
        self.assertNotIn("Access-Control-Allow-Origin", self.last_response.headers)
        # a refused key, a JSON 404: still readable by the listed origin's page
        self.assertEqual(
            self.call("GET", "/api/v1/credits", token="bad", headers={"Origin": ALLOWED})[0], 401
        )
        self.assertEqual(self.last_response.headers["Access-Control-Allow-Origin"], ALLOWED)
        self.assertEqual(self.call("GET", "/api/v1/nope", headers={"Origin": ALLOWED})[0], 404)
        self.assertEqual(self.last_response.headers["Access-Control-Allow-Origin"], ALLOWED)

    def test_settings_refuse_what_is_not_an_origin_and_the_api_compares_normalized(self):
        admin = self.env.ref("base.user_admin")
        Settings = self.env["res.config.settings"].with_user(admin)
        with self.assertRaises(ValidationError):
            Settings.create({"ai_cors_origins": "https://ok.example.com https://bad.example.com/path"})
        with self.assertRaises(ValidationError):
            Settings.create({"ai_cors_origins": "*"})
        Settings.create({"ai_cors_origins": "HTTPS://App.Example.com:443, http://localhost:5173"}).execute()
        # compared the way browsers send an origin: lower case, no default port
        self.call(
            "GET", "/api/v1/credits", token=self.alice_key, headers={"Origin": "https://app.example.com"}
        )
        self.assertEqual(self.last_response.headers["Access-Control-Allow-Origin"], "https://app.example.com")
        self.call("GET", "/api/v1/credits", token=self.alice_key, headers={"Origin": "http://localhost:5173"})
        self.assertEqual(self.last_response.headers["Access-Control-Allow-Origin"], "http://localhost:5173")


@tagged("at_install", "-post_install", "ai_generation")
class TestAppFiles(AiGenerationHttpCase):
    def test_the_app_shell_and_its_manifest(self):
        page = self.url_open("/ai_generation/app")
        self.assertEqual(page.status_code, 200)
        self.assertTrue(page.headers["Content-Type"].startswith("text/html"))
        self.assertIn('rel="manifest" href="/ai_generation/app/manifest.webmanifest"', page.text)
        self.assertIn("script-src 'self'", page.headers["Content-Security-Policy"])
        manifest = self.url_open("/ai_generation/app/manifest.webmanifest").json()
        self.assertEqual(
            (manifest["start_url"], manifest["scope"]), ("/ai_generation/app", "/ai_generation/app")
        )
        for icon in manifest["icons"]:
            self.assertEqual(self.url_open(icon["src"]).headers["Content-Type"], icon["type"])
        for name in ("app.js", "app.css", "client.js"):
            self.assertEqual(self.url_open(f"/ai_generation/app/{name}").status_code, 200, name)
        self.assertEqual(self.url_open("/ai_generation/app/secret.py").status_code, 404)

    def test_query_fields_are_no_arguments_of_the_app_routes(self):
        # Odoo passes them to the route as keywords: ?self=1 was a TypeError, an HTML 500
        for path in ("/ai_generation/app", "/ai_generation/app/app.js", "/ai_generation/app/config.json"):
            with self.subTest(path=path):
                self.assertEqual(self.url_open(f"{path}?self=1&name=secret.py").status_code, 200)
        self.assertEqual(
            self.url_open("/ai_generation/app/app.js?name=secret.py").text[:20],
            (self.url_open("/ai_generation/app/app.js").text[:20]),
        )

    def test_the_service_worker_controls_the_app_and_names_its_cache_after_the_shell(self):
        worker = self.url_open("/ai_generation/app/sw.js")
        self.assertEqual(worker.headers["Service-Worker-Allowed"], "/ai_generation/app")
        self.assertNotIn("__SHELL_VERSION__", worker.text)
        config = self.url_open("/ai_generation/app/config.json").json()
        self.assertIn(f'const VERSION = "{config["shell_version"]}"', worker.text)

    def test_config_names_the_database_and_the_bus_version_so_nobody_types_them(self):
        config = self.url_open("/ai_generation/app/config.json").json()
        self.assertEqual(config["db"], self.env.cr.dbname)
        self.assertEqual(config["websocket_version"], WebsocketConnectionHandler._VERSION)
        self.assertIsNone(config["user"])
        self.authenticate("ai_alice", "ai_alice")
        config = json.loads(self.url_open("/ai_generation/app/config.json").text)
        self.assertEqual(config["user"], {"name": "Alice", "login": "ai_alice"})
