"""The back office as an Odoo admin sees it, in a real Chromium (issue 10, "How it is shown").

One database with the addon and its demo data, one threaded odoo-bin, one logged-in admin page for the
module. Each test opens a screen the way an admin reaches it (no debug mode), checks what the screen
shows, and saves a screenshot under test-artifacts/.
"""

from __future__ import annotations

import re

import pytest

from tests.support.browser import (
    browser_page,
    chromium,
    odoo_login,
    odoo_open,
    require_browser,
    screenshot,
    wait_for_calls,
    wait_for_odoo_view,
)
from tests.support.odoo import ADMIN_LOGIN, ADMIN_PASSWORD, OdooServer, require_odoo, throwaway_database

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

# an alert as the alert cron stores it once Alertmanager took it (labels + annotations as sent)
ALERT_SETUP = """
Request = env["ai.generation.request"]
failed = Request.search([("state", "=", "failed"), ("error_side", "=", "system")], limit=2)
labels = {"alertname": "AIGenerationHighErrorRate", "service": "ai_generation", "backend": "external",
          "error_type": "provider_unavailable", "severity": "warning", "source": "odoo"}
env["ai.generation.alert"].create({
    "fingerprint": json.dumps(labels, sort_keys=True),
    "labels": labels,
    "annotations": {"summary": "7 provider_unavailable failures on external in 10 minutes", "count": "7",
                    "sample_request_ids": ",".join(failed.mapped("uuid"))},
    "starts_at": fields.Datetime.now(),
    "last_sent_at": fields.Datetime.now(),
})
# a user who has never made a request nor been granted anything: no credit account yet
employee = env.ref("base.group_user")
env["res.users"].create({"name": "Nina Newcomer", "login": "nina.new", "groups_id": [(6, 0, employee.ids)]})
env.cr.commit()
"""


@pytest.fixture(scope="module")
def server():
    odoo = require_odoo()
    require_browser()
    with throwaway_database(odoo, ["ai_generation"], prefix="aigen_browser") as db:
        odoo.shell(db, "import json\nfrom odoo import fields\n" + ALERT_SETUP)
        with OdooServer(odoo, db) as running:
            yield running


@pytest.fixture(scope="module")
def admin_page(server):
    with chromium() as browser, browser_page(browser, server.url) as page:
        odoo_login(page, server.url, server.db, ADMIN_LOGIN, ADMIN_PASSWORD)
        yield page


@pytest.fixture(autouse=True)
def no_page_errors(admin_page):
    admin_page.errors.clear()
    yield
    assert not admin_page.errors, admin_page.errors


def xmlid(server, ref: str) -> int:
    module, name = ref.split(".")
    return server.rpc("ir.model.data", "check_object_reference", module, name)[1]


def field(page, name: str):
    """The widget of field ``name`` in the open form (the dialog's when one is open)."""
    scope = page.locator(".modal .o_form_view") if page.locator(".modal").count() else page
    return scope.locator(f".o_field_widget[name='{name}']").first


def stat_value(page, text: str) -> int:
    button = page.locator(".oe_stat_button", has_text=text)
    return int(button.locator(".o_stat_value").inner_text().strip())


def statusbar_steps(page) -> list[str]:
    """The status bar's steps as they read left to right (Odoo lays them out in reverse DOM order)."""
    steps = page.locator(".o_statusbar_status button[role='radio']")
    shown = [(steps.nth(i).bounding_box(), steps.nth(i).inner_text().strip()) for i in range(steps.count())]
    return [text for _, text in sorted((box["x"], text) for box, text in shown if box)]


def post_grant(page, credits: int, reason: str) -> None:
    """Fill the open Credit Operation dialog and post it."""
    dialog = page.locator(".modal")
    dialog.locator(".o_field_widget[name='credits'] input").fill(str(credits))
    dialog.locator(".o_field_widget[name='reason'] input").fill(reason)
    dialog.get_by_role("button", name="Post to the ledger").click()
    dialog.wait_for(state="detached")
    wait_for_calls(page)


