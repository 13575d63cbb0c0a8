// Odoo took the result callback: the event for the alert workflow. A result Odoo failed instead of
// keeping it (a result over ai_generation.max_result_bytes) is counted as the failure it is, as
// worker/pipeline.py counts it; Odoo told the owner itself, so nothing more goes to Odoo.
// failed_by_this_event says so for a repeat whose first answer was lost too; an Odoo without it said
// so only by a first answer (failed, not a duplicate). The verdict is the taxonomy's row for the error
// type Odoo names. Succeeded? is read, not Read answer: a Kubernetes result does not pass Read answer.
const answer = $input.first().json;
const item = $('Succeeded?').first().json;
let event = item.event;
const failedByThis = 'failed_by_this_event' in answer ? answer.failed_by_this_event : !answer.duplicate;
if (answer.status === 'failed' && failedByThis) {
  const named = answer.error_type || 'result_too_large';
  const errorType = Object.prototype.hasOwnProperty.call(TAXONOMY.error_types, named) ? named : 'unknown';
  const row = TAXONOMY.error_types[errorType];
  event = {
    event: 'failure', backend: item.result.backend, error_type: errorType, side: row.side,
    alert: row.alert || 'rate', request_id: item.result.generation_request_id, at: Date.now() / 1000,
  };
}
return [{ json: { event } }];
