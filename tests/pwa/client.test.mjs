// The JS client's own logic under node's test runner (run by tests/pwa/test_client_js.py):
// the bus protocol (subscribe with `last`, again after a reconnect), watch() over the bus, its polling
// fallback, and what create() sends. The browser tests run the same file against the real stack.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AiGenerationClient, OdooBus } from "../../addons/ai_generation/static/src/client/ai_generation_client.js";

const RID = "11111111-1111-4111-8111-111111111111";
const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

/** A WebSocket double: records what the client sends; the test opens, feeds and closes it. */
class FakeSocket extends EventTarget {
    static all = [];
    constructor(url) {
        super();
        this.url = url;
        this.sent = [];
        FakeSocket.all.push(this);
    }
    send(data) {
        this.sent.push(JSON.parse(data));
    }
    close(code = 1000, reason = "") {
        this.dispatchEvent(Object.assign(new Event("close"), { code, reason }));
    }
    open() {
        this.dispatchEvent(new Event("open"));
    }
    push(...notifications) {
        this.dispatchEvent(Object.assign(new Event("message"), { data: JSON.stringify(notifications) }));
    }
    drop() {
        this.dispatchEvent(Object.assign(new Event("close"), { code: 1006, reason: "" }));
    }
}

function update(id, status, extra = {}) {
    return { id, message: { type: "ai_generation/update", payload: { request_id: RID, status, ...extra } } };
}

/** A fetch double answering from a queue of bodies per path; records each call. */
function fakeFetch(routes) {
    const calls = [];
    const fetch = async (url, init) => {
        calls.push({ url, init });
        const path = new URL(url, "http://odoo.test").pathname;
        const queue = routes[path];
        const body = Array.isArray(queue) ? (queue.length > 1 ? queue.shift() : queue[0]) : queue;
        const status = body?.__status || 200;
        return new Response(JSON.stringify(body), {
            status,
            headers: { "Content-Type": "application/json", ...(body?.__headers || {}) },
        });
    };
    return { fetch, calls };
}

function client(routes, options = {}) {
    FakeSocket.all = [];
    const { fetch, calls } = fakeFetch(routes);
    const made = new AiGenerationClient({
        baseUrl: "http://odoo.test",
        fetch,
        WebSocket: FakeSocket,
        reconnectDelay: 10,
        reconnectJitter: 0,
        pollInterval: 10,
        busGrace: 30,
        ...options,
    });
    return { client: made, calls };
}

test("the bus subscribes like Odoo's worker, and again with the last id after a reconnect", async () => {
    const bus = new OdooBus({ url: "ws://odoo.test/websocket?version=18.0-3", WebSocketImpl: FakeSocket, initialDelay: 5, jitter: 0 });
    FakeSocket.all = [];
    const seen = [];
    bus.onUpdate((payload, notification) => seen.push(notification.id));
    const first = FakeSocket.all[0];
    first.open();
    assert.deepEqual(first.sent, [{ event_name: "subscribe", data: { channels: [], last: 0 } }]);
    first.push(update(5, "running"), { id: 6, message: { type: "other", payload: {} } }, update(7, "succeeded"));
    assert.deepEqual(seen, [5, 7]);
    first.drop();
    assert.equal(bus.state, "reconnecting");
    await tick(20);
    const second = FakeSocket.all[1];
    assert.ok(second, "reconnected");
    second.open();
    assert.deepEqual(second.sent, [{ event_name: "subscribe", data: { channels: [], last: 7 } }]);
    second.push(update(7, "succeeded"), update(8, "failed"));
    assert.deepEqual(seen, [5, 7, 8], "a replayed notification is not delivered twice");
    bus.close();
});

test("before its first connection the bus says reconnecting once, not again on each failed attempt", async () => {
    FakeSocket.all = [];
    const bus = new OdooBus({ url: "ws://odoo.test/websocket", WebSocketImpl: FakeSocket, initialDelay: 5, jitter: 0 });
    const states = [];
    bus.onState((state) => states.push(state));
    bus.start();
    for (let attempt = 0; attempt < 3; attempt++) {
        FakeSocket.all[attempt].drop(); // the server cannot be reached yet
        await tick(20);
    }
    FakeSocket.all[3].open();
    assert.deepEqual(states, ["connecting", "reconnecting", "open"]);
    FakeSocket.all[3].drop();
    await tick(20);
    assert.deepEqual(states, ["connecting", "reconnecting", "open", "reconnecting"]);
    bus.close();
});

