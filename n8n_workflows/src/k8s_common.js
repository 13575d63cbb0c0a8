// Kubernetes helpers, the same rules as worker/backends/kubernetes_backend.py (pure functions over the
// Job and Pod JSON the API serves).
const STUCK_WAITING_REASONS = ['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'CrashLoopBackOff', 'CreateContainerConfigError'];
const k8sBase = () =>
  `${settings.k8s_host.replace(/\/+$/, '')}`;
const jobsUrl = () => `${k8sBase()}/apis/batch/v1/namespaces/${encodeURIComponent(settings.k8s_namespace)}/jobs`;
const podsUrl = () => `${k8sBase()}/api/v1/namespaces/${encodeURIComponent(settings.k8s_namespace)}/pods`;
const conditionOf = (obj, type) => (((obj || {}).status || {}).conditions || []).find((c) => c.type === type) || null;
function jobFinished(job) {
  const done = (((job || {}).status || {}).conditions || []).find(
    (c) => c.status === 'True' && (c.type === 'Complete' || c.type === 'Failed'));
  return done ? done.type : null;
}
const newestFirst = (pods) => [...pods].sort((a, b) =>
  String((b.metadata || {}).creationTimestamp || '').localeCompare(String((a.metadata || {}).creationTimestamp || '')));
function podSignal(pod, userInputExitCode) {
  const status = pod.status || {};
  if (status.reason === 'Evicted') return { kind: 'k8s', reason: 'Evicted', message: status.message || null };
  const containers = [...(status.initContainerStatuses || []), ...(status.containerStatuses || [])];
  for (const container of containers) {
    const state = container.state || {};
    const terminated = state.terminated;
    if (terminated && terminated.exitCode !== undefined && terminated.exitCode !== null && terminated.exitCode !== 0) {
      const code = terminated.exitCode;
      if (terminated.reason === 'OOMKilled') return { kind: 'k8s', reason: 'OOMKilled', exit_code: code, message: terminated.message || null };
      if (code === userInputExitCode) return { kind: 'k8s', reason: 'UserInputExitCode', exit_code: code };
      return { kind: 'k8s', reason: 'Error', exit_code: code, message: terminated.message || null };
    }
    const waiting = state.waiting;
    if (waiting && STUCK_WAITING_REASONS.includes(waiting.reason))
      return { kind: 'k8s', reason: waiting.reason, message: waiting.message || null };
  }
  const scheduled = conditionOf(pod, 'PodScheduled');
  if (scheduled && scheduled.status === 'False' && scheduled.reason === 'Unschedulable')
    return { kind: 'k8s', reason: 'Unschedulable', message: scheduled.message || null };
  return null;
}
function failedJobSignal(job, pods, userInputExitCode) {
  const condition = conditionOf(job, 'Failed') || {};
  const reason = condition.reason || 'Failed';
  const message = condition.message || null;
  const found = newestFirst(pods).map((p) => podSignal(p, userInputExitCode)).filter(Boolean);
  if (reason === 'DeadlineExceeded') return { kind: 'k8s', reason, message };
  if (reason === 'PodFailurePolicy') {
    const hit = found.find((s) => s.exit_code === userInputExitCode);
    return { kind: 'k8s', reason, exit_code: hit ? hit.exit_code : null, message };
  }
  if (found.length && found[0].reason !== 'Error') return found[0];
  return { kind: 'k8s', reason, exit_code: found.length ? found[0].exit_code : null, message };
}
function stuckSignal(pods, userInputExitCode) {
  for (const pod of newestFirst(pods)) {
    const signal = podSignal(pod, userInputExitCode);
    if (signal && (STUCK_WAITING_REASONS.includes(signal.reason) || signal.reason === 'Unschedulable')) return signal;
  }
  return null;
}
function apiErrorSignal(answer, what) {
  // worker.classification._kubernetes_signal: a 4xx about our own manifest is never the user's fault
  if (answer.statusCode === undefined) return fromTransportError(answer.error || answer);
  const status = answer.statusCode;
  const body = answer.body && typeof answer.body === 'object' ? answer.body : {};
  const message = `Kubernetes API ${status} ${body.reason || ''} (${what})`.slice(0, 500);
  if ([400, 409, 413, 422].includes(status)) return { kind: 'other', status, message };
  return { kind: 'http', status, message };
}
function fromTransportError(error) {
  const text = JSON.stringify(error || {}).slice(0, 2000);
  const message = String((error && (error.message || error.description)) || text).slice(0, 500);
  if (/ETIMEDOUT|ESOCKETTIMEDOUT|ECONNABORTED|timeout/i.test(text)) return { kind: 'timeout', message };
  if (/ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|socket hang up/i.test(text))
    return { kind: 'connection', message };
  return { kind: 'other', message };
}
