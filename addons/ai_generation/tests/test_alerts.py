# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The Odoo-side alert cron against a real Alertmanager (Debian's prometheus-alertmanager) on loopback."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

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
            pass
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

    def _active(self):
        """Alertmanager's active alerts with our service label, as {alertname: labels}."""
        found = requests.get(f"{self.am_url}/api/v2/alerts", params={"active": "true"}, timeout=5).json()
        return {
            (a["labels"]["alertname"], a["labels"].get("error_type")): a
            for a in found
            if a["labels"].get("service") == alerts.SERVICE and a["status"]["state"] == "active"
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
            {k: alert["labels"][k] for k in ("service", "backend", "error_type", "severity")},
            {
                "service": "ai_generation",
                "backend": "external",
                "error_type": "provider_unavailable",
                "severity": "warning",
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

    def test_unreachable_alertmanager_changes_nothing(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "ai_generation.alertmanager_url", f"http://127.0.0.1:{closed_port()}"
        )
        self._fail("provider_auth", 1)
        self.assertEqual(self.env["ai.generation.alert"]._cron_send_alerts(timeout=2), [])
        self.assertFalse(self.env["ai.generation.alert"].search([]))
