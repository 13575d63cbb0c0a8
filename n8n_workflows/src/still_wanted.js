// Odoo's answer to the progress callback: a request already finished there (or cancelled) is skipped,
// like worker/processing.py does. Progress is best effort: no answer means "go on".
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const answer = $input.first().json;
const ctx = $('Attempt').first().json;
const body = answer && typeof answer.body === 'object' && answer.body ? answer.body : {};
if (answer && (answer.statusCode === 409 || (answer.statusCode === 200 && TERMINAL.includes(body.status)))) {
  return [];
}
return [{ json: ctx }];
