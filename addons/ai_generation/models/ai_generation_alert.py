# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import json
import logging
from datetime import timedelta

import requests
from odoo import api, fields, models

from ..pure import alerts, contracts
from .res_config_settings import get_setting

_logger = logging.getLogger(__name__)


class AiGenerationAlert(models.Model):
    """An alert Odoo has posted to Alertmanager and not yet resolved (re-sent while it holds)."""

    _name = "ai.generation.alert"
    _description = "AI Generation Active Alert"
    _order = "id desc"
    _rec_name = "alertname"

    fingerprint = fields.Char(required=True, readonly=True, help="The alert's labels, sorted, as text.")
    labels = fields.Json(required=True, readonly=True)
    annotations = fields.Json(readonly=True, help="Counts, summary and sample requests, as last sent.")
    starts_at = fields.Datetime(required=True, readonly=True)
    last_sent_at = fields.Datetime(readonly=True)
    resolved_at = fields.Datetime(readonly=True)
    active = fields.Boolean(default=True)
    # the labels and annotations an admin reads, as columns (Alertmanager knows the alert by its labels)
    alertname = fields.Char("Alert", compute="_compute_from_labels", store=True)
    severity = fields.Char(compute="_compute_from_labels", store=True)
    backend = fields.Char(compute="_compute_from_labels", store=True)
    error_type = fields.Char("Error type", compute="_compute_from_labels", store=True)
    source = fields.Char(compute="_compute_from_labels", store=True, help="Who raised it: odoo, worker, n8n.")
    summary = fields.Char(compute="_compute_from_annotations")
    failure_count = fields.Integer("Failures", compute="_compute_from_annotations")
    sample_request_ids = fields.Many2many(
        "ai.generation.request", compute="_compute_from_annotations", string="Sample requests"
    )
    status = fields.Selection(
        [("firing", "Firing"), ("resolved", "Resolved")], compute="_compute_status", store=True
    )

    @api.depends("labels")
    def _compute_from_labels(self):
        for alert in self:
            labels = alert.labels or {}
            for name in ("alertname", "severity", "backend", "error_type", "source"):
                alert[name] = labels.get(name) or False

    @api.depends("annotations")
    def _compute_from_annotations(self):
        Request = self.env["ai.generation.request"]
        for alert in self:
            notes = alert.annotations or {}
            alert.summary = notes.get("summary") or False
            count = str(notes.get("count") or "0")
            alert.failure_count = int(count) if count.isdigit() else 0
            uuids = [u.strip() for u in (notes.get("sample_request_ids") or "").split(",") if u.strip()]
            alert.sample_request_ids = Request.search([("uuid", "in", uuids)]) if uuids else Request

    @api.depends("active")
    def _compute_status(self):
        for alert in self:
            alert.status = "firing" if alert.active else "resolved"

    def init(self):
        # one active alert per label set; resolved ones stay as history
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS ai_generation_alert_active_fingerprint"
            " ON ai_generation_alert (fingerprint) WHERE active"
        )

    @api.model
    def _cron_send_alerts(self, timeout=10):
        """Post the alerts that hold to Alertmanager (API v2), re-send them, resolve the ones that stopped.

        The database changes (new active alerts, resolutions) are kept only once Alertmanager accepted
        the post, so a failed post is simply tried again at the next run.
        """
        base_url = get_setting(self.env, "ai_generation.alertmanager_url")
        if not base_url:
            return []
        now = fields.Datetime.now()
        current = alerts.evaluate(self._alert_rules(), *self._recent_failures(now), now=now)
        active = {rec.fingerprint: rec for rec in self.search([])}
        # active alerts expire by themselves if Odoo stops re-sending (cron every minute)
        expires = now + timedelta(minutes=5)
        payload, created, resolved = [], [], self.browse()
        for alert in current.values():
            fingerprint = json.dumps(alert.labels, sort_keys=True)
            record = active.get(fingerprint)
            starts_at = record.starts_at if record else now
            if not record:
                created.append(
                    {
                        "fingerprint": fingerprint,
                        "labels": alert.labels,
                        "annotations": alert.annotations,
                        "starts_at": now,
                        "last_sent_at": now,
                    }
                )
            payload.append(alerts.to_alertmanager(alert, starts_at, expires))
        for fingerprint, record in active.items():
            if fingerprint not in {json.dumps(a.labels, sort_keys=True) for a in current.values()}:
                ended = alerts.Alert(labels=record.labels, annotations=record.annotations or {})
                payload.append(alerts.to_alertmanager(ended, record.starts_at, now))
                resolved |= record
        if not payload:
            return []
        url = base_url.rstrip("/") + "/api/v2/alerts"
        try:
            response = requests.post(url, json=payload, timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            _logger.warning("Alertmanager post to %s failed (%s); retried at the next run", url, exc)
            return []
        self.create(created)
        # the latest counts and samples stay on the alert, so its resolve carries a summary too
        by_fingerprint = {json.dumps(a.labels, sort_keys=True): a for a in current.values()}
        for record in self.search([("fingerprint", "in", list(active))]) - resolved:
            record.write({"last_sent_at": now, "annotations": by_fingerprint[record.fingerprint].annotations})
        resolved.write({"active": False, "resolved_at": now})
        _logger.info(
            "Alertmanager: %d alert(s) sent, %d resolved", len(payload) - len(resolved), len(resolved)
        )
        return payload

    @api.model
    def _alert_rules(self):
        return alerts.AlertRules(
            window_minutes=get_setting(self.env, "ai_generation.alert_window_minutes"),
            rate_threshold=get_setting(self.env, "ai_generation.alert_rate_threshold"),
            consecutive_threshold=get_setting(self.env, "ai_generation.alert_consecutive_threshold"),
        )

    @api.model
    def _recent_failures(self, now):
        """(failures in the window, latest outcomes per backend, error_type → alert kind)."""
        rules = self._alert_rules()
        Request = self.env["ai.generation.request"].sudo()
        since = now - timedelta(minutes=rules.window_minutes)
        failures = [
            alerts.Failure(r.uuid, r.backend, r.error_type, r.error_side, r.finished_at)
            for r in Request.search([("state", "=", "failed"), ("finished_at", ">=", since)])
            if r.error_type
        ]
        outcomes = {}
        for backend in ("external", "internal"):
            # user-side failures neither extend nor break a backend's streak: leave them out
            latest = Request.search(
                [
                    ("backend", "=", backend),
                    ("finished_at", "!=", False),
                    "|",
                    ("state", "=", "succeeded"),
                    "&",
                    ("state", "=", "failed"),
                    ("error_side", "!=", "user"),
                ],
                order="finished_at desc, id desc",
                limit=rules.consecutive_threshold,
            )
            outcomes[backend] = [
                alerts.Outcome(
                    alerts.SUCCEEDED if r.state == "succeeded" else alerts.SYSTEM, r.error_type, r.finished_at
                )
                for r in latest
            ]

        def kind_of(error_type):
            return contracts.error_type_info(error_type).get("alert", "rate")

        return failures, outcomes, kind_of
