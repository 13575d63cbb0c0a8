// Parse and validate one AIGenerationJobRequested v1 message (schemas/job_requested.v1.json, embedded by
// build.py as JOB_SCHEMAS) like worker/job.py does; a message that fails goes to the DLQ with the reason.
const JOB_SCHEMAS = __JOB_SCHEMAS__;

// The JSON Schema keywords the job contract uses, checked the way jsonschema does (first error wins).
// Own properties only ('constructor' in {} is true) and lengths in code points, as Python counts them.
const own = (object, name) => Object.prototype.hasOwnProperty.call(object, name);
function check(schema, value, path) {
  if (schema.$ref) return check(JOB_SCHEMAS[schema.$ref.split('#')[0]], value, path);
  const where = path || '(message)';
  const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  if ('const' in schema && value !== schema.const) return `${where}: must be ${JSON.stringify(schema.const)}`;
  if (schema.enum && !schema.enum.includes(value)) return `${where}: must be one of ${JSON.stringify(schema.enum)}`;
  if (schema.type) {
    const ok = {
      object: type === 'object', string: type === 'string', array: type === 'array', boolean: type === 'boolean',
      integer: type === 'number' && Number.isInteger(value), number: type === 'number',
    }[schema.type];
    if (!ok) return `${where}: must be of type ${schema.type}`;
  }
  if (type === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) return `${where}: too short`;
    if (schema.maxLength !== undefined && length > schema.maxLength) return `${where}: too long`;
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) return `${where}: does not match the pattern`;
    if (schema.format === 'date-time' && (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(value) || isNaN(Date.parse(value))))
      return `${where}: not an RFC 3339 date-time with a time zone`;
  }
  if (type === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return `${where}: below ${schema.minimum}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${where}: above ${schema.maximum}`;
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) return `${where}: must exceed ${schema.exclusiveMinimum}`;
  }
  if (type === 'object') {
    for (const name of schema.required || []) if (!own(value, name)) return `${where}: '${name}' is a required property`;
    for (const [name, inner] of Object.entries(value)) {
      const sub = own(schema.properties || {}, name) ? schema.properties[name] : undefined;
      if (!sub) {
        if (schema.additionalProperties === false) return `${where}: additional property '${name}' is not allowed`;
        continue;
      }
      // an error about the prompt (or the system prompt) names the field only: its text may quote it
      const error = check(sub, inner, path ? `${path}/${name}` : name);
      if (error && name === 'prompt' && !path) return 'prompt: invalid value';
      if (error && name === 'system' && path === 'params') return 'params/system: invalid value';
      if (error) return error;
    }
  }
  return null;
}

const message = $('Job queue').first().json;
const raw = typeof message.content === 'string' ? message.content : JSON.stringify(message.content);
let data;
try {
  data = JSON.parse(raw);
} catch (error) {
  return [{ json: { valid: false, reason: `not valid JSON: ${error.message}`.slice(0, 1000), raw } }];
}
const problem = check(JOB_SCHEMAS['job_requested.v1.json'], data, '');
if (problem) return [{ json: { valid: false, reason: `schema: ${problem}`.slice(0, 1000), raw } }];
return [{
  json: {
    valid: true,
    job: {
      request_id: data.generation_request_id, backend: data.backend, model: data.model, task: data.task,
      prompt: data.prompt, params: data.params, deadline: data.deadline, dispatch_attempt: data.attempt || 1,
    },
    attempt: 0,
  },
}];
