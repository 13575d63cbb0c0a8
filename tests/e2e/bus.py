"""Reads a user's Odoo bus the way the PWA does: a websocket to /websocket through the gateway.

The client logs in (/web/session/authenticate), opens the websocket with the session cookie and
subscribes; Odoo adds the user's own partner channel, so every ``ai_generation/update`` sent to the
user arrives here. Each notification is stamped with the moment it was received (time.time()).
"""

import contextlib
import json
import threading
import time
from dataclasses import dataclass

import requests
import websocket

WEBSOCKET_WORKER_VERSION = "18.0-3"  # bus/websocket.py _VERSION of Odoo 18.0


@dataclass(frozen=True)
class Notification:
    id: int
    type: str
    payload: dict
    received_at: float


def login(base_url: str, db: str, login: str, password: str) -> requests.Session:
    """A requests session holding the user's Odoo session cookie (JSON-RPC login through the gateway)."""
    http = requests.Session()
    resp = http.post(
        f"{base_url}/web/session/authenticate",
        json={"jsonrpc": "2.0", "method": "call", "params": {"db": db, "login": login, "password": password}},
        timeout=30,
    )
    resp.raise_for_status()
    if resp.json().get("error") or "session_id" not in http.cookies:
        raise RuntimeError(f"login of {login} failed: {resp.text[:300]}")
    return http


class BusListener:
    """Collects the user's bus notifications from a websocket in a background thread."""

    def __init__(self, base_url: str, session_id: str):
        self.url = base_url.replace("http://", "ws://") + f"/websocket?version={WEBSOCKET_WORKER_VERSION}"
        self.session_id = session_id
        self.notifications: list[Notification] = []
        self._cond = threading.Condition()
        self._ws = None
        self._thread = None
        self._closing = False
        self.connections = 0
        self.error = None

    def start(self, timeout: float = 15) -> "BusListener":
        self._connect(timeout)
        self._thread = threading.Thread(target=self._read, daemon=True, name="bus-listener")
        self._thread.start()
        return self

    def _connect(self, timeout: float = 15) -> None:
        ws = websocket.create_connection(self.url, cookie=f"session_id={self.session_id}", timeout=timeout)
        # like the PWA's bus service after a reconnect: ask for what came after the last one seen
        last = max((n.id for n in self.notifications), default=0)
        ws.send(json.dumps({"event_name": "subscribe", "data": {"channels": [], "last": last}}))
        ws.settimeout(None)
        self._ws = ws
        self.connections += 1

    def _read(self) -> None:
        while not self._closing:
            try:
                raw = self._ws.recv()
                if raw:
                    self._take(json.loads(raw), time.time())
                    continue
            except (websocket.WebSocketException, OSError) as exc:
                self.error = exc
            # the server went away (Odoo restarted): reconnect, as the PWA does
            while not self._closing:
                try:
                    self._connect(timeout=5)
                    break
                except (websocket.WebSocketException, OSError) as exc:
                    self.error = exc
                    time.sleep(0.3)

    def _take(self, items: list, now: float) -> None:
        with self._cond:
            seen = {n.id for n in self.notifications}
            for item in items:
                if item["id"] in seen:
                    continue
                message = item.get("message") or {}
                self.notifications.append(
                    Notification(item["id"], message.get("type"), message.get("payload") or {}, now)
                )
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30) -> Notification:
        """The first notification (already received or to come) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for note in self.notifications:
                    if predicate(note):
                        return note
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(n.type, n.payload.get("status")) for n in self.notifications][-10:]
                    raise TimeoutError(f"no matching bus notification (last seen {seen}, error {self.error})")
                self._cond.wait(left)

    def updates_for(self, request_id: str) -> list[Notification]:
        with self._cond:
            return [
                n
                for n in self.notifications
                if n.type == "ai_generation/update" and n.payload.get("request_id") == request_id
            ]

    def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.close()
