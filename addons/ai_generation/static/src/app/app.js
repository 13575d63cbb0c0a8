// License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
// The reference PWA: sign in with the Odoo session, see credits and prices, ask for a generation and
// follow every request live (the Odoo bus through the client's watch(), polling when there is no bus).
import {AiGenerationClient, ApiError, isTerminal, newIdempotencyKey} from "./client.js";

const APP = "/ai_generation/app";
const STATUS_LABELS = {
    queued: "Queued",
    dispatched: "Queued",
    running: "Running",
    succeeded: "Succeeded",
    failed: "Failed",
    cancelled: "Cancelled",
};
// an answer that is no JSON of the API: a captive portal's or a proxy's sign-in page, say
const NOT_THE_API =
    "The server answered with a page, not the API's answer: check your connection and sign in again.";
const $ = (id) => document.getElementById(id);
const RECOVERY_FIRST_MS = 2000;
const RECOVERY_MAX_MS = 30000;
const app = {
    config: null,
    client: null,
    models: [],
    items: new Map(),
    watches: new Map(),
    unsubscribe: [],
    submitting: false, // a create on its way
    unanswered: null, // {asked, key}: the create whose answer was lost, sent again with its key
    recovery: null, // the timer of the next try to reach the server while offline
    recoveryDelay: RECOVERY_FIRST_MS, // doubles while the tries fail, back to the first once online
    recovering: false, // a try on its way (the timer's, or the browser's online event's)
};

// ---------------------------------------------------------------------------------------- start
registerServiceWorker();
document.addEventListener("DOMContentLoaded", start);

async function start() {
    bindForms();
    window.addEventListener("online", () => recover());
    app.config = await loadConfig();
    // offline, the service worker answers its copy of the config: without the user, marked offline
    if (!app.config || app.config.offline) {
        showOffline();
        return;
    }
    $("db-field").hidden = Boolean(app.config.db);
    if (app.config.user) {
        await enter();
    } else {
        showSignIn();
    }
}

function registerServiceWorker() {
    if ("serviceWorker" in navigator) {
        navigator.serviceWorker.register(`${APP}/sw.js`, {scope: APP}).catch(() => {
            // no offline shell (e.g. a non-secure origin): the app works the same online
        });
    }
}

async function loadConfig() {
    try {
        const response = await fetch(`${APP}/config.json`, {credentials: "same-origin", cache: "no-store"});
        return response.ok ? await response.json() : null;
    } catch {
        return null;
    }
}

function showOffline() {
    setConnection(
        "The server cannot be reached right now. The app will work again once you are back online."
    );
    document.body.dataset.offline = "true";
    $("sign-in-section").hidden = true;
    scheduleRecovery();
}

// offline is a state the app leaves by itself: it tries again, sooner when the browser says it is back,
// less often while the tries fail (a config that answers while the API does not, say)
function scheduleRecovery() {
    if (app.recovery === null) {
        const delay = app.recoveryDelay;
        app.recoveryDelay = Math.min(delay * 2, RECOVERY_MAX_MS);
        app.recovery = setTimeout(recover, delay);
    }
}

// the server answered (a sign-in, a sign-out, a try that got through): no try is left to make
function leaveOffline() {
    clearTimeout(app.recovery);
    app.recovery = null;
    app.recoveryDelay = RECOVERY_FIRST_MS;
    if (document.body.dataset.offline === "true") {
        delete document.body.dataset.offline;
        setConnection("");
    }
}

async function recover() {
    clearTimeout(app.recovery);
    app.recovery = null;
    if (document.body.dataset.offline !== "true" || app.recovering) {
        return;
    }
    app.recovering = true;
    try {
        const config = await loadConfig();
        if (document.body.dataset.offline !== "true") {
            return; // the user signed in or out meanwhile: the page is theirs
        }
        if (!config || config.offline) {
            scheduleRecovery();
            return;
        }
        const sameUser = Boolean(config.user) && config.user.login === app.config?.user?.login;
        const draft = sameUser ? $("prompt").value : "";
        app.config = config;
        $("db-field").hidden = Boolean(config.db);
        if (!config.user) {
            leaveOffline();
            leave();
            showSignIn();
            return;
        }
        await enter(); // offline again if the API is still away (the next try waits longer)
        if (draft && !$("prompt").value) {
            $("prompt").value = draft; // what the user was writing when the server went away
        }
    } finally {
        app.recovering = false;
    }
}