def test_user_form_shows_the_role_selection_and_grants_from_the_credits_button(server, admin_page):
    page = admin_page
    marc = xmlid(server, "base.user_demo")
    odoo_open(page, server.url, f"/odoo/action-base.action_res_users/{marc}")
    assert "debug" not in page.url
    # the label carries a "?" tooltip mark; "AI Generation (technical)" is the Worker group's own place
    role_label = page.locator(".o_form_view label.o_form_label", has_text=re.compile(r"^AI Generation\??$"))
    assert role_label.is_visible()
    role = page.locator(f"#{role_label.get_attribute('for')}")
    options = [o.strip() for o in role.locator("option").all_inner_texts() if o.strip()]
    assert options == ["User", "Manager"], options
    assert role.evaluate("el => el.options[el.selectedIndex].text") == "User"
    screenshot(page, "user_form_role_selection")

    before = stat_value(page, "AI credits")
    page.locator(".oe_stat_button", has_text="AI credits").click()
    page.locator(".modal .o_form_view").wait_for()
    assert "Marc Demo" in field(page, "user_id").inner_text()
    screenshot(page, "user_form_grant_dialog")
    post_grant(page, 15, "browser test: monthly allowance")
    # the wizard shows the account it changed, one breadcrumb away from the user
    assert "Marc Demo" in field(page, "user_id").inner_text()
    assert int(field(page, "available").inner_text()) == before + 15
    screenshot(page, "user_form_grant_lands_on_account")
    page.locator(".o_breadcrumb .breadcrumb-item a", has_text="Marc Demo").click()
    wait_for_odoo_view(page)
    assert stat_value(page, "AI credits") == before + 15
    screenshot(page, "user_form_after_grant")


def test_credit_accounts_list_grants_to_a_user_without_an_account(server, admin_page):
    page = admin_page
    assert not server.rpc("ai.credit.account", "search_count", [("user_id.login", "=", "nina.new")])
    odoo_open(page, server.url, "/odoo/action-ai_generation.ai_credit_account_action")
    headers = page.locator(".o_list_view thead th").all_inner_texts()
    assert {"User", "Balance", "Held", "Available", "Last Movement"} <= {h.strip() for h in headers}, headers
    assert not page.locator(".o_data_row", has_text="Nina Newcomer").count()
    screenshot(page, "credit_accounts_before_grant")

    page.get_by_role("button", name="Grant credits").click()
    user = page.locator(".modal .o_field_widget[name='user_id'] input")
    user.fill("Nina")
    page.locator(".o-autocomplete--dropdown-item", has_text="Nina Newcomer").click()
    post_grant(page, 25, "browser test: welcome")
    assert "Nina Newcomer" in field(page, "user_id").inner_text()
    assert int(field(page, "balance").inner_text()) == 25
    page.locator(".o_breadcrumb .breadcrumb-item a", has_text="Credit Accounts").click()
    wait_for_odoo_view(page)
    row = page.locator(".o_data_row", has_text="Nina Newcomer")
    assert row.count() == 1
    cells = row.locator("td.o_data_cell").all_inner_texts()
    assert [c.strip() for c in cells].count("25") >= 2, cells  # balance and available
    screenshot(page, "credit_accounts_after_grant")


def test_failed_request_form_shows_the_path_that_happened(server, admin_page):
    page = admin_page
    request_id = server.rpc(
        "ai.generation.request",
        "search",
        [("state", "=", "failed"), ("error_side", "=", "system"), ("user_id.login", "=", "demo")],
        limit=1,
    )[0]
    odoo_open(page, server.url, f"/odoo/action-ai_generation.ai_generation_request_action/{request_id}")
    assert statusbar_steps(page) == ["Queued", "Dispatched", "Running", "Failed"]
    current = page.locator(".o_statusbar_status button[aria-checked='true']")
    assert current.inner_text().strip() == "Failed"
    banner = page.locator(".alert-danger", has_text="AI processing failed")
    assert banner.is_visible()
    assert "The owner was told" in banner.inner_text()
    visible_text = page.locator(".o_form_view").inner_text()
    assert visible_text.lower().count("not charged") == 1, visible_text
    assert "Your request is being processed." not in visible_text
    screenshot(page, "failed_request_form")


