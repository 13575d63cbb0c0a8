// Alert state for the n8n consumer, the same rules as worker/alerting.py (AlertDetector), kept in this
// workflow's static data. Events arrive one at a time (the events queue is consumed with a parallel
// limit of 1), so no two executions ever write the counts at once. Per (backend, error_type):
// - AIGenerationHighErrorRate (warning): at least alert_rate_threshold errors within alert_window_seconds;
// - AIGenerationPersistentErrors (critical): an episode (no gap of alert_quiet_seconds) longer than
//   alert_persistent_seconds;
// - AIGenerationImmediateError (critical): an error whose taxonomy row says alert "immediate";
// per backend: AIGenerationConsecutiveFailures (critical, error_type "any"): alert_consecutive_threshold
// system-side failures in a row; only a success (or alert_quiet_seconds without a system-side failure)
// ends the row: a user-side failure neither counts nor breaks it (a user's error is not a recovery).
// Labels are exactly schemas/alerts.json's, with source "n8n": this workflow alone resolves what it raised.
// Active alerts are re-sent every alert_resend_seconds with an endsAt ahead, and resolved (endsAt now)
// after alert_quiet_seconds without a matching error (the streak one also at the backend's next success).
// The output is the Alertmanager API v2 body; nothing when no alert is due.
const cfg = settings;
const state = $getWorkflowStaticData('global');
const series = state.series || {};
const streaks = state.streaks || {};
const active = state.active || {};
const now = Date.now() / 1000;
const iso = (t) => new Date(t * 1000).toISOString();
const remember = (samples, id) => [id, ...samples.filter((s) => s !== id)].slice(0, cfg.alert_sample_size);

for (const item of $('Events').all()) {
  const e = item.json;
  if (e.event === 'success') {
    delete streaks[e.backend];
  } else if (e.event === 'failure') {
    const key = `${e.backend}|${e.error_type}`;
    let s = series[key];
    if (!s || e.at - s.last >= cfg.alert_quiet_seconds) {
      s = series[key] = { backend: e.backend, error_type: e.error_type, times: [], episode_start: e.at, last: e.at,
        samples: [], immediate: false, total: 0 };
    }
    s.times.push(e.at);
    s.last = e.at;
    s.total += 1;
    s.immediate = s.immediate || e.alert === 'immediate';
    s.samples = remember(s.samples, e.request_id);
    if (e.side !== 'user') {
      let k = streaks[e.backend];
      if (!k || e.at - k.last >= cfg.alert_quiet_seconds) // a pause ended the last row: this one is new
        k = streaks[e.backend] = { first: e.at, count: 0, types: {}, samples: [], last: e.at };
      k.count += 1;
      k.types[e.error_type] = (k.types[e.error_type] || 0) + 1;
      k.last = e.at;
      k.samples = remember(k.samples, e.request_id);
    }
  }
}

const holding = {};
function hold(alertname, backend, errorType, severity, summary, notes) {
  const labels = { alertname, service: cfg.alert_service, backend, error_type: errorType, severity, source: 'n8n' };
  holding[`${alertname}|${backend}|${errorType}`] = { labels, annotations: { summary, ...notes } };
}
for (const [key, s] of Object.entries(series)) {
  s.times = s.times.filter((t) => now - t <= cfg.alert_window_seconds);
  if (now - s.last >= cfg.alert_quiet_seconds) {
    delete series[key];
    continue;
  }
  const notes = {
    count: String(s.times.length), window_seconds: String(cfg.alert_window_seconds), episode_errors: String(s.total),
    episode_seconds: (s.last - s.episode_start).toFixed(0), sample_request_ids: s.samples.join(','),
  };
  if (s.times.length >= cfg.alert_rate_threshold)
    hold('AIGenerationHighErrorRate', s.backend, s.error_type, 'warning',
      `${s.times.length} ${s.error_type} errors on the ${s.backend} backend in ${cfg.alert_window_seconds}s`, notes);
  if (s.last - s.episode_start >= cfg.alert_persistent_seconds)
    hold('AIGenerationPersistentErrors', s.backend, s.error_type, 'critical',
      `${s.error_type} errors on the ${s.backend} backend for ${notes.episode_seconds}s`, notes);
  if (s.immediate)
    hold('AIGenerationImmediateError', s.backend, s.error_type, 'critical',
      `${s.error_type} on the ${s.backend} backend: needs attention now`, notes);
}
for (const [backend, k] of Object.entries(streaks)) {
  if (now - k.last >= cfg.alert_quiet_seconds) {
    delete streaks[backend];
    continue;
  }
  if (k.count < cfg.alert_consecutive_threshold) continue;
  const types = Object.entries(k.types).sort((a, b) => b[1] - a[1]);
  hold('AIGenerationConsecutiveFailures', backend, 'any', 'critical', `${k.count} failures in a row on the ${backend} backend`,
    { consecutive_failures: String(k.count), error_types: types.map(([t, n]) => `${t}=${n}`).join(','),
      sample_request_ids: k.samples.join(',') });
}

const ahead = Math.max(3 * cfg.alert_resend_seconds, 30);
const alerts = [];
for (const [key, notice] of Object.entries(holding)) {
  const current = active[key];
  const startsAt = current ? current.startsAt : iso(now);
  if (!current || now - current.sent >= cfg.alert_resend_seconds) {
    active[key] = { labels: notice.labels, annotations: notice.annotations, startsAt, sent: now };
    alerts.push({ labels: notice.labels, annotations: notice.annotations, startsAt, endsAt: iso(now + ahead) });
  }
}
for (const [key, current] of Object.entries(active)) {
  if (holding[key]) continue;
  const [alertname, backend, errorType] = key.split('|');
  // a row that began after the alert did is a new one: the alert's own row ended (success or a pause)
  const finished = alertname === 'AIGenerationConsecutiveFailures'
    ? !streaks[backend] || streaks[backend].count < cfg.alert_consecutive_threshold
      || streaks[backend].first > Date.parse(current.startsAt) / 1000
    : !series[`${backend}|${errorType}`];
  if (finished) {
    alerts.push({ labels: current.labels, annotations: current.annotations, startsAt: current.startsAt, endsAt: iso(now) });
    delete active[key];
  }
}
state.series = series;
state.streaks = streaks;
state.active = active;
return alerts.length ? [{ json: { alerts } }] : [];