function setConnection(text) {
    $("connection").textContent = text;
}

// ---------------------------------------------------------------------------------------- sign in/out
function showSignIn() {
    $("account").hidden = true;
    $("generate-section").hidden = true;
    $("history-section").hidden = true;
    $("sign-in-section").hidden = false;
    $("sign-in-error").textContent = "";
    (app.config?.db ? $("login") : $("db")).focus();
}

async function signIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const login = $("login").value.trim();
    const password = $("password").value;
    const db = app.config?.db || $("db").value.trim();
    if (!login || !password || !db) {
        $("sign-in-error").textContent = db
            ? "Enter your login and password."
            : "Enter the database, your login and password.";
        return;
    }
    form.querySelector("button[type=submit]").disabled = true;
    try {
        const response = await fetch("/web/session/authenticate", {
            method: "POST",
            credentials: "same-origin",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({jsonrpc: "2.0", method: "call", params: {db, login, password}}),
        });
        if (response.status === 429) {
            throw new Error("Too many sign-in attempts. Wait a minute and try again.");
        }
        if (!response.ok) {
            throw new Error(
                response.status >= 500
                    ? "The server cannot be reached. Try again in a moment."
                    : `The sign-in was refused (HTTP ${response.status}).`
            );
        }
        const answer = await response.json().catch(() => null);
        if (!answer) {
            throw new Error(NOT_THE_API);
        }
        if (answer.error) {
            throw new Error("Wrong login or password.");
        }
        if (!answer.result?.uid) {
            // Odoo's answer when the password was right but the account asks for a second factor
            throw new Error(
                "This account signs in with two-step verification, which this app cannot ask for: " +
                    "sign in on the server's login page (/web/login), then open the app again."
            );
        }
        $("password").value = "";
        app.config = (await loadConfig()) || app.config;
        await enter();
    } catch (error) {
        $("sign-in-error").textContent =
            error instanceof TypeError ? "The server cannot be reached." : error.message;
        $("password").focus();
    } finally {
        form.querySelector("button[type=submit]").disabled = false;
    }
}

async function signOut() {
    const button = $("sign-out");
    button.disabled = true;
    let ended = false;
    try {
        const response = await fetch("/web/session/destroy", {
            method: "POST",
            credentials: "same-origin",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({jsonrpc: "2.0", method: "call", params: {}}),
        });
        const answer = response.ok ? await response.json().catch(() => null) : null;
        // 100: the session had already ended (expired, or signed out in another tab)
        ended = Boolean(answer) && (!answer.error || answer.error.code === 100);
    } catch {
        ended = false;
    } finally {
        button.disabled = false;
    }
    if (!ended) {
        // on a shared device, "signed out" must be true: the session is still valid on the server
        setConnection(
            "You are still signed in: the server could not be reached to sign you out. Try again in a moment."
        );
        button.focus();
        return;
    }
    setConnection("");
    leaveOffline();
    leave();
    app.config = (await loadConfig()) || app.config;
    showSignIn();
}

// ---------------------------------------------------------------------------------------- signed in
async function enter() {
    leave();
    app.client = new AiGenerationClient({websocketVersion: app.config.websocket_version});
    app.unsubscribe.push(app.client.subscribe(onBusUpdate));
    app.unsubscribe.push(app.client.bus.onState(showBusState));
    $("sign-in-section").hidden = true;
    $("account").hidden = false;
    $("generate-section").hidden = false;
    $("history-section").hidden = false;
    try {
        await Promise.all([refreshCredits(), loadModels(), loadHistory()]);
    } catch (error) {
        if (error instanceof ApiError && error.status === 401) {
            leaveOffline(); // the server answered: the session has ended
            leave();
            showSignIn();
            return;
        }
        if (error instanceof ApiError && (error.isNetworkError || error.status >= 502)) {
            showOffline(); // the shell came from the service worker's cache
            return;
        }
        reportApiError(error, $("generate-error"));
    }
    leaveOffline();
    document.body.dataset.ready = "true";
    $("prompt").focus();
}

