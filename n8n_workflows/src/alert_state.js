// Alert state for the n8n consumers, kept in this workflow's static data. Events arrive one at a time
// (the events queue is consumed with a parallel limit of 1), so the counts are never lost to two
// executions writing at once. Rules (DESIGN "Alerts"):
// - high frequency: at least alert_rate_threshold errors of one (backend, error_type) within alert_window s;
// - persistent: errors of one (backend, error_type) going on for longer than alert_persistent_after s
//   (no gap longer than alert_window between them);
// - immediate: an error whose taxonomy row says alert "immediate" (quota, auth) fires at once.
// Active alerts are re-sent every alert_resend_interval s and resolved (endsAt now) once their key had no
// error for alert_window s. The output is the Alertmanager API v2 body; empty when nothing is due.
const state = $getWorkflowStaticData('global');
state.keys = state.keys || {};
const now = Date.now() / 1000;
const cfg = settings;

for (const item of $('Failure events').all()) {
  const event = item.json;
  if (event.event !== 'failure') continue;
  const key = `${event.backend}|${event.error_type}`;
  const entry = state.keys[key] || (state.keys[key] = {
    backend: event.backend, error_type: event.error_type, times: [], samples: [], since: event.at, firing: {},
  });
  if (entry.times.length && event.at - entry.times[entry.times.length - 1] > cfg.alert_window) entry.since = event.at;
  entry.times.push(event.at);
  entry.samples = [event.request_id, ...entry.samples.filter((s) => s !== event.request_id)].slice(0, 5);
  entry.immediate = entry.immediate || event.alert === 'immediate';
  entry.last = event.at;
}

const RULES = {
  AIGenerationHighErrorRate: { severity: 'warning', holds: (e) => e.times.length >= cfg.alert_rate_threshold },
  AIGenerationPersistentErrors: { severity: 'critical', holds: (e) => e.last - e.since >= cfg.alert_persistent_after },
  AIGenerationImmediateError: { severity: 'critical', holds: (e) => !!e.immediate },
};

const alerts = [];
for (const [key, entry] of Object.entries(state.keys)) {
  entry.times = entry.times.filter((t) => now - t <= cfg.alert_window);
  const quiet = !entry.times.length;
  if (quiet) entry.immediate = false;
  for (const [alertname, rule] of Object.entries(RULES)) {
    const labels = {
      alertname, service: 'ai-generation', backend: entry.backend, error_type: entry.error_type,
      severity: rule.severity, source: 'n8n',
    };
    const annotations = {
      summary: `${entry.error_type} errors on the ${entry.backend} backend`,
      count: String(entry.times.length), window_seconds: String(cfg.alert_window),
      sample_request_ids: entry.samples.join(','),
    };
    const firing = entry.firing[alertname];
    if (!quiet && rule.holds(entry)) {
      if (!firing || now - firing.sent >= cfg.alert_resend_interval) {
        const startsAt = firing ? firing.startsAt : new Date(now * 1000).toISOString();
        entry.firing[alertname] = { startsAt, sent: now };
        alerts.push({ labels, annotations, startsAt });
      }
    } else if (firing && quiet) {
      alerts.push({ labels, annotations, startsAt: firing.startsAt, endsAt: new Date(now * 1000).toISOString() });
      delete entry.firing[alertname];
    }
  }
  if (quiet && !Object.keys(entry.firing).length) delete state.keys[key];
}
return alerts.length ? [{ json: { alerts } }] : [];
