import pytest
from aigen_pure.credit_policy import InvalidInputPolicy, decide_charge


def test_free_warnings_come_first():
    policy = InvalidInputPolicy(free_warnings=2, mode="full")
    first, second, third = (decide_charge(policy, 10, 10, prior) for prior in range(3))
    assert (first.charge, first.warning, first.warning_number) == (0, True, 1)
    assert (second.charge, second.warning, second.warning_number) == (0, True, 2)
    assert (third.charge, third.warning) == (10, False)
    assert "free warning 1 of 2" in first.reason


@pytest.mark.parametrize(
    ("mode", "extra", "price", "hold", "expected"),
    [
        ("none", {}, 10, 10, 0),
        ("fixed", {"fixed_amount": 4}, 10, 10, 4),
        ("fixed", {"fixed_amount": 40}, 10, 10, 10),  # never more than the hold
        ("percent", {"percent": 25}, 10, 10, 2),  # 2.5 rounds down, in the user's favour
        ("percent", {"percent": 100}, 7, 7, 7),
        ("full", {}, 10, 6, 6),  # capped at the hold
    ],
)
def test_charge_modes(mode, extra, price, hold, expected):
    decision = decide_charge(InvalidInputPolicy(free_warnings=0, mode=mode, **extra), price, hold, 5)
    assert decision.charge == expected
    assert not decision.warning
    if expected < min(price, hold) or mode == "none":
        assert decision.charge <= hold


@pytest.mark.parametrize(
    "bad", [{"mode": "double"}, {"percent": 101}, {"free_warnings": -1}, {"fixed_amount": 1.5}]
)
def test_policy_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        InvalidInputPolicy(**bad)


def test_negative_inputs_are_refused():
    with pytest.raises(ValueError):
        decide_charge(InvalidInputPolicy(), -1, 0, 0)
