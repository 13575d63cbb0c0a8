// The answer to the Job's creation: poll it from now on, or a failure signal.
const ctx = $('Still wanted?').first().json;
const answer = $input.first().json;
if (answer.statusCode !== undefined && answer.statusCode >= 200 && answer.statusCode < 300) {
  return [{ json: { ...ctx, next: 'poll', k8s: { ...ctx.call.k8s, stuck_since: {}, api_errors: 0 } } }];
}
return [{ json: { ...ctx, next: 'done', ok: false, signal: apiErrorSignal(answer, 'creating the Job') } }];
