// Helpers shared by the Code nodes (build.py puts this text in front of each node's own code).
const settings = $('Settings').first().json;
const uuid = () =>
  globalThis.crypto && globalThis.crypto.randomUUID
    ? globalThis.crypto.randomUUID()
    : 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
        const r = (Math.random() * 16) | 0;
        return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
      });
const newEventId = (kind) => `${kind}-${uuid()}`;
const nowIso = () => new Date().toISOString();
const remainingSeconds = (job) => (Date.parse(job.deadline) - Date.now()) / 1000;
