// License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
/**
 * ai_generation client: the public API (docs/openapi.yaml) and its live updates, for a PWA.
 *
 * An ES module with no build step and no dependency: import it from the addon
 * (`/ai_generation/static/src/client/ai_generation_client.js`) or copy it into your app.
 *
 *     import { AiGenerationClient } from "/ai_generation/static/src/client/ai_generation_client.js";
 *     const client = new AiGenerationClient();            // same origin: the Odoo session cookie
 *     const accepted = await client.create({ backend: "external", model: "gpt-4o-mini", prompt: "…" });
 *     const watch = client.watch(accepted.request_id, (update) => render(update));
 *     const final = await watch.done;                     // succeeded | failed | cancelled
 *
 * Live updates come from the Odoo bus websocket (`/websocket`), subscribed the way Odoo 18's own bus
 * service does (`subscribe` with the last notification id seen, again after each reconnect). The
 * websocket knows only the session cookie: with an API key (another origin), or while the websocket
 * is unavailable, watch() polls the request's status URL instead.
 */

export const BUS_TYPE = "ai_generation/update";
export const TERMINAL_STATES = Object.freeze(["succeeded", "failed", "cancelled"]);
// bus/websocket.py WebsocketConnectionHandler._VERSION of Odoo 18.0: a browser sending another
// version is disconnected ("OUTDATED_VERSION"). /ai_generation/app/config.json tells the server's.
export const ODOO_WEBSOCKET_VERSION = "18.0-3";
const CLOSE_CLEAN = 1000;
const CLOSE_SESSION_EXPIRED = 4001;

export function isTerminal(status) {
    return TERMINAL_STATES.includes(status);
}

