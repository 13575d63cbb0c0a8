// Retry or give up, as worker/processing.py decides: retryable errors get up to max_attempts (the
// taxonomy may set fewer) with exponential backoff and jitter (tenacity's wait_exponential_jitter:
// initial * 2^(n-1) + uniform(0, jitter), capped), a Retry-After as a floor, never past the deadline.
// Giving up yields the failure and notify callbacks and the event for the alert workflow.
const item = $input.first().json;
const { job, attempt } = item;
let signal = item.signal;
let verdict = item.classification;
if (signal.kind === 'timeout' && remainingSeconds(job) <= 0) {
  // a client timeout cut short by the job's deadline is the worker deadline (model_timeout)
  signal = { ...signal, kind: 'deadline' };
  verdict = classify(signal);
}
const cap = verdict.max_attempts || settings.max_attempts;
if (verdict.retryable && attempt < cap && item.route !== 'expired') {
  const computed = Math.max(0, Math.min(
    settings.backoff_initial * 2 ** (attempt - 1) + Math.random() * settings.backoff_jitter, settings.backoff_max));
  // a server's Retry-After is a floor, honoured up to 300 s (worker/backoff.py's RETRY_AFTER_CAP)
  const delay = verdict.retry_after !== null && verdict.retry_after > computed ? Math.max(computed, Math.min(verdict.retry_after, 300)) : computed;
  if (delay < remainingSeconds(job)) {
    return [{ json: { job, attempt, retry: true, delay_s: Math.round(delay * 1000) / 1000 } }];
  }
}

let detail = `${verdict.error_type} on ${job.backend} after ${attempt} attempt(s): ${signal.message || signal.kind}`;
if (job.prompt && job.prompt.length >= 8) {
  detail = detail.split(job.prompt).join('[prompt]');
  // the message was cut short (500 characters): a quote of a long prompt ends it as the prompt's
  // beginning, which the split does not see (as worker/processing.py's _without_prompt)
  for (let size = Math.min(detail.length, job.prompt.length - 1); size >= 16; size -= 1) {
    if (job.prompt.startsWith(detail.slice(-size))) {
      detail = `${detail.slice(0, -size)}[prompt]`;
      break;
    }
  }
}
const failure = {
  generation_request_id: job.request_id, event_id: newEventId('failure'), error_type: verdict.error_type,
  is_system_error: verdict.side === 'system', is_user_error: verdict.side === 'user',
  error_code: cleanText(verdict.error_code.slice(0, 128)), detail: cleanText(detail.slice(0, 2000)), backend: job.backend,
  attempt, occurred_at: nowIso(),
  provider_status: signal.status === undefined ? null : signal.status,
  // the callback takes 256 characters (schemas/callback_failure.json), as worker/classification.py cuts it
  provider_request_id: typeof signal.provider_request_id === 'string' ? signal.provider_request_id.slice(0, 256) : null,
};
const notify = {
  generation_request_id: job.request_id, event_id: newEventId('notify'), error_type: verdict.error_type,
  user_message: verdict.user_message,
};
if (verdict.side === 'user') notify.specific_guidance = verdict.specific_guidance;
else notify.retry_suggestion = verdict.retry_suggestion;
const event = {
  event: 'failure', backend: job.backend, error_type: verdict.error_type, side: verdict.side, alert: verdict.alert,
  request_id: job.request_id, at: Date.now() / 1000,
};
return [{ json: { retry: false, failure, notify, event } }];
