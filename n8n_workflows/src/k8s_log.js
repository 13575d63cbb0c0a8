// The model's result: the last non-empty line of its log, {"output"|"output_url", "usage"?}.
const ctx = $('Read Job status').first().json;
const { job, attempt } = ctx;
const answer = $input.first().json;
const fail = (signal) => [{ json: { ...ctx, ok: false, signal } }];
if (answer.statusCode === undefined || answer.statusCode < 200 || answer.statusCode >= 300)
  return fail(apiErrorSignal(answer, 'reading the pod log'));
// the HTTP node puts a text answer in "data" (its output property), a JSON-looking one may come parsed
const raw = answer.body !== undefined ? answer.body : answer.data;
const text = typeof raw === 'string' ? raw : JSON.stringify(raw === undefined ? '' : raw);
const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
let result = null;
try { result = lines.length ? JSON.parse(lines[lines.length - 1]) : null; } catch (e) { result = null; }
if (!result || typeof result !== 'object' || !(typeof result.output === 'string' || typeof result.output_url === 'string'))
  return fail({ kind: 'other', message: "the model's log does not end with a JSON result" });
const usage = {};
for (const [k, v] of Object.entries(result.usage && typeof result.usage === 'object' ? result.usage : {}))
  if (Number.isSafeInteger(v) && v >= 0 && k && cleanText(k) === k) usage[k] = v;
const body = {
  generation_request_id: job.request_id, event_id: newEventId('result'), usage,
  backend: job.backend, attempt, occurred_at: nowIso(),
};
// cleaned as worker/sanitize.py cleans them (Odoo refuses a NUL or a lone surrogate); an empty URL with
// no output is an empty output, as the Python backend reads it
if (typeof result.output === 'string') body.output = cleanText(result.output);
if (typeof result.output_url === 'string' && result.output_url) body.output_url = cleanText(result.output_url);
if (!('output' in body) && !('output_url' in body)) body.output = '';
const event = { event: 'success', backend: job.backend, at: Date.now() / 1000 };
return [{ json: { ...ctx, ok: true, result: body, event } }];
