"""One publishing thread per process: callers hand work over and return at once.

The thread owns its Publisher (pika is not thread-safe, so nothing else touches that connection): it
waits for work on a bounded queue, serves the connection's heartbeats while idle, and calls a handler
with the work gathered so far. A full queue refuses more (the caller leaves that work to the outbox cron)
instead of making anyone wait.

Odoo's prefork server forks its workers: a thread does not survive a fork, so a process that is not the
one that started the thread starts its own (``background_publisher`` checks the pid, and a fork hook
forgets the parent's instance and lock).
"""

import logging
import os
import queue
import threading
import time

from .publisher import Publisher

_logger = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 1000
DEFAULT_BATCH_ITEMS = 100
IDLE_SECONDS = 1.0  # how often an idle connection serves heartbeats (heartbeat timeout: 30 s)


class BackgroundPublisher:
    """A daemon thread that calls ``handler(publisher, items)`` for the items ``submit`` queued."""

    def __init__(
        self,
        handler,
        *,
        publisher=None,
        maxsize=DEFAULT_MAXSIZE,
        batch_items=DEFAULT_BATCH_ITEMS,
        idle_seconds=IDLE_SECONDS,
        name="ai_generation.publisher",
    ):
        self.handler = handler
        self.publisher = publisher or Publisher()
        self.batch_items = batch_items
        self.idle_seconds = idle_seconds
        self.pid = os.getpid()
        self.dropped = 0
        self.handled = 0
        self._queue = queue.Queue(maxsize)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self):
        return self.pid == os.getpid() and self._thread.is_alive()

    def submit(self, item):
        """Queue ``item`` for the thread; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                _logger.warning("publish queue full: work left to the outbox cron (%d so far)", self.dropped)
            return False
        return True

    def wait_idle(self, timeout):
        """True once everything submitted so far was handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self, timeout=10):
        self._stopping.set()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread
    def _run(self):
        try:
            while not self._stopping.is_set():
                try:
                    item = self._queue.get(timeout=self.idle_seconds)
                except queue.Empty:
                    self.publisher.serve_heartbeats()
                    continue
                batch = [item]
                while len(batch) < self.batch_items:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._handle(batch)
        finally:
            self.publisher.close()

    def _handle(self, batch):
        try:
            # after a failed connection attempt, wait out the backoff instead of failing this work at once
            wait = self.publisher.retry_in()
            if wait > 0:
                self._stopping.wait(wait)
            self.handler(self.publisher, batch)
        except Exception:
            _logger.exception("background publishing of %d item(s) failed; the outbox keeps them", len(batch))
        finally:
            self.handled += len(batch)
            for _item in batch:
                self._queue.task_done()


_lock = threading.Lock()
_instance = None


def background_publisher(handler, **options):
    """This process's BackgroundPublisher, started on first use; the first caller's handler and options
    are kept. A forked child (or a process whose thread died) gets a new one."""
    global _instance
    instance = _instance
    if instance is not None and instance.alive:
        return instance
    with _lock:
        if _instance is None or not _instance.alive:
            _instance = BackgroundPublisher(handler, **options)
        return _instance


def _forget_parent_publisher():
    # the parent's thread does not exist in the child, and its lock may have been held at the fork
    global _instance, _lock
    _instance = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_parent_publisher)