function leave() {
    for (const watch of app.watches.values()) {
        watch.stop();
    }
    app.watches.clear();
    for (const unsubscribe of app.unsubscribe.splice(0)) {
        unsubscribe();
    }
    app.client?.close();
    app.client = null;
    app.items.clear();
    app.unanswered = null;
    $("history").replaceChildren();
    // nothing of this user stays on the page for the next one (a shared device)
    $("generate-form").reset();
    $("model").replaceChildren();
    $("credits-available").textContent = "";
    $("generate-error").textContent = "";
    delete document.body.dataset.ready;
}

function showBusState(state) {
    document.body.dataset.bus = state;
    if (document.body.dataset.offline === "true") {
        return; // "the server cannot be reached" says more than the bus reconnecting behind it
    }
    const texts = {
        reconnecting:
            "Live updates paused: reconnecting… Your requests are checked every few seconds meanwhile.",
        unavailable: "Live updates are unavailable: your requests are checked every few seconds.",
    };
    setConnection(texts[state] || "");
}

async function refreshCredits() {
    const credits = await app.client.credits();
    showCredits(credits.available);
}

function showCredits(available) {
    $("credits-available").textContent = String(available);
    app.available = available;
    showPrice();
}

async function loadModels() {
    const catalogue = await app.client.models();
    app.models = catalogue.models;
    const select = $("model");
    select.replaceChildren(
        ...app.models.map((entry, index) => {
            const option = document.createElement("option");
            option.value = String(index);
            const unit = entry.price_per === "image" ? "per image" : "per request";
            option.textContent = `${entry.model} · ${entry.task} · ${entry.price} ${plural(entry.price, "credit")} ${unit}`;
            return option;
        })
    );
    showCredits(catalogue.credits.available);
}

function showPrice() {
    const entry = app.models[Number($("model").value)];
    if (!entry) {
        $("model-price").textContent = app.models.length ? "" : "No model is offered yet.";
        return;
    }
    const unit = entry.price_per === "image" ? "per image" : "per request";
    const enough = (app.available ?? 0) >= entry.price;
    $("model-price").textContent =
        `${entry.backend === "internal" ? "Internal" : "External"} backend, ${entry.price} ${plural(entry.price, "credit")} ${unit}.` +
        (enough ? "" : " You do not have enough credits for it.");
}

async function loadHistory() {
    const client = app.client;
    const listing = await client.list({limit: 20});
    if (app.client !== client) {
        return; // signed out meanwhile: nothing of this user goes on the page
    }
    const incomplete = [];
    for (const item of [...listing.items].reverse()) {
        upsert(item);
        if (!isTerminal(item.status)) {
            follow(item.request_id);
        } else if (item.result_available && !item.result_included) {
            incomplete.push(item.request_id);
        }
    }
    // a list page leaves out large results (an image as a data: URL): one GET each, newest first, in
    // the background (the page is ready meanwhile), and none of them once the user has signed out
    completeResults(client, incomplete.reverse());
}

async function completeResults(client, requestIds) {
    for (const requestId of requestIds) {
        let view;
        try {
            view = await client.get(requestId);
        } catch {
            continue; // the row stays as the list showed it; a reload asks again
        }
        if (app.client !== client) {
            return;
        }
        upsert(view);
    }
}

// ---------------------------------------------------------------------------------------- asking
async function submitGeneration(event) {
    event.preventDefault();
    const entry = app.models[Number($("model").value)];
    const prompt = $("prompt").value.trim();
    $("generate-error").textContent = "";
    if (!entry) {
        $("generate-error").textContent = "Choose a model.";
        $("model").focus();
        return;
    }
    if (!prompt) {
        $("generate-error").textContent = "Write a prompt first.";
        $("prompt").focus();
        return;
    }
    // one create at a time: Ctrl+Enter submits even while the button is disabled
    if (app.submitting) {
        return;
    }
    const button = $("generate");
    app.submitting = true;
    button.disabled = true;
    try {
        await ask({backend: entry.backend, model: entry.model, task: entry.task, prompt, params: {}});
        $("prompt").value = "";
    } catch (error) {
        reportApiError(error, $("generate-error"));
    } finally {
        app.submitting = false;
        button.disabled = false;
        $("prompt").focus();
    }
}

/**
 * Create a request. Until a create is accepted, asking for the same generation again sends the same
 * Idempotency-Key: when the answer was lost (no answer, a proxy's page, a 5xx after the server accepted
 * it), the server answers the request it accepted instead of holding (and charging) the credits twice;
 * a refusal (402, 429...) is not kept by the server, so the same key is asked afresh.
 */
