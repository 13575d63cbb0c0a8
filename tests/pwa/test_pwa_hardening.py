"""The reference PWA where a user, the network or another tab does the unexpected: a real Chromium on the
real stack (test_pwa_browser.py's), one fresh page each. Each test is a defect a reviewer found.

- Ctrl+Enter pressed twice sent two creates with two Idempotency-Keys: charged twice;
- a create whose answer was lost, asked again, went with a new key: charged twice;
- an image the provider returned as base64 (a data: URL) was never shown, though paid for;
- several images (n > 1) showed as their JSON list of URLs, megabytes of base64 text, not as images;
- a session ended in another tab left a running request frozen, the sign-in never shown;
- a page instead of the API's answer (a captive portal's) showed NaN credits and lost the prompt;
- signing out left the user's draft in the form for the next user of the device;
- a sign-out the server never got showed the sign-in form, the session still valid (a shared device);
- the account bar (credits, "Sign out") showed on the sign-in form: its CSS beat the hidden attribute;
- the offline state never cleared without a reload, after one 503 at sign-in;
- the service worker's offline copy of the config kept who was signed in;
- a two-step-verification account was told "Wrong login or password";
- the answer to a create the bus had already announced took its hold off the credits a second time.
"""

import base64
import os
import struct
import zlib

import pytest

from tests.pwa import test_pwa_browser as pwa
from tests.pwa.test_pwa_browser import (
    INSTRUMENTS,
    PHONE,
    PORTAL_LOGIN,
    PORTAL_PASSWORD,
    expect,
    item,
    submit,
    wait_status,
)
from tests.support import fake_openai as fo
from tests.support.browser import browser_page

# that module's stack and browser, started once more for this module (they are module-scoped)
stack, browser = pwa.stack, pwa.browser

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow, pytest.mark.timeout(900)]

TEXT_MODEL = "e2e-model · text · 7 credits per request"


@pytest.fixture()
def page(stack, browser):
    with browser_page(browser, stack.url, viewport=PHONE) as fresh:
        fresh.context.add_init_script(INSTRUMENTS)
        yield fresh


