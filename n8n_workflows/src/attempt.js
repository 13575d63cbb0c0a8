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
  // worker/backends/kubernetes_backend.py KubernetesBackend.manifest: one batch/v1 Job per attempt
  const budget = Math.min(settings.request_timeout, remaining);
  const json = (text, fallback) => { try { return text ? JSON.parse(text) : fallback; } catch (e) { return fallback; } };
  const base = `${settings.k8s_job_name_prefix}-${job.request_id}-a${job.dispatch_attempt}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
  const suffix = uuid().replace(/-/g, '').slice(0, 6);
  const name = `${base.slice(0, 63 - suffix.length - 1).replace(/^-+|-+$/g, '')}-${suffix}`;
  const labels = {
    'app.kubernetes.io/managed-by': 'aigen-n8n', 'app.kubernetes.io/component': 'generation',
    'aigen/request-id': job.request_id, 'aigen/attempt': String(job.dispatch_attempt),
  };
  const env = {
    ...json(settings.k8s_extra_env, {}),
    AIGEN_REQUEST_ID: job.request_id, AIGEN_TASK: job.task, AIGEN_MODEL: job.model, AIGEN_PROMPT: job.prompt,
    AIGEN_PARAMS_JSON: JSON.stringify(Object.fromEntries(Object.entries(job.params || {}).sort())),
    AIGEN_USER_INPUT_EXIT_CODE: String(settings.k8s_user_input_exit_code),
  };
  const container = {
    name: settings.k8s_container_name, image: settings.k8s_image,
    env: Object.entries(env).map(([k, v]) => ({ name: k, value: String(v) })),
  };
  const command = settings.k8s_command ? settings.k8s_command.split(',').map((p) => p.trim()).filter(Boolean) : [];
  if (command.length) container.command = command;
  const resources = json(settings.k8s_resources, {});
  if (Object.keys(resources).length) container.resources = resources;
  const podSpec = { restartPolicy: 'Never', automountServiceAccountToken: false, containers: [container] };
  if (settings.k8s_service_account) podSpec.serviceAccountName = settings.k8s_service_account;
  const nodeSelector = json(settings.k8s_node_selector, {});
  if (Object.keys(nodeSelector).length) podSpec.nodeSelector = nodeSelector;
  const manifest = {
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name, namespace: settings.k8s_namespace, labels },
    spec: {
      activeDeadlineSeconds: Math.max(1, Math.min(settings.k8s_active_deadline_seconds, Math.ceil(budget))),
      ttlSecondsAfterFinished: settings.k8s_ttl_seconds_after_finished,
      backoffLimit: settings.k8s_backoff_limit,
      podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: {
        containerName: settings.k8s_container_name, operator: 'In', values: [settings.k8s_user_input_exit_code] } }] },
      template: { metadata: { labels }, spec: podSpec },
    },
  };
  call = {
    url: jobsUrl(), body: manifest, timeout_ms: Math.round(1000 * settings.k8s_request_timeout),
    k8s: { name, deadline_at: Date.now() / 1000 + budget },
  };
}
return [{ json: { job, attempt, route: 'run', progress, call } }];
