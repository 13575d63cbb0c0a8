import pytest
from aigen_pure import states


@pytest.mark.parametrize("terminal", sorted(states.TERMINAL))
def test_nothing_leaves_a_terminal_state(terminal):
    for target in states.STATES:
        assert not states.can_move(terminal, target)
        with pytest.raises(states.IllegalTransition, match=terminal):
            states.check_transition(terminal, target)


def test_the_lifecycle_of_design():
    for current, target in [("queued", "dispatched"), ("dispatched", "running"), ("running", "succeeded")]:
        states.check_transition(current, target)
    # a worker may be faster than the dispatch mark
    assert states.can_move("queued", "running") and states.can_move("queued", "failed")
    assert states.can_move("running", "running")  # a retry


def test_no_way_back_and_no_unknown_states():
    assert not states.can_move("running", "queued")
    assert not states.can_move("dispatched", "queued")
    assert not states.can_move("queued", "exploded")


def test_allowed_sources_mirror_the_transitions():
    assert states.allowed_sources("dispatched") == {"queued"}
    assert states.allowed_sources("running") == {"queued", "dispatched", "running"}
    for target in ("succeeded", "failed", "cancelled"):
        assert states.allowed_sources(target) == {"queued", "dispatched", "running"}
    assert states.allowed_sources("queued") == frozenset()
