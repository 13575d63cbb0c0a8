// The provider's answer as worker/backends/openai_backend.py reads it: a result body for Odoo, or a
// taxonomy signal (HTTP status, code, type, message, Retry-After, request id; transport errors as
// timeout / connection / other). Never throws: anything odd is a signal of kind "other".
const ctx = $('Attempt').first().json;
const { job, attempt } = ctx;
const answer = $input.first().json;

function header(headers, name) {
  for (const [k, v] of Object.entries(headers || {})) if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  return undefined;
}
function retryAfter(headers) {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined && !isNaN(parseFloat(ms))) return Math.max(0, parseFloat(ms) / 1000);
  const value = header(headers, 'retry-after');
  if (value === undefined || value === '') return null;
  if (!isNaN(Number(value))) return Math.max(0, Number(value));
  const when = Date.parse(value);
  return isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}
function usageOf(usage) {
  const out = {};
  for (const [k, v] of Object.entries(usage && typeof usage === 'object' ? usage : {}))
    if (Number.isSafeInteger(v) && v >= 0 && k && cleanText(k) === k) out[k] = v;
  return out;
}
const fail = (signal) => [{ json: { ...ctx, ok: false, signal } }];

function fromTransportError(error) {
  const text = JSON.stringify(error || {}).slice(0, 2000);
  const message = (error && (error.message || error.description)) || text;
  const cut = cleanText(String(message).slice(0, 500));
  if (/ETIMEDOUT|ESOCKETTIMEDOUT|ECONNABORTED|timeout/i.test(text)) return { kind: 'timeout', message: cut };
  if (/ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|socket hang up/i.test(text))
    return { kind: 'connection', message: cut };
  return { kind: 'other', message: cut };
}

try {
  if (answer.statusCode === undefined) return fail(fromTransportError(answer.error || answer));
  let body = answer.body;
  if (typeof body === 'string') {
    try { body = JSON.parse(body); } catch (e) { /* kept as text */ }
  }
  const status = answer.statusCode;
  if (status < 200 || status >= 300) {
    // as the openai SDK reads an error body (body.get("error", body)): an OpenAI-compatible server that
    // answers {"message", "code"} at the top level is read the same way by both tiers
    const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
    const data = isObject(body) ? (Object.prototype.hasOwnProperty.call(body, 'error') ? body.error : body) : body;
    const err = isObject(data) ? data : {};
    const text = typeof err.message === 'string' ? err.message : typeof body === 'string' ? body : `HTTP ${status}`;
    const present = (v) => v !== undefined && v !== null && v !== '';
    return fail({
      kind: 'http', status, code: present(err.code) ? String(err.code) : null, type: present(err.type) ? err.type : null,
      message: cleanText(String(text).slice(0, 500)),
      retry_after: retryAfter(answer.headers), provider_request_id: header(answer.headers, 'x-request-id') || null,
    });
  }
  if (!body || typeof body !== 'object') return fail({ kind: 'other', message: 'the provider answered without a JSON body' });
  let output = null;
  let outputUrl = null;
  let usage = usageOf(body.usage);
  if (job.task === 'image') {
    const urls = (Array.isArray(body.data) ? body.data : [])
      .map((d) => (d && typeof d.url === 'string' && d.url) || (d && typeof d.b64_json === 'string' && d.b64_json ? `data:image/png;base64,${d.b64_json}` : null))
      .filter(Boolean)
      .map(cleanText);
    if (!urls.length) return fail({ kind: 'other', message: 'the provider answered without an image' });
    usage.images = urls.length;
    outputUrl = urls[0];
    if (urls.length > 1) output = JSON.stringify(urls);
  } else {
    const choice = Array.isArray(body.choices) ? body.choices[0] : undefined;
    if (!choice) return fail({ kind: 'other', message: 'the provider answered without choices' });
    const msg = choice.message || {};
    const refusal = msg.refusal || refusedInParts(msg.content);
    if (choice.finish_reason === 'content_filter' || (refusal && !contentText(msg.content)))
      return fail({
        kind: 'http', status: 200, code: 'content_policy_violation',
        message: `finish_reason=${choice.finish_reason}; refusal=${!!refusal}`,
      });
    if (msg.content === null || msg.content === undefined)
      return fail({ kind: 'other', message: `empty answer (finish_reason=${choice.finish_reason})` });
    const text = contentText(msg.content);
    // as worker/sanitize.py's no_text_failure: the provider's fault, nothing charged
    if (text === null) return fail({ kind: 'other', message: `the provider's answer had no text (${typeof msg.content})` });
    output = cleanText(text);
  }
  const result = {
    generation_request_id: job.request_id, event_id: newEventId('result'), usage,
    backend: job.backend, attempt, occurred_at: nowIso(),
  };
  if (output !== null) result.output = output;
  if (outputUrl) result.output_url = outputUrl;
  if (!('output' in result) && !('output_url' in result)) result.output = '';
  const event = { event: 'success', backend: job.backend, at: Date.now() / 1000 };
  return [{ json: { ...ctx, ok: true, result, event } }];
} catch (error) {
  return fail({ kind: 'other', message: `${error.name}: ${error.message}`.slice(0, 500) });
}
