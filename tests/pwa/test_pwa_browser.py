"""The reference PWA in a real Chromium against the real stack, as a portal customer uses it.

Real: Odoo 18.0 with the addon, nginx as the gateway (the app and the API on one origin), RabbitMQ, the
worker process; Debian's Chromium driven by Playwright. Fake: only the AI provider (loopback).

A portal user signs in on a phone-sized screen, sees credits and prices, asks for a generation that
succeeds, one that meets a provider 503 on every attempt (then Retry) and one the provider rejects as
invalid (a free warning, then a charge). Every outcome must appear without a reload, in a second tab
too; the bus must bring one message per change. From another origin, the client works with an API key
(CORS) and polls; the websocket brings it nothing. Last, the app shell loads with the server stopped.
The time from the provider's answer to the message on screen is printed (name=value).
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import aigen_contracts
from devstack import gateway
from devstack.odoo import OdooHome
from devstack.ports import free_port
from tests.e2e import stack as e2e
from tests.pwa.figures import FIGURES
from tests.support import fake_openai as fo
from tests.support.browser import browser_page, chromium, require_browser, screenshot
from tests.support.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CLIENT_JS = REPO / "addons" / "ai_generation" / "static" / "src" / "client" / "ai_generation_client.js"
TAXONOMY = aigen_contracts.load("error_taxonomy.json")
SYSTEM_MESSAGE = TAXONOMY["messages"]["system"]
USER_MESSAGE = TAXONOMY["messages"]["user"]
PORTAL_LOGIN, PORTAL_PASSWORD = "pwa-customer", "pwa-customer-pass-1"
PHONE = {"width": 390, "height": 844}
START_CREDITS = 100
PORTAL_SETUP = """
portal = env["res.users"].sudo().create({{
    "name": "PWA Customer", "login": {login!r}, "password": {password!r},
    "groups_id": [(6, 0, [env.ref("base.group_portal").id])],
}})
env["ai.credit.account"].sudo()._open_for_user(portal)._grant({credits}, "pwa: starting credits")
key = env["res.users.apikeys"].with_user(portal).sudo()._generate(None, "pwa-e2e", None)
env["ir.config_parameter"].sudo().set_param("ai_generation.cors_origins", {origin!r})
env.cr.commit()
print("PWA-SETUP-DONE", key)
"""
# Test-side instruments, installed before the app's own scripts: every bus notification the page's
# websockets receive, and when each request first shows a final status on screen (epoch ms).
INSTRUMENTS = """
(() => {
    window.__bus = [];
    window.__shown = {};
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            this.addEventListener("message", (event) => {
                try { window.__bus.push(...JSON.parse(event.data)); } catch {}
            });
        }
    };
    const record = () => {
        for (const node of document.querySelectorAll("[data-request-id][data-status]")) {
            const key = `${node.dataset.requestId}:${node.dataset.status}`;
            const message = node.querySelector(".message");
            if (!(key in window.__shown) && message && message.textContent) {
                window.__shown[key] = performance.timeOrigin + performance.now();
            }
        }
    };
    new MutationObserver(record).observe(document, {subtree: true, childList: true, attributes: true,
                                                    characterData: true});
})();
"""


def _skip_reason() -> str | None:
    if (why := OdooHome.from_env().problem()) is not None:
        return f"needs a real Odoo 18.0: {why}"
    if gateway.nginx_binary() is None:
        return "needs nginx (apt-get install nginx-light)"
    return None


class ForeignSite:
    """Another web site (http://localhost:PORT, another site than 127.0.0.1) serving a page that uses
    the client from its own copy, as an app hosted elsewhere does."""

    def __init__(self, port: int):
        client = CLIENT_JS.read_bytes()
        page = b"<!DOCTYPE html><title>elsewhere</title><h1>Another origin</h1>"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body, kind = (
                    (client, "text/javascript") if self.path.startswith("/client.js") else (page, "text/html")
                )
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://localhost:{port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stack():
    if (reason := _skip_reason()) is not None:
        pytest.skip(reason)
    require_browser()
    from tests.support.rabbit import throwaway_vhost

    tmp = e2e.new_tmp()
    foreign_port = free_port()
    with throwaway_vhost("aigen-pwa") as vhost, fo.FakeOpenAI() as fake:
        s = e2e.Stack(OdooHome.from_env(), vhost.url, fake, tmp, log=print)
        try:
            started = time.monotonic()
            s.prepare_odoo()
            out = s.shell(
                PORTAL_SETUP.format(
                    login=PORTAL_LOGIN,
                    password=PORTAL_PASSWORD,
                    credits=START_CREDITS,
                    origin=f"http://localhost:{foreign_port}",
                ),
                "PWA-SETUP-DONE",
            )
            s.api_key = out.split("PWA-SETUP-DONE", 1)[1].split()[0]
            s.foreign = ForeignSite(foreign_port)
            s.start_odoo()
            s.start_gateway()
            s.start_worker()
            FIGURES["pwa_stack_start_s"] = time.monotonic() - started
            yield s
        except Exception:
            for name in ("odoo", "worker"):
                print(f"----- {name} log (tail) -----\n{s.tail(name)}")
            raise
        finally:
            if getattr(s, "foreign", None):
                s.foreign.stop()
            s.stop()


@pytest.fixture(scope="module")
def browser(stack):
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def app(stack, browser):
    """The customer's phone: one browser context (cookies, service worker) for the whole module."""
    with browser_page(browser, stack.url, viewport=PHONE, has_touch=True, is_mobile=True) as page:
        page.context.add_init_script(INSTRUMENTS)
        yield page


@pytest.fixture(scope="module")
def second_tab(app):
    tab = app.context.new_page()
    yield tab
    tab.close()


# ------------------------------------------------------------------------------------------- helpers
def item(page, request_id):
    return page.locator(f'#history [data-request-id="{request_id}"]')


def submit(page, prompt: str, model_label: str = "e2e-model · text · 7 credits per request") -> str:
    """Ask for a generation through the form; the new request's id (the top of the history)."""
    before = page.locator("#history > li").count()
    page.get_by_label("Model").select_option(label=model_label)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#history > li")).to_have_count(before + 1)
    return page.locator("#history > li").first.get_attribute("data-request-id")


def wait_status(page, request_id: str, status: str, timeout: float = 60):
    page.wait_for_selector(
        f'#history [data-request-id="{request_id}"][data-status="{status}"]', timeout=timeout * 1000
    )
    return item(page, request_id)


def shown_at(page, request_id: str, status: str) -> float:
    """Epoch seconds when the page first showed ``status`` (with its message) for the request."""
    return page.evaluate(f"window.__shown['{request_id}:{status}']") / 1000


def bus_updates(page, request_id: str) -> list[dict]:
    return [
        n["message"]["payload"]
        for n in page.evaluate("window.__bus")
        if n.get("message", {}).get("type") == "ai_generation/update"
        and n["message"]["payload"]["request_id"] == request_id
    ]


def provider_answered_at(stack, marker: str) -> float:
    """When the provider answered the last call for ``marker`` (the fake answers at once)."""
    return max(r.received_at for r in stack.fake.requests if marker in r.prompt)


def expect(locator):
    """Playwright's auto-waiting assertion (imported late: without Playwright the module still loads and
    its tests skip with the reason); CSP-safe, unlike wait_for_function, which the app's CSP refuses."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    return playwright_expect(locator)


def credits_shown(page) -> int:
    return int(page.locator("#credits-available").inner_text())


def not_reloaded(page) -> None:
    assert page.evaluate("window.__stayed") is True, "the page was reloaded"


# ------------------------------------------------------------------------------------------- tests
def test_a_portal_customer_signs_in_with_the_keyboard_and_sees_credits_and_prices(stack, app, second_tab):
    app.goto("/ai_generation/app")
    login = app.get_by_label("Email or login")
    login.wait_for()
    assert app.locator("#db-field").is_hidden(), "the server serves one database: nobody types it"
    assert app.evaluate("document.activeElement.id") == "login", "focus starts in the first field"
    screenshot(app, "sign_in_phone")
    app.keyboard.type(PORTAL_LOGIN)
    app.keyboard.press("Tab")
    app.keyboard.type(PORTAL_PASSWORD)
    app.keyboard.press("Enter")
    app.wait_for_selector("body[data-ready=true]")
    assert credits_shown(app) == START_CREDITS
    labels = app.get_by_label("Model").locator("option").all_inner_texts()
    assert "e2e-model · text · 7 credits per request" in labels, labels
    assert "7 credits per request" in app.locator("#model-price").inner_text()
    assert app.evaluate("document.activeElement.id") == "prompt", "focus moves on to the prompt"
    # fits a phone: nothing wider than the screen
    assert app.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    app.wait_for_selector("body[data-bus=open]")
    app.evaluate("window.__stayed = true")
    second_tab.goto("/ai_generation/app")  # same session: signed in already
    second_tab.wait_for_selector("body[data-ready=true]")
    second_tab.wait_for_selector("body[data-bus=open]")
    screenshot(app, "signed_in_phone")
    assert not app.errors, app.errors


def test_a_success_appears_live_in_both_tabs_with_its_result(stack, app, second_tab):
    marker = "[pwa-ok]"
    stack.fake.on(marker, fo.text("a poem about fair credits"))
    rid = submit(app, f"write a poem {marker}")
    row = wait_status(app, rid, "succeeded")
    answered = provider_answered_at(stack, marker)
    FIGURES["pwa_success_provider_answer_to_screen_ms"] = (shown_at(app, rid, "succeeded") - answered) * 1000
    assert row.locator(".result").inner_text() == "a poem about fair credits"
    assert row.locator(".message").inner_text() == "Your generation is ready."
    assert "Credits charged: 7." in row.locator(".charge").inner_text()
    assert row.locator(".retry").is_hidden()
    expect(app.locator("#credits-available")).to_have_text(str(START_CREDITS - 7))
    other = wait_status(second_tab, rid, "succeeded")
    assert other.locator(".result").inner_text() == "a poem about fair credits"
    FIGURES["pwa_success_second_tab_ms"] = (shown_at(second_tab, rid, "succeeded") - answered) * 1000
    events = [u["event"] for u in bus_updates(app, rid)]
    assert events == ["accepted", "running", "succeeded"], events
    not_reloaded(app)
    screenshot(app, "succeeded")


def test_a_provider_503_shows_the_system_message_and_retry_succeeds(stack, app, second_tab):
    marker = "[pwa-503]"
    # the worker tries 3 times (AIGEN_MAX_ATTEMPTS): all meet the 503; the retried request succeeds
    stack.fake.on(marker, fo.unavailable(), fo.unavailable(), fo.unavailable(), fo.text("second time lucky"))
    before = credits_shown(app)
    rid = submit(app, f"draw a cat {marker}")
    row = wait_status(app, rid, "failed")
    FIGURES["pwa_503_provider_answer_to_screen_ms"] = (
        shown_at(app, rid, "failed") - provider_answered_at(stack, marker)
    ) * 1000
    assert row.locator(".message").inner_text() == SYSTEM_MESSAGE
    assert (
        row.locator(".advice").inner_text()
        == TAXONOMY["error_types"]["provider_unavailable"]["retry_suggestion"]
    )
    assert "You were not charged. Credits charged: 0." in row.locator(".charge").inner_text()
    retry = row.get_by_role("button", name="Retry")
    assert retry.is_visible()
    expect(app.locator("#credits-available")).to_have_text(str(before))
    # one message for the failure, though the worker sent the failure and the notify callbacks
    events = [u["event"] for u in bus_updates(app, rid)]
    assert events.count("failed") == 1 and events[-1] == "failed", events
    second = wait_status(second_tab, rid, "failed")
    assert second.get_by_role("button", name="Retry").is_visible()
    screenshot(app, "failed_system")
    retry.focus()
    app.keyboard.press("Enter")  # Retry by keyboard submits the same prompt again
    expect(app.locator("#history > li").first).not_to_have_attribute("data-request-id", rid)
    retried = app.locator("#history > li").first.get_attribute("data-request-id")
    assert retried != rid
    again = wait_status(app, retried, "succeeded")
    assert again.locator(".prompt").inner_text() == f"draw a cat {marker}"
    assert again.locator(".result").inner_text() == "second time lucky"
    assert len([r for r in stack.fake.requests if marker in r.prompt]) == 4
    expect(app.locator("#credits-available")).to_have_text(str(before - 7))
    not_reloaded(app)
    screenshot(app, "retried")


def test_invalid_input_shows_the_guidance_and_what_was_charged(stack, app, second_tab):
    marker = "[pwa-bad]"
    stack.fake.on(marker, fo.invalid_value("size"))
    guidance = TAXONOMY["error_types"]["invalid_input"]["specific_guidance"]
    before = credits_shown(app)
    free = submit(app, f"an impossible size {marker}")
    row = wait_status(app, free, "failed")
    FIGURES["pwa_invalid_provider_answer_to_screen_ms"] = (
        shown_at(app, free, "failed") - provider_answered_at(stack, marker)
    ) * 1000
    assert row.locator(".message").inner_text() == USER_MESSAGE
    assert row.locator(".advice").inner_text() == guidance
    assert "warning 1 of 1" in row.locator(".charge").inner_text()
    assert "Credits charged: 0." in row.locator(".charge").inner_text()
    assert row.locator(".retry").is_hidden(), "invalid input is not retried as it is"
    charged = submit(app, f"an impossible size again {marker}")
    row = wait_status(app, charged, "failed")
    assert row.locator(".advice").inner_text() == guidance
    assert (
        "7 credit(s) were charged for invalid input. Credits charged: 7."
        in row.locator(".charge").inner_text()
    )
    expect(app.locator("#credits-available")).to_have_text(str(before - 7))
    wait_status(second_tab, charged, "failed")
    assert "Credits charged: 7." in item(second_tab, charged).locator(".charge").inner_text()
    assert [u["event"] for u in bus_updates(app, charged)].count("failed") == 1
    not_reloaded(app)
    screenshot(app, "failed_invalid_input")
    assert not app.errors, app.errors


def test_without_the_websocket_watch_polls_the_status_url(stack, browser):
    marker = "[pwa-poll]"
    stack.fake.on(marker, fo.text("came by polling"))
    with browser_page(browser, stack.url, viewport=PHONE) as page:
        page.context.add_init_script(INSTRUMENTS)
        page.route_web_socket("**/websocket**", lambda ws: ws.close())  # the bus is unreachable
        page.goto("/ai_generation/app")
        page.get_by_label("Email or login").fill(PORTAL_LOGIN)
        page.get_by_label("Password").fill(PORTAL_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("body[data-ready=true]")
        rid = submit(page, f"no bus here {marker}")
        row = wait_status(page, rid, "succeeded")
        assert row.locator(".result").inner_text() == "came by polling"
        assert page.evaluate("document.body.dataset.bus") != "open"
        assert "checked every few seconds" in page.locator("#connection").inner_text()
        assert page.evaluate("window.__bus") == []
        screenshot(page, "polling_without_websocket")


def test_another_origin_uses_an_api_key_and_polls_the_websocket_brings_it_nothing(stack, browser):
    marker = "[pwa-foreign]"
    stack.fake.on(marker, fo.text("from elsewhere"))
    with browser_page(browser) as page:
        page.goto(stack.foreign.url + "/")
        outcome = page.evaluate(
            """async ([api, key, ws, marker]) => {
                const { AiGenerationClient } = await import("/client.js");
                const client = new AiGenerationClient({ baseUrl: api, apiKey: key, pollInterval: 300 });
                const bus = [];
                const socket = new WebSocket(ws);  // no session cookie reaches it from another site
                socket.onopen = () => socket.send(JSON.stringify(
                    { event_name: "subscribe", data: { channels: [], last: 0 } }));
                socket.onmessage = (event) => bus.push(...JSON.parse(event.data));
                const catalogue = await client.models();
                const accepted = await client.create({ backend: "external", model: "e2e-model",
                                                       prompt: `hello ${marker}` });
                const seen = [];
                const final = await client.watch(accepted.request_id, (u) => seen.push(u.status)).done;
                await new Promise((r) => setTimeout(r, 1500));  // time for a bus message, were one sent
                socket.close();
                let session = null;
                try { await new AiGenerationClient({ baseUrl: api }).credits(); }
                catch (error) { session = error.code; }
                return { models: catalogue.models.length, final, seen, bus, sources: final.source,
                         session, mode: client.bus.state };
            }""",
            [stack.url, stack.api_key, stack.url.replace("http", "ws") + "/websocket?version=18.0-3", marker],
        )
        assert outcome["models"] >= 1
        assert outcome["final"]["status"] == "succeeded"
        assert outcome["final"]["result"]["output"] == "from elsewhere"
        assert outcome["mode"] == "unavailable" and outcome["sources"] == "poll"
        updates = [n for n in outcome["bus"] if n.get("message", {}).get("type") == "ai_generation/update"]
        assert updates == [], "an anonymous websocket must not receive the user's updates"
        # the session cookie never travels from another origin (and no CORS answer allows credentials)
        assert outcome["session"] == "unauthorized"
        screenshot(page, "foreign_origin")
        # an origin that is not listed cannot even ask
        other = f"http://127.0.0.1:{stack.foreign.server.server_address[1]}"
        page.goto(other + "/")
        refused = page.evaluate(
            """async ([api, key]) => {
                const { AiGenerationClient } = await import("/client.js");
                const client = new AiGenerationClient({ baseUrl: api, apiKey: key });
                try { await client.models(); return "answered"; } catch (error) { return error.code; }
            }""",
            [stack.url, stack.api_key],
        )
        assert refused == "network_error"


def test_the_app_shell_loads_with_the_server_stopped(stack, app):
    app.goto("/ai_generation/app")
    app.wait_for_selector("body[data-ready=true]")
    wait_until(lambda: app.evaluate("navigator.serviceWorker.controller !== null"), what="a service worker")
    stack.stop_odoo()
    app.reload()
    app.get_by_role("heading", name="AI Generation").wait_for()
    app.wait_for_selector("body[data-offline=true]")
    assert "cannot be reached" in app.locator("#connection").inner_text()
    screenshot(app, "offline_odoo_stopped")
    stack.gateway.stop()  # nothing listens any more: the page still opens
    stack.gateway = None
    app.reload()
    app.get_by_role("heading", name="AI Generation").wait_for()
    app.wait_for_selector("body[data-offline=true]")
    screenshot(app, "offline_nothing_listening")