async function ask(generation) {
    const asked = JSON.stringify(generation);
    const key = app.unanswered?.asked === asked ? app.unanswered.key : newIdempotencyKey();
    app.unanswered = {asked, key};
    const accepted = await app.client.create(generation, {idempotencyKey: key});
    if (!accepted?.request_id) {
        throw new ApiError(200, {error: {code: "not_json", message: NOT_THE_API}});
    }
    app.unanswered = null;
    if (app.items.has(accepted.request_id)) {
        // the bus told this tab first (or this is the answer to a create asked again): the row's status
        // is newer than this answer, and the credits shown already count the hold (or are asked for);
        // the bus carries a preview of the prompt only
        upsert({request_id: accepted.request_id, prompt: generation.prompt, params: generation.params});
        refreshCredits().catch(() => {});
    } else {
        upsert({
            ...accepted,
            ...generation,
            message: "Your request was accepted and is waiting for a worker.",
        });
        showCredits((app.available ?? 0) - accepted.credits_reserved);
    }
    follow(accepted.request_id);
    return accepted;
}

async function retry(requestId, button) {
    button.disabled = true;
    try {
        // the full prompt and params of the failed request (a list row may only hold a preview)
        const original = await app.client.get(requestId);
        const {backend, model, task, prompt, params} = original;
        const accepted = await ask({backend, model, task, prompt, params});
        app.items.get(accepted.request_id)?.node.focus();
    } catch (error) {
        const node = app.items.get(requestId)?.node;
        reportApiError(error, node?.querySelector(".advice"));
    } finally {
        button.disabled = false;
    }
}

function follow(requestId) {
    if (app.watches.has(requestId) || !app.client) {
        return;
    }
    const watch = app.client.watch(requestId, (view) => {
        upsert(view);
        if (isTerminal(view.status) && typeof view.credits_available === "number") {
            showCredits(view.credits_available);
        } else if (isTerminal(view.status)) {
            refreshCredits().catch(() => {});
        }
    });
    app.watches.set(requestId, watch);
    watch.done
        .catch((error) => {
            // the session ended (signed out in another tab, expired): say so, as enter() does
            if (error instanceof ApiError && error.status === 401 && app.client) {
                leave();
                showSignIn();
            }
        })
        .finally(() => app.watches.delete(requestId));
}

function onBusUpdate(payload) {
    upsert(payload);
    if (typeof payload.credits_available === "number") {
        showCredits(payload.credits_available);
    }
    // a request another tab or device created: follow it here too
    if (!isTerminal(payload.status)) {
        follow(payload.request_id);
    }
}

function reportApiError(error, target) {
    if (!target) {
        return;
    }
    if (!(error instanceof ApiError)) {
        target.textContent = "Something went wrong. Try again.";
        return;
    }
    if (error.status === 401) {
        leave();
        showSignIn();
        return;
    }
    if (error.isNetworkError || error.status === 502 || error.status === 503) {
        target.textContent = "The server cannot be reached right now. Try again in a moment.";
        return;
    }
    if (error.code === "http_error" && error.status >= 500) {
        // no JSON error of the API: a proxy's or the server's own error page
        target.textContent = `Something went wrong on the server (HTTP ${error.status}). Try again in a moment.`;
        return;
    }
    const fields = Object.values(error.fields || {}).join(" ");
    target.textContent =
        fields && error.code === "validation_error" ? `${error.message}: ${fields}` : error.message;
}

// ---------------------------------------------------------------------------------------- rendering
function upsert(view) {
    if (!view?.request_id) {
        return;
    }
    const known = app.items.get(view.request_id);
    const merged = {...(known?.view || {}), ...view};
    let node = known?.node;
    if (!node) {
        node = $("request-template").content.firstElementChild.cloneNode(true);
        node.querySelector(".retry").addEventListener("click", (event) =>
            retry(merged.request_id, event.currentTarget)
        );
        $("history").prepend(node);
    }
    app.items.set(view.request_id, {view: merged, node});
    render(node, merged);
    $("history-empty").hidden = app.items.size > 0;
}

