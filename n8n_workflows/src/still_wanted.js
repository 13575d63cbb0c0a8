// Odoo's answer to the progress callback, read as worker/processing.py reads it: a request already
// finished there (or cancelled) is skipped (the outcome is in Odoo: the message may go); a refusal for
// good (400/404/422: Odoo does not know the request, or our body is wrong) sends the job to the DLQ
// before any AI call; anything else (no answer, 5xx) means "go on": progress is best effort.
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const REFUSED = [400, 404, 422];
const answer = $input.first().json;
const ctx = $('Attempt').first().json;
const body = answer && typeof answer.body === 'object' && answer.body ? answer.body : {};
if (answer && (answer.statusCode === 409 || (answer.statusCode === 200 && TERMINAL.includes(body.status)))) {
  return [];
}
if (answer && REFUSED.includes(answer.statusCode)) {
  const message = $('Job queue').first().json;
  const raw = typeof message.content === 'string' ? message.content : JSON.stringify(message.content);
  const said = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body === undefined ? '' : answer.body);
  const reason = `odoo refused the progress callback: /ai/generation/progress answered ${answer.statusCode}: ${said.slice(0, 300)}`;
  return [{ json: { next: 'refused', reason, raw } }];
}
return [{ json: { ...ctx, next: 'run' } }];
