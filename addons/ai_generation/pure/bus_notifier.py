# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""One kept connection per process for the bus's NOTIFY: post-commit hooks hand channels over and return.

Odoo's bus wakes its websocket dispatcher with ``NOTIFY imbus`` after each transaction that posted a
message, on a new PostgreSQL connection to the ``postgres`` database every time (Odoo's pool keeps no
connection to that database). The connection is opened while the pool's one lock is held, so every
other request thread of the process waits for a backend to start: under 16 clients that wait was most
of a threaded server's time (bench/profile_post.py --samples idle). Here a daemon thread keeps one
connection and sends, in one go, the channels handed over since its last send: the dispatcher only
needs to know which channels to wake, and it reads the messages themselves from the bus table.

Odoo-free: the caller gives the connection factory, the bus's payload splitter and the statement.
"""

import atexit
import logging
import os
import queue
import threading
import time

_logger = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 10000
EXIT_WAIT_SECONDS = 5  # at the process's exit, how long what is still queued may take to be sent


class BusNotifier:
    """A daemon thread that sends ``notify(cursor, payload)`` for the channels ``submit`` queued.

    ``connect()`` returns a DB-API connection in autocommit; ``payloads(channels)`` splits a list of
    channels into the payloads to send (the bus's own size limit).
    """

    def __init__(self, connect, payloads, notify, *, maxsize=DEFAULT_MAXSIZE, name="ai_generation.bus"):
        self._connect, self._payloads, self._notify = connect, payloads, notify
        self.pid = os.getpid()
        self.sent = 0  # NOTIFY statements sent
        self.failed = 0  # channel sets that could not be sent (logged)
        self._connection = None
        self._queue = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self):
        return self.pid == os.getpid() and self._thread.is_alive()

    def submit(self, channels):
        """Queue ``channels`` for the next send; False (nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(list(channels))
        except queue.Full:
            return False
        return True

    def wait_idle(self, timeout):
        """True once everything submitted so far was sent or given up (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # ------------------------------------------------------------------ the thread
    def _run(self):
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                # one wake-up for everything waiting, each channel once, in the order first handed over
                self._send(list(dict.fromkeys(channel for channels in batch for channel in channels)))
            except Exception:
                # nothing handed over may stop the thread: the next wake-ups must still go out
                self.failed += 1
                _logger.exception("bus notification for %d hand-over(s) not sent", len(batch))
            finally:
                for _item in batch:
                    self._queue.task_done()

    def _send(self, channels):
        payloads = self._payloads(channels)
        for attempt in (1, 2):  # a connection the server closed meanwhile is replaced once
            try:
                if self._connection is None:
                    self._connection = self._connect()
                with self._connection.cursor() as cursor:
                    for payload in payloads:
                        self._notify(cursor, payload)
                self.sent += len(payloads)
                return
            except Exception as exc:
                self._close()
                if attempt == 2:
                    self.failed += 1
                    # the messages are in the bus table: a client gets them at its next wake-up or reconnect
                    _logger.warning(
                        "bus notification for %d channel(s) not sent: %s: %s",
                        len(channels),
                        type(exc).__name__,
                        exc,
                    )

    def _close(self):
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                _logger.debug("closing the bus notification connection failed", exc_info=True)


_lock = threading.Lock()
_instance = None
_inherited = []  # a parent's notifier, kept from the garbage collector in a forked child (see below)


def bus_notifier(connect, payloads, notify):
    """This process's BusNotifier, started on first use (a forked child or a dead thread gets a new one)."""
    global _instance
    instance = _instance
    if instance is not None and instance.alive:
        return instance
    with _lock:
        if _instance is None or not _instance.alive:
            _instance = BusNotifier(connect, payloads, notify)
        return _instance


def _forget_parent_notifier():
    # the parent's thread and connection are not the child's, and the lock may have been held at the fork;
    # the parent's connection object stays referenced: freeing it here would close the parent's socket
    global _instance, _lock
    if _instance is not None:
        _inherited.append(_instance)
    _instance = None
    _lock = threading.Lock()


def _send_the_rest_at_exit():
    # a daemon thread dies with the process: a prefork worker leaving after its last request
    # (limit_request, memory limits) or a server shutting down would drop the wake-ups still queued,
    # which Odoo's own hook had sent before the request returned. atexit runs while daemon threads still do.
    instance = _instance
    if instance is not None and instance.alive and not instance.wait_idle(EXIT_WAIT_SECONDS):
        _logger.warning("bus notifications still queued at exit were not sent")


os.register_at_fork(after_in_child=_forget_parent_notifier)
atexit.register(_send_the_rest_at_exit)