/** A new Idempotency-Key: a random UUID (crypto.randomUUID needs a secure context; this does not). */
export function newIdempotencyKey() {
    if (globalThis.crypto?.randomUUID) {
        return globalThis.crypto.randomUUID();
    }
    const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** An answer of the API that is not a success: status, code and field errors (schemas/error_response.json). */
export class ApiError extends Error {
    constructor(status, body, headers) {
        const error = body?.error || {};
        super(error.message || `HTTP ${status}`);
        this.name = "ApiError";
        this.status = status;
        this.code = error.code || (status === 0 ? "network_error" : "http_error");
        this.fields = error.fields || {};
        const retryAfter = headers?.get?.("Retry-After");
        this.retryAfter = retryAfter ? Number(retryAfter) : null;
    }

    get isNetworkError() {
        return this.status === 0;
    }
}

/**
 * The Odoo bus of the signed-in user over one websocket, shared by every watch of a client.
 * Reconnects with a growing delay (as Odoo's websocket worker: ×1.5 up to a maximum, plus jitter) and
 * subscribes again with `last`, so nothing sent while it was away is lost (within the bus's retention).
 */
export class OdooBus {
    constructor({url, WebSocketImpl, initialDelay = 1000, maxDelay = 60000, jitter = 1000}) {
        this.url = url;
        this.WebSocketImpl = WebSocketImpl;
        this.initialDelay = initialDelay;
        this.maxDelay = maxDelay;
        this.jitter = jitter;
        this.lastId = 0;
        this.state = "idle"; // idle | connecting | open | reconnecting | unavailable | closed
        this.listeners = new Set();
        this.stateListeners = new Set();
        this.delay = initialDelay;
        this.connections = 0;
        this._timer = null;
        this._ws = null;
    }

    /** Calls `listener(payload, notification)` for each ai_generation/update; returns an unsubscribe. */
    onUpdate(listener) {
        this.listeners.add(listener);
        this.start();
        return () => this.listeners.delete(listener);
    }

    /** Calls `listener(state, previous)` on each connection change; returns an unsubscribe. */
    onState(listener) {
        this.stateListeners.add(listener);
        return () => this.stateListeners.delete(listener);
    }

    get usable() {
        return this.state === "open";
    }

    start() {
        if (!this.WebSocketImpl) {
            this._setState("unavailable");
            return;
        }
        if (["connecting", "open", "reconnecting", "unavailable", "closed"].includes(this.state)) {
            return;
        }
        this._connect();
    }

    close() {
        clearTimeout(this._timer);
        this._setState("closed");
        if (this._ws) {
            this._ws.close(CLOSE_CLEAN);
            this._ws = null;
        }
    }

    _setState(state) {
        const previous = this.state;
        if (previous === state) {
            return;
        }
        this.state = state;
        for (const listener of [...this.stateListeners]) {
            listener(state, previous);
        }
    }

    _connect() {
        // "connecting" for the first attempt only: once one failed, "reconnecting" until one opens (not
        // back and forth on each attempt, which the PWA's banner and its aria-live would repeat)
        this._setState(this.connections || this.state === "reconnecting" ? "reconnecting" : "connecting");
        let ws;
        try {
            ws = new this.WebSocketImpl(this.url);
        } catch {
            this._retry();
            return;
        }
        this._ws = ws;
        ws.addEventListener("open", () => {
            this.connections++;
            this.delay = this.initialDelay;
            // the server adds the user's own partner channel to whatever the client asks for
            ws.send(JSON.stringify({event_name: "subscribe", data: {channels: [], last: this.lastId}}));
            this._setState("open");
        });
        ws.addEventListener("message", (event) => this._receive(event.data));
        ws.addEventListener("close", (event) => {
            if (this._ws !== ws || this.state === "closed") {
                return;
            }
            this._ws = null;
            if (
                event.code === CLOSE_SESSION_EXPIRED ||
                (event.code === CLOSE_CLEAN && event.reason === "OUTDATED_VERSION")
            ) {
                // signed out, or a server of another version: polling is all that is left
                this._setState("unavailable");
                return;
            }
            this._retry();
        });
    }

    _retry() {
        this._setState("reconnecting");
        const wait = this.delay + this.jitter * Math.random();
        this.delay = Math.min(this.delay * 1.5, this.maxDelay);
        this._timer = setTimeout(() => this._connect(), wait);
    }

    _receive(data) {
        let notifications;
        try {
            notifications = JSON.parse(data);
        } catch {
            return;
        }
        if (!Array.isArray(notifications)) {
            return;
        }
        for (const notification of notifications) {
            if (typeof notification.id === "number" && notification.id <= this.lastId) {
                continue; // already seen (a resubscription may replay)
            }
            this.lastId = Math.max(this.lastId, notification.id || 0);
            const message = notification.message || {};
            if (message.type !== BUS_TYPE) {
                continue;
            }
            for (const listener of [...this.listeners]) {
                listener(message.payload, notification);
            }
        }
    }
}

const STATE_RANK = {queued: 0, dispatched: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2};

/** What changes what a user reads: an update equal on these is not delivered twice. */
function fingerprint(view) {
    return JSON.stringify([
        view.status,
        view.message,
        view.retry_suggestion,
        view.specific_guidance,
        view.charge_note,
        view.credits_charged,
        Boolean(view.result),
    ]);
}

export class AiGenerationClient {
    /**
     * @param {object} [options]
     * @param {string} [options.baseUrl] Odoo's (or the gateway's) origin; "" = the page's own origin.
     * @param {string} [options.apiKey] an Odoo API key (another origin); without it, the session cookie.
     * @param {string} [options.websocketVersion] the server's bus version (config.json tells it).
     * @param {string} [options.websocketUrl] where the bus listens (default: baseUrl + /websocket).
     * @param {number} [options.pollInterval] ms between two status polls when there is no bus.
     * @param {number} [options.busGrace] ms a watch waits for the bus to open before it polls.
     */
    constructor(options = {}) {
        this.baseUrl = (options.baseUrl || "").replace(/\/$/, "");
        this.apiKey = options.apiKey || null;
        this.pollInterval = options.pollInterval ?? 2000;
        this.busGrace = options.busGrace ?? 3000;
        this.fetchImpl = options.fetch || globalThis.fetch.bind(globalThis);
        const WebSocketImpl = "WebSocket" in options ? options.WebSocket : globalThis.WebSocket;
        const version = options.websocketVersion || ODOO_WEBSOCKET_VERSION;
        const origin = this.baseUrl || globalThis.location?.origin || "";
        const url =
            options.websocketUrl ||
            `${origin.replace(/^http/, "ws")}/websocket?version=${encodeURIComponent(version)}`;
        // the websocket authenticates with the session cookie only: an API key gets no user channel
        this.bus = new OdooBus({
            url,
            WebSocketImpl: this.apiKey ? null : WebSocketImpl,
            initialDelay: options.reconnectDelay ?? 1000,
            maxDelay: options.maxReconnectDelay ?? 60000,
            jitter: options.reconnectJitter ?? 1000,
        });
    }

    // ------------------------------------------------------------------ the API
    async request(method, path, {body, headers = {}} = {}) {
        const init = {method, headers: {Accept: "application/json", ...headers}};
        if (this.apiKey) {
            init.headers.Authorization = `Bearer ${this.apiKey}`;
            init.credentials = "omit";
        } else {
            init.credentials = "same-origin";
        }
        if (body !== undefined) {
            init.headers["Content-Type"] = "application/json";
            init.body = JSON.stringify(body);
        }
        let response;
        try {
            response = await this.fetchImpl(`${this.baseUrl}${path}`, init);
        } catch (error) {
            throw Object.assign(
                new ApiError(0, {error: {message: `Cannot reach the server: ${error.message}`}}),
                {
                    cause: error,
                }
            );
        }
        let decoded = null;
        const type = response.headers.get("Content-Type") || "";
        if (type.includes("json")) {
            decoded = await response.json().catch(() => null);
        }
        if (!response.ok) {
            throw new ApiError(response.status, decoded, response.headers);
        }
        if (decoded === null && response.status !== 204) {
            // a success that is no JSON of the API (a captive portal's or a proxy's page): not an answer
            throw new ApiError(
                response.status,
                {
                    error: {
                        code: "not_json",
                        message: "The server answered with a page, not the API's JSON answer.",
                    },
                },
                response.headers
            );
        }
        return {body: decoded, response};
    }

    /**
     * POST /api/v1/generations. The Idempotency-Key (new unless given) comes back as
     * `idempotency_key`: send the same one again to retry a create whose answer was lost.
     */
    async create(generation, {idempotencyKey = newIdempotencyKey()} = {}) {
        const body = {task: "text", params: {}, ...generation};
        const {body: accepted, response} = await this.request("POST", "/api/v1/generations", {
            body,
            headers: {"Idempotency-Key": idempotencyKey},
        });
        return {
            ...accepted,
            idempotency_key: idempotencyKey,
            replayed: response.headers.get("Idempotent-Replayed") === "true",
        };
    }

    async get(requestId) {
        return (await this.request("GET", `/api/v1/generations/${encodeURIComponent(requestId)}`)).body;
    }

    async list({status, limit, offset} = {}) {
        const query = new URLSearchParams();
        for (const [name, value] of Object.entries({status, limit, offset})) {
            if (value !== undefined && value !== null) {
                query.set(name, String(value));
            }
        }
        const suffix = query.toString() ? `?${query}` : "";
        return (await this.request("GET", `/api/v1/generations${suffix}`)).body;
    }

    async credits() {
        return (await this.request("GET", "/api/v1/credits")).body;
    }

    async models() {
        return (await this.request("GET", "/api/v1/models")).body;
    }

    // ------------------------------------------------------------------ live updates
    /** Every ai_generation/update of the user from the bus (none without a bus); returns an unsubscribe. */
    subscribe(onUpdate) {
        return this.bus.onUpdate((payload) => onUpdate({...payload, source: "bus"}));
    }

    /**
     * Follow one request until it ends: `onUpdate(view)` for each change the user cares about, from the
     * bus, else from polling its status URL. A bus update without the result (too large for the bus)
     * is completed with one GET. Returns { stop(), done } where `done` resolves with the final view.
     */
    watch(requestId, onUpdate = () => {}, {pollInterval = this.pollInterval} = {}) {
        let stopped = false;
        let last = null;
        let pollTimer = null;
        let graceTimer = null;
        let resolveDone;
        let rejectDone;
        const done = new Promise((resolve, reject) => {
            resolveDone = resolve;
            rejectDone = reject;
        });
        const cleanups = [];

        const finish = () => {
            stopped = true;
            clearTimeout(pollTimer);
            clearTimeout(graceTimer);
            for (const cleanup of cleanups) {
                cleanup();
            }
        };
        const deliver = async (view, source) => {
            if (stopped || !view || view.request_id !== requestId) {
                return;
            }
            if (view.status === "succeeded" && view.result_available && !view.result) {
                try {
                    view = {...view, ...(await this.get(requestId))};
                } catch {
                    // the bus told what it could; the result stays one GET away
                }
            }
            if (stopped) {
                return;
            }
            // a slow poll answer must not take the user back (running after succeeded)
            if (last && (STATE_RANK[view.status] ?? 0) < (STATE_RANK[last.status] ?? 0)) {
                return;
            }
            if (last && fingerprint(view) === fingerprint(last)) {
                return;
            }
            last = {...view, source};
            onUpdate(last);
            if (isTerminal(view.status)) {
                finish();
                resolveDone(last);
            }
        };
        const fetchOnce = async () => {
            try {
                await deliver(await this.get(requestId), "poll");
            } catch (error) {
                if (error instanceof ApiError && [401, 404].includes(error.status)) {
                    finish();
                    rejectDone(error);
                }
                // a network error: the next poll or the bus tries again
            }
        };
        const poll = async () => {
            pollTimer = null;
            if (stopped || this.bus.usable) {
                return;
            }
            await fetchOnce();
            if (!stopped && !this.bus.usable) {
                pollTimer = setTimeout(poll, pollInterval);
            }
        };
        const startPolling = () => {
            if (!stopped && pollTimer === null && !this.bus.usable) {
                pollTimer = setTimeout(poll, 0);
            }
        };

        cleanups.push(this.bus.onUpdate((payload) => deliver(payload, "bus")));
        cleanups.push(
            this.bus.onState((state, previous) => {
                if (state === "open") {
                    clearTimeout(pollTimer);
                    pollTimer = null;
                    // what happened while the bus was away (its rows do not last): read it once
                    if (previous === "reconnecting") {
                        fetchOnce();
                    }
                } else if (state === "unavailable" || (state === "reconnecting" && previous === "open")) {
                    startPolling();
                }
            })
        );
        // where the request stands now (it may have moved before the watch began)
        fetchOnce().then(() => {
            if (stopped) {
                return;
            }
            if (this.bus.state === "unavailable") {
                startPolling();
            } else if (!this.bus.usable) {
                graceTimer = setTimeout(startPolling, this.busGrace);
            }
        });
        return {
            done,
            stop: () => {
                finish();
                resolveDone(last);
            },
            get last() {
                return last;
            },
        };
    }

    close() {
        this.bus.close();
    }
}