test("a server of another version or an expired session leaves the bus unavailable", () => {
    for (const [code, reason] of [[1000, "OUTDATED_VERSION"], [4001, ""]]) {
        FakeSocket.all = [];
        const bus = new OdooBus({ url: "ws://x/websocket", WebSocketImpl: FakeSocket, initialDelay: 5, jitter: 0 });
        bus.start();
        FakeSocket.all[0].open();
        FakeSocket.all[0].close(code, reason);
        assert.equal(bus.state, "unavailable");
    }
});

test("watch() follows the bus to the end and completes a result too large for it with one GET", async () => {
    const { client: api, calls } = client({
        [`/api/v1/generations/${RID}`]: [
            { request_id: RID, status: "queued", message: "accepted" },
            { request_id: RID, status: "succeeded", message: "ready", result: { output: "x".repeat(9000) } },
        ],
    });
    const seen = [];
    const watch = api.watch(RID, (view) => seen.push([view.status, view.source]));
    const socket = FakeSocket.all[0];
    socket.open();
    await tick();
    socket.push(update(1, "running", { message: "running" }));
    socket.push(update(2, "succeeded", { message: "ready", result_available: true, result_included: false, result: null }));
    const final = await watch.done;
    assert.equal(final.result.output.length, 9000);
    assert.deepEqual(seen, [["queued", "poll"], ["running", "bus"], ["succeeded", "bus"]]);
    assert.equal(calls.length, 2, "one GET to start, one for the result");
    api.close();
});

test("watch() never goes back: a slow poll answer after the bus's outcome is ignored", async () => {
    const { client: api } = client({ [`/api/v1/generations/${RID}`]: { request_id: RID, status: "running", message: "m" } });
    const seen = [];
    const watch = api.watch(RID, (view) => seen.push(view.status));
    FakeSocket.all[0].open();
    FakeSocket.all[0].push(update(1, "failed", { message: "AI processing failed." }));
    await watch.done;
    await tick(20);
    assert.deepEqual(seen, ["failed"]);
    api.close();
});

test("with an API key there is no bus: watch() polls the status URL until the end", async () => {
    const { client: api, calls } = client(
        {
            [`/api/v1/generations/${RID}`]: [
                { request_id: RID, status: "queued", message: "a" },
                { request_id: RID, status: "running", message: "b" },
                { request_id: RID, status: "failed", message: "c", is_system_error: true },
            ],
        },
        { apiKey: "key-123" }
    );
    const seen = [];
    const final = await api.watch(RID, (view) => seen.push(view.status)).done;
    assert.equal(final.status, "failed");
    assert.deepEqual(seen, ["queued", "running", "failed"]);
    assert.equal(FakeSocket.all.length, 0, "no websocket is opened for an API key");
    assert.equal(calls[0].init.headers.Authorization, "Bearer key-123");
    assert.equal(calls[0].init.credentials, "omit");
});

test("while the websocket cannot connect, watch() polls after the grace period", async () => {
    const { client: api } = client({
        [`/api/v1/generations/${RID}`]: [
            { request_id: RID, status: "queued", message: "a" },
            { request_id: RID, status: "succeeded", message: "b", result: { output: "ok" } },
        ],
    });
    const final = await api.watch(RID).done; // no FakeSocket is ever opened
    assert.equal(final.source, "poll");
    assert.equal(final.result.output, "ok");
    api.close();
});

test("create() sends JSON with an Idempotency-Key and hands the key back for a retry", async () => {
    const { client: api, calls } = client({
        "/api/v1/generations": { request_id: RID, status: "queued", credits_reserved: 7, status_url: "/x", __status: 202 },
    });
    const accepted = await api.create({ backend: "external", model: "m", prompt: "p" });
    const sent = calls[0];
    assert.equal(sent.init.method, "POST");
    assert.equal(sent.init.headers["Content-Type"], "application/json");
    assert.match(sent.init.headers["Idempotency-Key"], /^[0-9a-f-]{36}$/);
    assert.equal(accepted.idempotency_key, sent.init.headers["Idempotency-Key"]);
    assert.deepEqual(JSON.parse(sent.init.body), { task: "text", params: {}, backend: "external", model: "m", prompt: "p" });
    assert.equal(sent.init.credentials, "same-origin");
    api.close();
});

test("an API error carries status, code, fields and Retry-After", async () => {
    const { client: api } = client({
        "/api/v1/credits": {
            __status: 429,
            __headers: { "Retry-After": "3" },
            error: { code: "rate_limited", message: "Too many requests", fields: { a: "b" } },
        },
    });
    await assert.rejects(api.credits(), (error) => {
        assert.equal(error.status, 429);
        assert.equal(error.code, "rate_limited");
        assert.equal(error.retryAfter, 3);
        assert.deepEqual(error.fields, { a: "b" });
        return true;
    });
    api.close();
});
