// One look at the Job and its pods: finished (read the log, or the failure's signal), stuck past the
// grace period, past the deadline, or poll again (a few failed polls are tolerated).
const ctx = $('Wait for the Job').first().json;
const k8s = { ...ctx.k8s };
const jobAnswer = $('Get Job').first().json;
const podsAnswer = $input.first().json;
const code = settings.k8s_user_input_exit_code;
const now = Date.now() / 1000;
const done = (signal) => [{ json: { ...ctx, k8s, next: 'done', ok: false, signal } }];

const okAnswer = (a) => a.statusCode !== undefined && a.statusCode >= 200 && a.statusCode < 300 && a.body && typeof a.body === 'object';
if (jobAnswer.statusCode === 404) return done({ kind: 'k8s', reason: 'JobDeleted', message: `Job ${k8s.name} vanished` });
if (!okAnswer(jobAnswer) || !okAnswer(podsAnswer)) {
  k8s.api_errors = (k8s.api_errors || 0) + 1;
  if (k8s.api_errors > settings.k8s_api_error_tolerance)
    return done(apiErrorSignal(okAnswer(jobAnswer) ? podsAnswer : jobAnswer, 'polling the Job'));
} else {
  k8s.api_errors = 0;
  const job = jobAnswer.body;
  const pods = podsAnswer.body.items || [];
  const finished = jobFinished(job);
  if (finished === 'Complete') {
    const succeeded = newestFirst(pods).filter((p) => (p.status || {}).phase === 'Succeeded');
    if (!succeeded.length) return done({ kind: 'other', message: `Job ${k8s.name} completed without a succeeded pod` });
    return [{ json: { ...ctx, k8s: { ...k8s, pod: succeeded[0].metadata.name }, next: 'log' } }];
  }
  if (finished === 'Failed') return done(failedJobSignal(job, pods, code));
  const stuck = stuckSignal(pods, code);
  if (!stuck) k8s.stuck_since = {};
  else {
    const since = k8s.stuck_since[stuck.reason] || now;
    k8s.stuck_since = { ...k8s.stuck_since, [stuck.reason]: since };
    if (now - since >= settings.k8s_pending_grace_seconds) return done(stuck);
  }
}
if (now >= k8s.deadline_at) return done({ kind: 'deadline', message: `Job ${k8s.name} did not finish in time` });
return [{ json: { ...ctx, k8s, next: 'poll' } }];
