// The result callback failed, after its retries. A 413 is Odoo refusing the result for its size (a
// body over twice ai_generation.max_result_bytes): reported as the free failure result_too_large, as
// worker/pipeline.py does. Anything else fails the execution as before: the message is redelivered
// and the error workflow reports it.
const error = $input.first().json.error || $input.first().json;
const said = JSON.stringify(error || {});
const status = String((error && (error.httpCode || error.status || error.statusCode)) || '');
const message = String((error && error.message) || '');
if (status === '413' || /^413\b/.test(message) || /status code 413\b/.test(message)) {
  const item = $('Succeeded?').first().json;
  return [{ json: { ...item, signal: { kind: 'result_too_large', message: 'odoo refused the result as too large (413)' } } }];
}
throw new Error(`Result callback failed: ${said.slice(0, 500)}`);
