// One more attempt for the job: the progress callback body and the backend request, or "expired"
// when the job's deadline has passed (then the failure is model_timeout, as in worker/processing.py).
const TEXT_PARAMS = ['temperature', 'top_p', 'seed'];
const IMAGE_PARAMS = ['n', 'size', 'quality'];

const item = $input.first().json;
const job = item.job;
const attempt = item.attempt + 1;
const remaining = remainingSeconds(job);
if (remaining <= 0) {
  const message = attempt === 1 ? "the job's deadline passed before the worker started it" : "the job's deadline passed";
  return [{ json: { job, attempt: Math.max(1, attempt - 1), route: 'expired', signal: { kind: 'deadline', message } } }];
}

const progress = {
  generation_request_id: job.request_id, event_id: newEventId('progress'), state: 'running',
  attempt, backend: job.backend, occurred_at: nowIso(),
};
if (attempt > 1) progress.detail = `attempt ${attempt}`;

const params = job.params || {};
let call;
if (job.backend === 'external') {
  const base = settings.openai_base_url.replace(/\/+$/, '');
  let body;
  if (job.task === 'image') {
    body = { model: job.model, prompt: job.prompt };
    for (const k of IMAGE_PARAMS) if (params[k] !== undefined && params[k] !== null) body[k] = params[k];
    if (settings.openai_image_response_format) body.response_format = settings.openai_image_response_format;
  } else {
    const messages = [];
    if (params.system) messages.push({ role: 'system', content: params.system });
    messages.push({ role: 'user', content: job.prompt });
    body = { model: job.model, messages };
    for (const k of TEXT_PARAMS) if (params[k] !== undefined && params[k] !== null) body[k] = params[k];
    if (params.max_tokens !== undefined && params.max_tokens !== null) body[settings.openai_max_tokens_param] = params.max_tokens;
  }
  const url = `${base}/${job.task === 'image' ? 'images/generations' : 'chat/completions'}`;
  call = { url, body, timeout_ms: Math.max(1, Math.round(1000 * Math.min(settings.request_timeout, remaining))) };
} else {
  call = { timeout_ms: Math.max(1, Math.round(1000 * Math.min(settings.request_timeout, remaining))) };
}
return [{ json: { job, attempt, route: 'run', progress, call } }];
