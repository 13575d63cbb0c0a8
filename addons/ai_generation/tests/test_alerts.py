# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The Odoo-side alert cron against a real Alertmanager (Debian's prometheus-alertmanager) on loopback."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest
from datetime import UTC, datetime, timedelta

import requests
from odoo.tests import tagged

from ..pure import alerts
from .common import AiGenerationCase, closed_port

CONFIG = """
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


def iso_in(seconds):
    """Now plus ``seconds`` in the format the cron posts (comparable as text)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def start_alertmanager():
    binary = shutil.which(os.environ.get("AIGEN_ALERTMANAGER_BIN", "prometheus-alertmanager"))
    if not binary:
        return None, None, None
    workdir = tempfile.mkdtemp(prefix="aigen-am-")
    with open(os.path.join(workdir, "am.yml"), "w") as fh:
        fh.write(CONFIG)
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir}/am.yml",
            f"--storage.path={workdir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            f"--web.external-url={url}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            if requests.get(f"{url}/-/ready", timeout=1).ok:
                return process, url, workdir
        except requests.RequestException:
            time.sleep(0.1)  # not listening yet
            continue
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("Alertmanager did not become ready")


@tagged("at_install", "-post_install", "ai_generation")
class TestAlerts(AiGenerationCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.am_process, cls.am_url, cls.am_dir = start_alertmanager()
        if cls.am_process:
            cls.addClassCleanup(shutil.rmtree, cls.am_dir, True)
            cls.addClassCleanup(cls.am_process.wait, 10)
            cls.addClassCleanup(cls.am_process.terminate)

    def setUp(self):
        super().setUp()
        if not self.am_process:
            raise unittest.SkipTest("prometheus-alertmanager not installed")
        self._end_all_alerts()  # the database is rolled back after each test, Alertmanager is not
        self.grant(self.alice, 1000)
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("ai_generation.alertmanager_url", self.am_url)
        params.set_param("ai_generation.alert_rate_threshold", "3")
        params.set_param("ai_generation.alert_window_minutes", "10")
        params.set_param("ai_generation.alert_consecutive_threshold", "50")

    def _fail(self, error_type, count):
        requests_ = [self.new_request(self.alice) for _ in range(count)]
        for request in requests_:
            self.callback("failure", request, **self.failure_payload(error_type))
        return requests_

    def _succeed(self, count):
        for _ in range(count):
            request = self.new_request(self.alice)
            self.callback("progress", request, state="running", attempt=1)
            self.callback("result", request, output="a poem", usage={"total_tokens": 12})

    def _alertmanager_alerts(self):
        return requests.get(f"{self.am_url}/api/v2/alerts", params={"active": "true"}, timeout=5).json()

    def _end_all_alerts(self):
        ended = [
            {"labels": a["labels"], "startsAt": a["startsAt"], "endsAt": iso_in(0)}
            for a in self._alertmanager_alerts()
        ]
        if ended:
            requests.post(f"{self.am_url}/api/v2/alerts", json=ended, timeout=5).raise_for_status()

    def _active(self):
        """Alertmanager's active alerts with our service label, as {alertname: labels}."""
        return {
            (a["labels"]["alertname"], a["labels"].get("error_type")): a
            for a in self._alertmanager_alerts()
            if a["labels"].get("service") == alerts.SERVICE
            and a["labels"].get("source") == "odoo"
            and a["status"]["state"] == "active"
        }

    def test_rate_alert_is_raised_resent_and_resolved(self):
        Alert = self.env["ai.generation.alert"]
        self._fail("provider_unavailable", 2)
        self.assertEqual(Alert._cron_send_alerts(), [])  # below the threshold: nothing to say
        failed = self._fail("provider_unavailable", 1)
        sent = Alert._cron_send_alerts()
        self.assertEqual([a["labels"]["alertname"] for a in sent], [alerts.ALERT_RATE])
        active = self._active()
        alert = active[(alerts.ALERT_RATE, "provider_unavailable")]
        self.assertEqual(
            {k: alert["labels"][k] for k in ("service", "backend", "error_type", "severity", "source")},
            {
                "service": "ai_generation",
                "backend": "external",
                "error_type": "provider_unavailable",
                "severity": "warning",
                "source": "odoo",
            },
        )
        self.assertEqual(alert["annotations"]["count"], "3")
        self.assertIn(failed[0].uuid, alert["annotations"]["sample_request_ids"])
        record = Alert.search([])
        self.assertEqual(len(record), 1)
        # still holding: re-sent, still one record
        self.assertEqual(len(Alert._cron_send_alerts()), 1)
        self.assertEqual(len(Alert.search([])), 1)
        # the failures leave the window: resolved in Alertmanager and in Odoo
        self.env.cr.execute("UPDATE ai_generation_request SET finished_at = finished_at - interval '1 hour'")
        self.env.invalidate_all()
        resolved = Alert._cron_send_alerts()
        self.assertEqual(len(resolved), 1)
        self.assertNotIn((alerts.ALERT_RATE, "provider_unavailable"), self._active())
        self.assertFalse(Alert.search([]))
        self.assertTrue(Alert.with_context(active_test=False).search([]).resolved_at)

    def test_the_alert_record_reads_as_an_alert_and_its_resolve_carries_the_summary(self):
        Alert = self.env["ai.generation.alert"]
        failed = self._fail("provider_unavailable", 3)
        Alert._cron_send_alerts()
        record = Alert.search([])
        self.assertEqual(
            (record.alertname, record.severity, record.backend, record.error_type, record.source),
            (alerts.ALERT_RATE, "warning", "external", "provider_unavailable", "odoo"),
        )
        self.assertEqual((record.status, record.failure_count), ("firing", 3))
        self.assertIn("3 provider_unavailable failures", record.summary)
        self.assertEqual(set(record.sample_request_ids.ids), {r.id for r in failed})
        # a fourth failure: the re-send updates the stored counts
        self._fail("provider_unavailable", 1)
        Alert._cron_send_alerts()
        self.assertEqual(record.failure_count, 4)
        self.env.cr.execute("UPDATE ai_generation_request SET finished_at = finished_at - interval '1 hour'")
        self.env.invalidate_all()
        (resolved,) = Alert._cron_send_alerts()
        self.assertIn("4 provider_unavailable failures", resolved["annotations"]["summary"])
        self.assertEqual(record.status, "resolved")

    def test_immediate_alert_for_quota(self):
        self._fail("quota_exhausted", 1)
        self.env["ai.generation.alert"]._cron_send_alerts()
        alert = self._active()[(alerts.ALERT_IMMEDIATE, "quota_exhausted")]
        self.assertEqual(alert["labels"]["severity"], "critical")

    def test_user_errors_do_not_count_as_a_persistent_backend_failure(self):
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.alert_consecutive_threshold", "3")
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.alert_rate_threshold", "100")
        self._fail("invalid_input", 3)
        self.assertEqual(self.env["ai.generation.alert"]._cron_send_alerts(), [])
        self._fail("provider_timeout", 3)
        self.env["ai.generation.alert"]._cron_send_alerts()
        self.assertIn((alerts.ALERT_CONSECUTIVE, "any"), self._active())

    def test_a_user_side_failure_does_not_resolve_a_system_streak(self):
        Alert = self.env["ai.generation.alert"]
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("ai_generation.alert_consecutive_threshold", "3")
        params.set_param("ai_generation.alert_rate_threshold", "100")
        self._fail("provider_timeout", 3)
        Alert._cron_send_alerts()
        streak = (alerts.ALERT_CONSECUTIVE, "any")
        self.assertIn(streak, self._active())
        for error_type in ("invalid_input", "content_policy", "context_length_exceeded"):
            self._fail(error_type, 1)  # the next jobs fail on the user side: not a recovery
            sent = Alert._cron_send_alerts()
            self.assertEqual([a["labels"]["alertname"] for a in sent], [alerts.ALERT_CONSECUTIVE])
            self.assertGreater(sent[0]["endsAt"], iso_in(60))  # re-sent as firing, not ended
            self.assertIn(streak, self._active())
            self.assertEqual(Alert.search([]).labels["alertname"], alerts.ALERT_CONSECUTIVE)
        self._fail("provider_timeout", 1)
        self._succeed(1)  # a success is the recovery
        Alert._cron_send_alerts()
        self.assertNotIn(streak, self._active())
        self.assertFalse(Alert.search([]))

    def test_a_system_streak_ends_when_its_failures_leave_the_window(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("ai_generation.alert_consecutive_threshold", "3")
        params.set_param("ai_generation.alert_rate_threshold", "100")
        self._fail("provider_timeout", 3)
        self.env["ai.generation.alert"]._cron_send_alerts()
        self.assertIn((alerts.ALERT_CONSECUTIVE, "any"), self._active())
        self.env.cr.execute("UPDATE ai_generation_request SET finished_at = finished_at - interval '1 hour'")
        self.env.invalidate_all()
        self.env["ai.generation.alert"]._cron_send_alerts()
        self.assertNotIn((alerts.ALERT_CONSECUTIVE, "any"), self._active())

    def test_odoo_resolving_its_alert_leaves_a_worker_raised_one_firing(self):
        Alert = self.env["ai.generation.alert"]
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("ai_generation.alert_consecutive_threshold", "3")
        params.set_param("ai_generation.alert_rate_threshold", "100")
        self._fail("provider_timeout", 3)
        (odoo_alert,) = Alert._cron_send_alerts()
        self.assertEqual(odoo_alert["labels"]["source"], "odoo")
        # one worker sees the same condition and raises it (its own source label, endsAt ahead)
        worker_labels = dict(odoo_alert["labels"], source="worker")
        worker_alert = {"labels": worker_labels, "startsAt": iso_in(0), "endsAt": iso_in(300)}
        requests.post(f"{self.am_url}/api/v2/alerts", json=[worker_alert], timeout=5).raise_for_status()
        # Odoo sees a success from another worker: it resolves its alert (endsAt now)
        self._succeed(1)
        (resolved,) = Alert._cron_send_alerts()
        self.assertLess(resolved["endsAt"], iso_in(1))
        still = [
            a["labels"]["source"]
            for a in self._alertmanager_alerts()
            if a["labels"]["alertname"] == alerts.ALERT_CONSECUTIVE and a["status"]["state"] == "active"
        ]
        self.assertEqual(still, ["worker"])  # the worker owns its alert until it resolves it

    def test_unreachable_alertmanager_changes_nothing(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "ai_generation.alertmanager_url", f"http://127.0.0.1:{closed_port()}"
        )
        self._fail("provider_auth", 1)
        self.assertEqual(self.env["ai.generation.alert"]._cron_send_alerts(timeout=2), [])
        self.assertFalse(self.env["ai.generation.alert"].search([]))