def test_alerts_list_shows_the_labels_as_columns(server, admin_page):
    page = admin_page
    odoo_open(page, server.url, "/odoo/action-ai_generation.ai_generation_alert_action")
    headers = [h.strip() for h in page.locator(".o_list_view thead th").all_inner_texts() if h.strip()]
    for column in ("Started", "Alert", "Severity", "Backend", "Error type", "Failures", "Source", "Status"):
        assert column in headers, headers
    row = page.locator(".o_data_row", has_text="AIGenerationHighErrorRate")
    assert row.count() == 1
    row_text = row.inner_text()
    for value in ("warning", "external", "provider_unavailable", "7", "odoo", "Firing"):
        assert value in row_text, row_text
    assert "{" not in row_text, "labels shown as raw JSON"
    screenshot(page, "alerts_list")

    row.click()
    page.locator(".o_form_view .o_field_widget[name='sample_request_ids']").wait_for()
    wait_for_calls(page)
    assert "7 provider_unavailable failures" in page.locator(".o_form_view").inner_text()
    assert page.locator(".o_field_widget[name='sample_request_ids'] .o_data_row").count() == 2
    screenshot(page, "alert_form")


def pivot_totals(page) -> dict[str, dict[str, int]]:
    """{row header: {measure: value}} of the open pivot's Total column (its last group of cells)."""
    page.locator("div.o_pivot table").wait_for()
    wait_for_calls(page)
    headers = [m.strip() for m in page.locator("div.o_pivot thead .o_pivot_measure_row").all_inner_texts()]
    measures = list(dict.fromkeys(headers))  # each column group repeats the measures
    table = {}
    rows = page.locator("div.o_pivot tbody tr")
    for i in range(rows.count()):
        row = rows.nth(i)
        cells = [c.strip() for c in row.locator("td.o_pivot_cell_value").all_inner_texts()][-len(measures) :]
        title = row.locator("th").first.inner_text().strip()
        table[title] = {m: int(c.replace(",", "") or 0) for m, c in zip(measures, cells, strict=True)}
    return table


def test_failures_pivot_counts_failures(server, admin_page):
    page = admin_page
    failed = server.rpc("ai.generation.request", "search_count", [("state", "=", "failed")])
    odoo_open(page, server.url, "/odoo/action-ai_generation.ai_generation_request_action_failures")
    page.locator(".o_switch_view.o_pivot").click()
    totals = pivot_totals(page)
    assert list(totals["Total"]) == ["Count"], totals
    assert totals["Total"]["Count"] == failed
    by_type = server.rpc(
        "ai.generation.request", "read_group", [("state", "=", "failed")], ["error_type"], ["error_type"]
    )
    labels = dict(
        server.rpc("ai.generation.request", "fields_get", ["error_type"])["error_type"]["selection"]
    )
    for group in by_type:
        assert totals[labels[group["error_type"]]]["Count"] == group["error_type_count"], totals
    screenshot(page, "failures_pivot")


def test_credit_report_shows_refunded_and_adjusted_and_adds_up(server, admin_page):
    page = admin_page
    odoo_open(page, server.url, "/odoo/action-ai_generation.ai_credit_report_action")
    totals = pivot_totals(page)
    screenshot(page, "credit_report")
    for measure in (
        "Granted",
        "Spent",
        "Charged for invalid input",
        "Refunded",
        "Adjusted down",
        "Net change",
    ):
        assert measure in totals["Total"], totals["Total"]
    balances = {
        a["user_id"][1]: a["balance"]
        for a in server.rpc("ai.credit.account", "search_read", [], ["user_id", "balance"])
    }
    users = {title: row for title, row in totals.items() if title != "Total"}
    assert set(users) == set(balances), (users, balances)
    for title, row in users.items():
        moved = (
            row["Granted"]
            - row["Spent"]
            - row["Charged for invalid input"]
            + row["Refunded"]
            - row["Adjusted down"]
        )
        assert row["Net change"] == moved == balances[title], (title, row)
