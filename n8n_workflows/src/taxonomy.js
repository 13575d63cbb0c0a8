// The taxonomy interpreter, identical in meaning to worker/classification.py: rules are tried in order,
// the first match wins, no match is "unknown". Inside a rule's "when" every key must match (AND); each
// key lists allowed values (OR). "code" matches signal.code OR signal.type; "status_range" is inclusive;
// "message_contains" is a case-insensitive substring. A missing signal field never matches.
// TAXONOMY is schemas/error_taxonomy.json, embedded by n8n_workflows/build.py (never edit it here).
const TAXONOMY = __TAXONOMY__;

const present = (value) => value !== undefined && value !== null;
const isIn = (value, allowed) => present(value) && allowed.includes(value);
const MATCHERS = {
  kind: (s, v) => isIn(s.kind, v),
  status: (s, v) => isIn(s.status, v),
  status_range: (s, v) => present(s.status) && v[0] <= s.status && s.status <= v[1],
  code: (s, v) => isIn(s.code, v) || isIn(s.type, v),
  reason: (s, v) => isIn(s.reason, v),
  exit_code: (s, v) => isIn(s.exit_code, v),
  message_contains: (s, v) => !!s.message && v.some((n) => s.message.toLowerCase().includes(n.toLowerCase())),
};

function ruleMatches(when, signal) {
  return Object.entries(when).every(([key, allowed]) => {
    if (!MATCHERS[key]) throw new Error(`taxonomy rule uses unsupported key ${key}`);
    return MATCHERS[key](signal, allowed);
  });
}

function errorCode(signal) {
  if (signal.code) return String(signal.code).slice(0, 128);
  if (signal.reason) return String(signal.reason).slice(0, 128);
  if (present(signal.status)) return `http_${signal.status}`;
  return signal.kind;
}

function classify(signal) {
  const rule = TAXONOMY.rules.find((r) => ruleMatches(r.when, signal));
  const errorType = rule ? rule.error_type : 'unknown';
  const row = TAXONOMY.error_types[errorType];
  const side = row.side;
  return {
    error_type: errorType,
    side,
    retryable: !!row.retryable,
    max_attempts: present(row.max_attempts) ? row.max_attempts : null,
    alert: row.alert || 'rate',
    user_message: TAXONOMY.messages[side],
    retry_suggestion: side === 'system' ? row.retry_suggestion || null : null,
    specific_guidance: side === 'user' ? row.specific_guidance || null : null,
    error_code: errorCode(signal),
    retry_after: row.honour_retry_after && present(signal.retry_after) ? signal.retry_after : null,
  };
}
