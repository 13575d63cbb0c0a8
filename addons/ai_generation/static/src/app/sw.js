// License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
// The app shell offline: cached at install, served from the cache first and refreshed in the
// background (stale-while-revalidate). The API, the bus and the sign-in are never cached.
const VERSION = "__SHELL_VERSION__"; // replaced by the server with a digest of the shell files
const CACHE = `ai-generation-app-${VERSION}`;
const APP = "/ai_generation/app";
const SHELL = [
    APP,
    `${APP}/app.js`,
    `${APP}/app.css`,
    `${APP}/client.js`,
    `${APP}/manifest.webmanifest`,
    `${APP}/icon.png`,
];
const CONFIG = `${APP}/config.json`;

self.addEventListener("install", (event) => {
    event.waitUntil(
        caches
            .open(CACHE)
            .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, {cache: "reload"}))))
            .then(() => self.skipWaiting())
    );
});

self.addEventListener("activate", (event) => {
    event.waitUntil(
        caches
            .keys()
            .then((names) =>
                Promise.all(
                    names
                        .filter((n) => n.startsWith("ai-generation-app-") && n !== CACHE)
                        .map((n) => caches.delete(n))
                )
            )
            .then(() => self.clients.claim())
    );
});

function shellKey(url) {
    const path = url.pathname.replace(/\/$/, "");
    return SHELL.includes(path) ? path : null;
}

async function fromCacheThenRefresh(event, key) {
    const cache = await caches.open(CACHE);
    const cached = await cache.match(key);
    const refresh = fetch(event.request)
        .then((response) => {
            if (response.ok) {
                cache.put(key, response.clone());
            }
            return response;
        })
        .catch(() => null);
    if (cached) {
        event.waitUntil(refresh);
        return cached;
    }
    return (await refresh) || Response.error();
}

// the config as kept for offline use: who was signed in is not kept (a shared device, a session that
// ends meanwhile), and the copy says it is one, so the app knows the server was not reached
async function offlineCopy(response) {
    const config = await response.clone().json();
    return new Response(JSON.stringify({...config, user: null, offline: true}), {
        headers: {"Content-Type": "application/json", "Cache-Control": "no-store"},
    });
}

async function networkThenCache(event, key) {
    // who is signed in changes: the network's answer first; the copy kept when offline
    const cache = await caches.open(CACHE);
    try {
        const response = await fetch(event.request);
        if (response.ok) {
            await cache.put(key, await offlineCopy(response));
            return response;
        }
        return (await cache.match(key)) || response;
    } catch {
        return (await cache.match(key)) || Response.error();
    }
}

self.addEventListener("fetch", (event) => {
    const url = new URL(event.request.url);
    if (event.request.method !== "GET" || url.origin !== self.location.origin) {
        return;
    }
    const key = shellKey(url);
    if (key) {
        event.respondWith(fromCacheThenRefresh(event, key));
    } else if (url.pathname === CONFIG) {
        event.respondWith(networkThenCache(event, CONFIG));
    }
});
