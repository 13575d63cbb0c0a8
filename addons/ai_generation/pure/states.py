"""The request lifecycle (DESIGN.md): queued → dispatched → running → succeeded | failed | cancelled."""

QUEUED = "queued"
DISPATCHED = "dispatched"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

STATES = (QUEUED, DISPATCHED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

# A worker may pick the message up before Odoo has marked it dispatched (the mark happens in its own
# transaction after the broker's confirm), so queued may jump straight to running or to an outcome.
# running → running is a retry (a new attempt).
_ALLOWED = {
    QUEUED: frozenset({DISPATCHED, RUNNING, SUCCEEDED, FAILED, CANCELLED}),
    DISPATCHED: frozenset({RUNNING, SUCCEEDED, FAILED, CANCELLED}),
    RUNNING: frozenset({RUNNING, SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    """The requested move is not part of the lifecycle."""

    def __init__(self, current, target):
        self.current = current
        self.target = target
        super().__init__(f"A request in state '{current}' cannot move to '{target}'.")


def is_terminal(state):
    return state in TERMINAL


def can_move(current, target):
    if current not in _ALLOWED or target not in _ALLOWED:
        return False
    return target in _ALLOWED[current]


def check_transition(current, target):
    """Raise IllegalTransition unless ``current → target`` is allowed."""
    if not can_move(current, target):
        raise IllegalTransition(current, target)


def allowed_sources(target):
    """The states a request may move to ``target`` from (for a state API's allowed-states check)."""
    return frozenset(state for state, targets in _ALLOWED.items() if target in targets)
