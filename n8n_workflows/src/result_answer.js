// Odoo took the result callback: the event for the alert workflow. A result Odoo failed instead of
// keeping it (status failed, not a duplicate: a result over ai_generation.max_result_bytes) is counted
// as the failure it is, as worker/pipeline.py counts it; Odoo told the owner itself, so nothing more
// goes to Odoo. Succeeded? is read, not Read answer: a Kubernetes result does not pass Read answer.
const answer = $input.first().json;
const item = $('Succeeded?').first().json;
let event = item.event;
if (answer.status === 'failed' && !answer.duplicate) {
  const verdict = classify({ kind: answer.error_type || 'result_too_large', message: 'odoo failed the request on its result' });
  event = {
    event: 'failure', backend: item.result.backend, error_type: verdict.error_type, side: verdict.side,
    alert: verdict.alert, request_id: item.result.generation_request_id, at: Date.now() / 1000,
  };
}
return [{ json: { event } }];
