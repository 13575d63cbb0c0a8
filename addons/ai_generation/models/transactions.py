# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Short transactions of their own, in READ COMMITTED, for every write that contends.

Odoo runs each HTTP request and cron in REPEATABLE READ: a row that two transactions update at once (a
credit account, a request written by the dispatcher and a callback) raises "could not serialize access
due to concurrent update", which Odoo answers by sleeping up to 2^n s and replaying the whole request,
with the failed query logged at ERROR. A ``SELECT ... FOR UPDATE`` does not help there, because the
snapshot is older than the lock. In READ COMMITTED the same lock simply waits for the other transaction
and then reads its committed row: contention costs the length of the other transaction, not a replay.

So every money movement and every state change runs through :func:`run_in_own_transaction`: a new
transaction on the caller's cursor opened as ``BEGIN ISOLATION LEVEL READ COMMITTED``, the rows locked
in one order (request, then account), work done, committed before the caller answers. The caller's own
transaction only reads.

While tests run (one test cursor for the whole test, which must not commit) and while the module is
installed (its demo data), a savepoint in the caller's cursor stands in: see may_commit_apart.
"""

import functools
import logging
import random
import threading
import time

from odoo.modules import module as odoo_module
from psycopg2.extensions import (
    ISOLATION_LEVEL_READ_COMMITTED,
    TRANSACTION_STATUS_IDLE,
    TransactionRollbackError,
)

_logger = logging.getLogger(__name__)

# Deadlocks cannot happen with one lock order, and READ COMMITTED raises no serialization failure on
# row updates; the retry is a safety net for what PostgreSQL may still roll back.
MAX_TRIES = 3
_IN_OWN_TRANSACTION = "_ai_generation_own_transaction"  # set on a cursor while one runs


def may_commit_apart(registry):
    """False while tests run (their cursor must not commit: Odoo's runner and pytest-odoo both mark
    the thread ``testing``) and while the module is being installed or
    updated (its demo data calls the same code, and a new cursor would not see the new tables yet)."""
    testing = odoo_module.current_test or getattr(threading.current_thread(), "testing", False)
    return registry.ready and not registry.in_test_mode() and not testing


def run_in_own_transaction(env, func, *args, **kwargs):
    """``func(env, *args, **kwargs)`` in a READ COMMITTED transaction of its own, committed on return.

    It runs on the caller's cursor (one database connection per request, not two): the caller's
    transaction is committed first, which ends its REPEATABLE READ snapshot so that the next transaction
    may open in another isolation level (_ReadCommittedOnce). Callers therefore write only through here:
    what they did before is committed with it. On an error the own transaction is rolled back and the
    error raised. Inside another own transaction (already READ COMMITTED and atomic) ``func`` just runs.
    """
    registry = env.registry
    if not may_commit_apart(registry):
        with env.cr.savepoint():
            return func(env, *args, **kwargs)
    cr = env.cr
    if getattr(cr, _IN_OWN_TRANSACTION, False):
        return func(env, *args, **kwargs)
    for attempt in range(1, MAX_TRIES + 1):
        cr.commit()  # this module's one job: a transaction of its own; pylint: disable=invalid-commit
        env.invalidate_all()  # nothing read in the old snapshot may stand for the new one
        setattr(cr, _IN_OWN_TRANSACTION, True)
        level = None
        try:
            level = _ReadCommittedOnce(cr)
            result = func(env, *args, **kwargs)
            # the commit flushes only environments still alive (a WeakSet): flush this one now
            env.flush_all()
            _commit(cr, level)
            return result
        except TransactionRollbackError as exc:
            cr.rollback()
            if attempt == MAX_TRIES:
                raise
            _logger.info("own transaction rolled back by PostgreSQL (%s); try %d again", exc.pgcode, attempt)
            time.sleep(random.uniform(0, 0.05 * attempt))
        except BaseException:
            cr.rollback()
            raise
        finally:
            setattr(cr, _IN_OWN_TRANSACTION, False)
            if level is not None:
                level.restore()
    raise AssertionError("unreachable")


class _ReadCommittedOnce:
    """The cursor's next transaction opened in READ COMMITTED, the caller's level back once it ends.

    psycopg2 sends ``BEGIN ISOLATION LEVEL ...`` before a transaction's first statement with the
    connection's level: setting the level there costs no statement (a ``SET TRANSACTION`` was a round
    trip of its own, and each round trip under load waits for the GIL again). The level can only change
    between transactions (psycopg2 raises inside one): it is restored by the first post-commit hook,
    before any other hook could open a transaction on this cursor, or by ``restore`` after a rollback.
    That hook also tells ``_commit`` that PostgreSQL committed.
    """

    def __init__(self, cr):
        self.cr, self.cnx = cr, cr._cnx
        self.level = self.cnx.isolation_level
        self.committed = False
        self.cnx.isolation_level = ISOLATION_LEVEL_READ_COMMITTED
        cr.postcommit.add(self._on_commit)  # the queue is empty: the caller just committed

    def _on_commit(self):
        self.committed = True
        self.restore()

    def restore(self, again=True):
        if self.cnx.isolation_level == self.level:
            return
        if self.cnx.info.transaction_status == TRANSACTION_STATUS_IDLE:
            self.cnx.isolation_level = self.level
        elif again:  # a hook opened a transaction on this cursor: the level comes back once it ends
            later = functools.partial(self.restore, again=False)
            self.cr.postcommit.add(later)
            self.cr.postrollback.add(later)
        else:
            _logger.warning("a cursor stays in READ COMMITTED: its hooks kept a transaction open")


def _commit(cr, level):
    """Commit; a post-commit hook (the bus NOTIFY, the publisher hand-off) failing once PostgreSQL has
    committed is logged, not raised: answering an error for committed work would make a client retry
    it. What such a hook did not do is done later (the outbox cron, the bus rows). Whether PostgreSQL
    committed is the first hook's word (``level.committed``): a COMMIT refused by the server (a
    deferred constraint) leaves the connection idle as a committed one does."""
    try:
        cr.commit()  # pylint: disable=invalid-commit
    except Exception as exc:
        if not level.committed:
            raise  # the COMMIT itself (or what precedes it) failed: nothing was committed
        cr.postcommit.clear()
        _logger.warning("committed; a post-commit hook failed: %s: %s", type(exc).__name__, exc)
        _logger.debug("the post-commit hook's traceback", exc_info=True)


def call_in_own_transaction(records, method_name, *args, **kwargs):
    """``records.<method_name>(*args, **kwargs)`` on a READ COMMITTED transaction of its own
    (see run_in_own_transaction); the records keep their user, context and superuser flag."""
    return run_in_own_transaction(
        records.env, lambda env: getattr(records.with_env(env), method_name)(*args, **kwargs)
    )