def sign_in(page, until="body[data-ready=true]"):
    """Sign the portal user in through the form; wait for ``until`` (None: not at all)."""
    page.goto("/ai_generation/app")
    page.get_by_label("Email or login").fill(PORTAL_LOGIN)
    page.get_by_label("Password").fill(PORTAL_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if until:
        page.wait_for_selector(until)


def create_keys(page) -> list[str]:
    """The Idempotency-Key of every create the page sends from now on."""
    keys = []
    page.on(
        "request",
        lambda r: (
            r.method == "POST"
            and r.url.endswith("/api/v1/generations")
            and keys.append(r.headers.get("idempotency-key"))
        ),
    )
    return keys


def server_requests(page, marker: str) -> list[dict]:
    listing = page.evaluate("async () => (await (await fetch('/api/v1/generations?limit=100')).json())")
    return [i for i in listing["items"] if marker in (i.get("prompt") or i.get("prompt_preview") or "")]


def test_ctrl_enter_twice_sends_one_create(stack, page):
    sign_in(page)
    keys = create_keys(page)
    shown = page.locator("#history > li").count()
    marker = "[twice-ctrl-enter]"
    stack.fake.on(marker, fo.text("one poem"), fo.text("another poem"))
    page.get_by_label("Model").select_option(label=TEXT_MODEL)
    page.get_by_label("Prompt").fill(f"one poem please {marker}")
    page.get_by_label("Prompt").focus()
    page.keyboard.down("Control")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.up("Control")
    expect(page.locator("#history > li")).to_have_count(shown + 1)
    page.wait_for_timeout(1500)  # a second create would have been sent by now
    assert len(keys) == 1, keys
    assert len(server_requests(page, marker)) == 1


def test_a_create_whose_answer_was_lost_is_asked_again_with_its_key(stack, page):
    sign_in(page)
    keys = create_keys(page)
    shown = page.locator("#history > li").count()
    credits = int(page.locator("#credits-available").inner_text())
    marker = "[lost-answer]"
    # slow enough that the success (which would show the right credits anyway) comes after the checks
    stack.fake.on(marker, fo.text("a poem", delay=8), fo.text("a second poem"))

    def lose_the_answer(route):
        if route.request.method == "POST":
            route.fetch()  # the server gets it and accepts it; the answer is lost on the way back
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/v1/generations", lose_the_answer)
    page.get_by_label("Model").select_option(label=TEXT_MODEL)
    # longer than the bus's preview of a prompt: the row keeps the whole of it
    prompt = f"only one poem, about the sea and the slow ships that cross it at night {marker}"
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#generate-error")).to_contain_text("cannot be reached")
    assert page.get_by_label("Prompt").input_value() == prompt
    page.unroute("**/api/v1/generations")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#history > li")).to_have_count(shown + 1)
    expect(page.get_by_label("Prompt")).to_have_value("")  # the replayed answer came back
    assert len(keys) == 2 and keys[0] == keys[1], keys
    # the bus announced the request with the credits after its hold: the replay takes nothing off again
    assert page.locator("#credits-available").inner_text() == str(credits - 7)
    (accepted,) = server_requests(page, marker)  # one request, held (and charged) once
    assert item(page, accepted["request_id"]).locator(".prompt").inner_text() == prompt
    wait_status(page, accepted["request_id"], "succeeded")
    assert page.get_by_label("Prompt").input_value() == ""


def test_an_image_the_provider_returned_as_base64_is_shown(stack, page):
    sign_in(page)
    image_model = next(
        label for label in page.get_by_label("Model").locator("option").all_inner_texts() if "image" in label
    )
    marker = "[image-b64]"
    stack.fake.on(marker, fo.image())  # b64_json: the worker passes it on as a data: URL
    request_id = submit(page, f"a red square {marker}", model_label=image_model)
    row = wait_status(page, request_id, "succeeded")
    image = row.locator("img.result-image")
    expect(image).to_be_visible()
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("(img) => img.naturalWidth > 0", image.element_handle())  # decoded under the CSP
    # a data: URL of another kind is no image, nor a link
    marker = "[image-html]"
    stack.fake.on(marker, fo.image("data:text/html,<script>alert(1)</script>"))
    row = wait_status(page, submit(page, f"a trap {marker}", model_label=image_model), "succeeded")
    assert row.locator("img.result-image").is_hidden() and row.locator(".result-link").is_hidden()


def noisy_png_b64(width: int, height: int) -> str:
    """A valid PNG of random pixels (zlib cannot shrink them), base64: a large image, as providers send."""
    raw = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()


def test_several_images_of_one_request_are_all_shown_as_images(stack, page):
    # the worker passes n > 1 images on as a JSON list of URLs in output (output_url is the first)
    sign_in(page)
    marker = "[image-n2]"
    stack.fake.on(marker, fo.image(b64_json=[noisy_png_b64(4, 4), noisy_png_b64(6, 6)]))
    prompt = f"two squares {marker}"
    # the form asks for one image: n=2 through the API, as another client would (the bus tells the page)
    accepted = page.evaluate(
        """async (prompt) => {
            const {models} = await (await fetch("/api/v1/models")).json();
            const {backend, model} = models.find((entry) => entry.task === "image");
            const answer = await fetch("/api/v1/generations", {
                method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({backend, model, task: "image", prompt, params: {n: 2}}),
            });
            return {status: answer.status, body: await answer.json()};
        }""",
        prompt,
    )
    assert accepted["status"] == 202, accepted
    row = wait_status(page, accepted["body"]["request_id"], "succeeded")
    images = row.locator("img.result-image")
    expect(images).to_have_count(2)
    assert row.locator(".result").is_hidden(), "no JSON text"
    assert [images.nth(i).get_attribute("alt") for i in range(2)] == [
        f"Image 1 of 2 for: {prompt}",
        f"Image 2 of 2 for: {prompt}",
    ]
    # both decoded under the CSP, each its own
    widths = [images.nth(i).evaluate("(img) => img.decode().then(() => img.naturalWidth)") for i in range(2)]
    assert widths == [4, 6]


def test_a_large_image_left_out_of_the_history_page_is_shown_after_a_reload(stack, page):
    # a list page leaves out results over 64 KiB of JSON: the history reads each one with its own GET
    sign_in(page)
    image_model = next(
        label for label in page.get_by_label("Model").locator("option").all_inner_texts() if "image" in label
    )
    marker = "[image-large]"
    stack.fake.on(marker, fo.image(b64_json=noisy_png_b64(160, 160)))  # about 100 KiB of base64
    request_id = submit(page, f"a noisy square {marker}", model_label=image_model)
    wait_status(page, request_id, "succeeded")
    listed = [i for i in server_requests(page, marker) if i["request_id"] == request_id]
    assert [(i["result_available"], i["result_included"]) for i in listed] == [(True, False)]
    # without the bus: Odoo replays its last 50 s to a new page, and the replayed "accepted" made the
    # page follow the request and read it whole; an older request has only the list page to go by
    page.route_web_socket("**/websocket*", lambda ws: ws.close())
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    image = item(page, request_id).locator("img.result-image")
    expect(image).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 160


def test_a_large_result_still_loading_neither_holds_the_page_nor_reaches_the_next_user(stack, page):
    # the history's GETs of left-out results: the page waited for all of them before it was ready, and
    # one that came back after a sign-out put the user's request on the page for the next one
    sign_in(page)
    image_model = next(
        label for label in page.get_by_label("Model").locator("option").all_inner_texts() if "image" in label
    )
    marker = "[image-large-slow]"
    stack.fake.on(marker, fo.image(b64_json=noisy_png_b64(160, 160)))
    request_id = submit(page, f"a slow noisy square {marker}", model_label=image_model)
    wait_status(page, request_id, "succeeded")
    held = []
    page.route(f"**/api/v1/generations/{request_id}", lambda route: held.append(route))  # held back
    page.route_web_socket("**/websocket*", lambda ws: ws.close())  # no bus replay (see above)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")  # ready while the GET is pending
    assert held, "the history did not ask for the left-out result"
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email or login").wait_for()
    held[0].continue_()
    page.wait_for_timeout(1000)
    assert page.locator(f'#history [data-request-id="{request_id}"]').count() == 0


def test_a_session_ended_in_another_tab_shows_the_sign_in(stack, page):
    sign_in(page)
    page.wait_for_selector("body[data-bus=open]")  # the shell's CSP lets the bus in ('self')
    marker = "[session-ended]"
    stack.fake.on(marker, fo.text("a late poem", delay=6))
    request_id = submit(page, f"a slow poem {marker}")
    wait_status(page, request_id, "running")
    other = page.context.new_page()
    other.goto("/ai_generation/app")
    other.wait_for_selector("body[data-ready=true]")
    other.get_by_role("button", name="Sign out").click()
    other.get_by_label("Email or login").wait_for()
    expect(page.locator("#sign-in-section")).to_be_visible()
    assert page.locator("#generate-section").is_hidden()
    assert item(page, request_id).count() == 0  # nothing of the session stays on screen


def test_a_page_instead_of_the_apis_answer_keeps_the_prompt_and_says_so(stack, page):
    sign_in(page)
    credits = page.locator("#credits-available").inner_text()
    shown = page.locator("#history > li").count()

    def captive_portal(route):
        if route.request.method != "POST":
            return route.continue_()
        return route.fulfill(status=200, content_type="text/html", body="<html>Please log in</html>")

    page.route("**/api/v1/generations", captive_portal)
    page.get_by_label("Model").select_option(label=TEXT_MODEL)
    page.get_by_label("Prompt").fill("a poem [captive]")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#generate-error")).to_contain_text("page")
    assert page.get_by_label("Prompt").input_value() == "a poem [captive]"
    assert page.locator("#credits-available").inner_text() == credits
    assert page.locator("#history > li").count() == shown


def test_signing_out_leaves_nothing_of_the_user_in_the_form(stack, page):
    sign_in(page)
    page.get_by_label("Prompt").fill("my private draft about project X")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email or login").wait_for()
    left = page.evaluate(
        "() => [document.getElementById('prompt').value, document.getElementById('model').options.length,"
        " document.getElementById('credits-available').textContent]"
    )
    assert left == ["", 0, ""]
    expect(page.locator("#account")).to_be_hidden()  # no credits, no "Sign out" on the sign-in form
    sign_in(page)
    assert page.get_by_label("Prompt").input_value() == ""


def test_a_sign_out_the_server_did_not_get_says_so_and_keeps_the_user_signed_in(stack, page):
    sign_in(page)
    page.route("**/web/session/destroy", lambda route: route.abort("connectionreset"))
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#connection")).to_contain_text("still signed in")
    expect(page.locator("#generate-section")).to_be_visible()
    assert page.locator("#sign-in-section").is_hidden()
    # a gateway's 503 during a restart is no sign-out either
    page.unroute("**/web/session/destroy")
    page.route("**/web/session/destroy", lambda route: route.fulfill(status=503, body="busy"))
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#connection")).to_contain_text("still signed in")
    page.unroute("**/web/session/destroy")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email or login").wait_for()
    expect(page.locator("#connection")).to_have_text("")
    page.reload()  # and the server agrees
    page.get_by_label("Email or login").wait_for()
    assert page.evaluate("document.body.dataset.ready") is None


def test_one_503_at_sign_in_leaves_the_offline_state_by_itself(stack, page):
    page.route("**/api/v1/models", lambda route: route.fulfill(status=503, body="restarting"), times=1)
    sign_in_offline(page)
    page.get_by_label("Prompt").fill("a draft written meanwhile")
    page.wait_for_selector("body[data-ready=true]", timeout=20000)  # the app tried again, alone
    assert page.evaluate("document.body.dataset.offline") is None
    expect(page.locator("#connection")).not_to_contain_text("cannot be reached")
    assert page.get_by_label("Model").locator("option").count() > 0
    assert page.get_by_label("Prompt").input_value() == "a draft written meanwhile"


def test_while_the_api_stays_away_the_app_tries_less_and_less_often(stack, page):
    # the config answers, the API does not (a worker killed on each list, say): each try rebuilt the
    # client and its websocket and made three calls, every 2 s
    tries = []
    page.route("**/api/v1/models", lambda route: (tries.append(1), route.fulfill(status=503, body="x")))
    sign_in_offline(page)
    page.wait_for_timeout(15000)
    # 2 s, 4 s, 8 s: three tries after the first in 15 s (every 2 s would be seven)
    assert 3 <= len(tries) <= 5, len(tries)


def test_a_sign_out_while_offline_leaves_the_offline_state(stack, page):
    page.route("**/api/v1/models", lambda route: route.fulfill(status=503, body="x"), times=1)
    sign_in_offline(page)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email or login").wait_for()
    # no try is left to make: it would have signed the page out again, the focus moved mid-typing
    assert page.evaluate("document.body.dataset.offline") is None
    page.get_by_label("Email or login").fill(PORTAL_LOGIN)
    page.wait_for_timeout(3000)
    assert page.evaluate("document.activeElement.id") == "login"
    assert page.get_by_label("Email or login").input_value() == PORTAL_LOGIN


def sign_in_offline(page):
    sign_in(page, until="body[data-offline=true]")


def test_the_offline_copy_of_the_config_keeps_nobody_signed_in(stack, page):
    sign_in(page)
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.reload()  # config.json through the service worker now
    page.wait_for_selector("body[data-ready=true]")
    kept = page.evaluate(
        """async () => {
            for (const name of await caches.keys()) {
                const hit = await (await caches.open(name)).match('/ai_generation/app/config.json');
                if (hit) return await hit.json();
            }
            return null;
        }"""
    )
    assert kept is not None, "the service worker kept no config for offline use"
    assert kept["user"] is None and kept["offline"] is True
    assert kept["db"]


def test_a_two_step_verification_account_is_told_where_to_sign_in(stack, page):
    # Odoo's /web/session/authenticate answers {"uid": null} when the password was right and the account
    # asks for a second factor (web/controllers/session.py), an error for a wrong password
    page.route(
        "**/web/session/authenticate",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body='{"jsonrpc": "2.0", "id": null, "result": {"uid": null}}',
        ),
    )
    sign_in(page, until=None)
    expect(page.locator("#sign-in-error")).to_contain_text("two-step verification")
    expect(page.locator("#sign-in-error")).to_contain_text("/web/login")
    page.unroute("**/web/session/authenticate")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("Wrong login or password.")