function render(node, view) {
    node.dataset.requestId = view.request_id;
    node.dataset.status = view.status;
    const label = STATUS_LABELS[view.status] || view.status;
    node.querySelector(".status").textContent = label;
    node.querySelector(".model").textContent = [view.model, view.task].filter(Boolean).join(" · ");
    const when = node.querySelector(".when");
    if (view.created_at) {
        when.dateTime = view.created_at;
        when.textContent = new Date(view.created_at).toLocaleString();
    }
    node.querySelector(".prompt").textContent = view.prompt || view.prompt_preview || "";
    node.querySelector(".message").textContent = view.message || "";
    const advice = view.retry_suggestion || view.specific_guidance || "";
    node.querySelector(".advice").textContent = advice;
    node.querySelector(".charge").textContent = chargeText(view);
    const {images, text} = resultParts(view);
    const pre = node.querySelector(".result");
    pre.hidden = !text;
    pre.textContent = text || "";
    const url = safeUrl(view.result?.output_url);
    const link = node.querySelector(".result-link");
    link.hidden = !url;
    if (url) {
        link.querySelector("a").href = url;
    }
    showImages(node.querySelector(".result-images"), images, view.prompt || view.prompt_preview);
    const retryable = view.status === "failed" && view.is_system_error;
    const button = node.querySelector(".retry");
    button.hidden = !retryable;
    button.setAttribute("aria-label", `Retry: ${view.prompt || view.prompt_preview || "this request"}`);
}

/** What a result shows: an image request's images (safe ones only), or the output as text. */
function resultParts(view) {
    const output = view.result?.output || null;
    if (view.task !== "image") {
        return {images: [], text: output};
    }
    // several images (n > 1) come as a JSON list of URLs in output (worker/backends/openai_backend.py),
    // one as output_url alone: images either way, never megabytes of base64 text
    const list = urlList(output);
    const sources = list || [view.result?.output_url];
    return {images: sources.map(safeImageUrl).filter(Boolean), text: list ? null : output};
}

function urlList(output) {
    if (!output?.trimStart().startsWith("[")) {
        return null;
    }
    try {
        const parsed = JSON.parse(output);
        return Array.isArray(parsed) && parsed.every((u) => typeof u === "string") ? parsed : null;
    } catch {
        return null;
    }
}

function showImages(box, sources, prompt) {
    const about = prompt || "this request";
    const alts = sources.map((_, index) =>
        sources.length > 1
            ? `Image ${index + 1} of ${sources.length} for: ${about}`
            : `The image for: ${about}`
    );
    const shown = [...box.children];
    const same =
        shown.length === sources.length &&
        shown.every((img, index) => img.getAttribute("src") === sources[index] && img.alt === alts[index]);
    box.hidden = !sources.length;
    if (same) {
        return; // a status update of the row: the images stay, not decoded again
    }
    box.replaceChildren(
        ...sources.map((src, index) => {
            const img = document.createElement("img");
            img.className = "result-image";
            img.src = src;
            img.alt = alts[index];
            return img;
        })
    );
}

function chargeText(view) {
    const charged = view.credits_charged ?? 0;
    if (view.status === "failed") {
        const note = view.charge_note ? `${view.charge_note} ` : "";
        return `${note}Credits charged: ${charged}.`;
    }
    if (view.status === "succeeded") {
        return `Credits charged: ${charged}.`;
    }
    if (view.status === "cancelled") {
        return "Credits charged: 0.";
    }
    return view.credits_reserved
        ? `${view.credits_reserved} ${plural(view.credits_reserved, "credit")} reserved.`
        : "";
}

function safeUrl(value) {
    if (!value) {
        return null;
    }
    try {
        const url = new URL(value, location.href);
        return ["http:", "https:"].includes(url.protocol) ? url.href : null;
    } catch {
        return null;
    }
}

// a provider's base64 image, as the worker passes it on (schemas/callback_result.json): raster types
// only (an SVG may carry script), and the img-src of the shell's CSP
const DATA_IMAGE = /^data:image\/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/=\s]+$/;

function safeImageUrl(value) {
    if (value && DATA_IMAGE.test(value)) {
        return value;
    }
    const url = safeUrl(value);
    return url && new URL(url).protocol === "https:" ? url : null;
}

function plural(count, word) {
    return count === 1 ? word : `${word}s`;
}

function bindForms() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("generate-form").addEventListener("submit", submitGeneration);
    $("sign-out").addEventListener("click", signOut);
    $("model").addEventListener("change", showPrice);
    $("prompt").addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
            event.preventDefault();
            if (!app.submitting) {
                $("generate-form").requestSubmit();
            }
        }
    });
}
