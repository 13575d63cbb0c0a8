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

// What worker/sanitize.py does to a provider's values, so that Odoo's strict parser takes every body:
// NUL and lone surrogates become U+FFFD (cut texts too: a cut in UTF-16 units can split a pair), usage
// keeps integers within 2**53, a content's text parts are joined (null when it has no text at all).
const cleanText = (text) =>
  String(text)
    .replace(/\u0000/g, '\uFFFD')
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
const partText = (part) => {
  if (typeof part === 'string') return part;
  const type = part && typeof part === 'object' ? (part.type === undefined ? 'text' : part.type) : null;
  return (type === 'text' || type === 'output_text') && typeof part.text === 'string' ? part.text : null;
};
const contentText = (content) => {
  if (content === null || content === undefined || typeof content === 'string') return content || '';
  if (!Array.isArray(content)) return null;
  const texts = content.map(partText).filter((t) => t !== null);
  return texts.length ? texts.join('') : null;
};
const refusedInParts = (content) =>
  Array.isArray(content) && content.some((part) => part && typeof part === 'object' && part.type === 'refusal');
