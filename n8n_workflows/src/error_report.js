// An execution of the generation workflow failed where it had no error path of its own. Find the job it
// was working on (the failed execution's data, read through the n8n API) and report it the safe way:
// a system failure (the user is never charged and always told), plus an alert for the operators.
const trigger = $('Error Trigger').first().json;
const execution = trigger.execution || {};
const fetched = $input.first().json;
const data = fetched && fetched.data && typeof fetched.data === 'object' ? fetched.data : {};
const runData = (data.resultData && data.resultData.runData) || {};

function lastJson(nodeName) {
  const runs = runData[nodeName];
  if (!Array.isArray(runs) || !runs.length) return null;
  const main = runs[runs.length - 1].data && runs[runs.length - 1].data.main;
  const first = main && main[0] && main[0][0];
  return first ? first.json : null;
}

let job = (lastJson('Read job') || {}).job || null;
if (!job) {
  // the job did not get through "Read job": the raw message still names the request
  const queued = lastJson('Job queue');
  const content = queued && queued.content;
  try {
    const parsed = typeof content === 'string' ? JSON.parse(content) : content || {};
    if (parsed.generation_request_id) job = { request_id: parsed.generation_request_id, backend: parsed.backend };
  } catch (e) { /* no request to report */ }
}
const REQUEST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const attemptRun = lastJson('Attempt');
const attempt = attemptRun && Number.isInteger(attemptRun.attempt) && attemptRun.attempt > 0 ? attemptRun.attempt : 1;
const backend = job && ['external', 'internal'].includes(job.backend) ? job.backend : 'external';
const error = execution.error || (trigger.trigger && trigger.trigger.error) || {};
const where = execution.lastNodeExecuted || (error.node && error.node.name) || 'trigger';
const why = String(error.message || error.description || 'unknown error').slice(0, 500);
const verdict = classify({ kind: 'other', message: why });

const out = {
  alert: [{
    labels: {
      alertname: 'AIGenerationWorkflowError', service: settings.alert_service, backend,
      error_type: verdict.error_type, severity: 'critical', source: 'n8n',
    },
    annotations: {
      summary: `n8n workflow "${(trigger.workflow || {}).name}" failed at node "${where}"`,
      description: why,
      sample_request_ids: job ? job.request_id : '',
      execution_id: String(execution.id || ''),
    },
    startsAt: nowIso(),
    endsAt: new Date(Date.now() + 1000 * settings.alert_quiet_seconds).toISOString(),
  }],
};
if (job && REQUEST_ID.test(job.request_id || '')) {
  out.failure = {
    generation_request_id: job.request_id, event_id: newEventId('failure'), error_type: verdict.error_type,
    is_system_error: true, is_user_error: false, error_code: 'n8n_workflow_error',
    detail: `unhandled error in n8n at node "${where}" (execution ${execution.id}): ${why}`.slice(0, 2000),
    backend, attempt, occurred_at: nowIso(), provider_status: null, provider_request_id: null,
  };
  out.notify = {
    generation_request_id: job.request_id, event_id: newEventId('notify'), error_type: verdict.error_type,
    user_message: TAXONOMY.messages.system, retry_suggestion: TAXONOMY.error_types[verdict.error_type].retry_suggestion,
  };
}
return [{ json: out }];
