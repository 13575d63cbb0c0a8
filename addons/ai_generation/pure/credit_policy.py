"""What an invalid-input failure costs the user ("after warnings", DESIGN.md § Credit ledger).

The first ``free_warnings`` user-side failures of a user inside the window are free; after that the
configured charge applies. The charge is an integer number of credits and never exceeds the hold.
"""

from dataclasses import dataclass

MODES = ("none", "fixed", "percent", "full")


@dataclass(frozen=True)
class InvalidInputPolicy:
    free_warnings: int = 2
    window_hours: int = 24
    mode: str = "full"
    fixed_amount: int = 0
    percent: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown charge mode {self.mode!r}; expected one of {', '.join(MODES)}")
        for name in ("free_warnings", "window_hours", "fixed_amount", "percent"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.percent > 100:
            raise ValueError("percent must be between 0 and 100")


@dataclass(frozen=True)
class ChargeDecision:
    charge: int
    warning: bool
    warning_number: int
    reason: str


def decide_charge(policy, price, hold, prior_user_errors):
    """Credits to charge for this invalid-input failure.

    ``prior_user_errors`` counts the user's earlier user-side failures inside the policy window (this
    one excluded). Percent charges round down: rounding never works against the user.
    """
    if price < 0 or hold < 0 or prior_user_errors < 0:
        raise ValueError("price, hold and prior_user_errors must be non-negative")
    if prior_user_errors < policy.free_warnings:
        number = prior_user_errors + 1
        return ChargeDecision(
            charge=0,
            warning=True,
            warning_number=number,
            reason=f"free warning {number} of {policy.free_warnings}: invalid input, not charged",
        )
    if policy.mode == "none":
        amount, how = 0, "policy charges nothing for invalid input"
    elif policy.mode == "fixed":
        amount, how = policy.fixed_amount, f"fixed charge of {policy.fixed_amount}"
    elif policy.mode == "percent":
        amount, how = price * policy.percent // 100, f"{policy.percent}% of the price {price}"
    else:
        amount, how = price, f"full price {price}"
    charge = min(amount, hold)
    capped = " (capped at the hold)" if charge < amount else ""
    return ChargeDecision(
        charge=charge,
        warning=False,
        warning_number=0,
        reason=f"invalid input after {policy.free_warnings} free warning(s): {how}{capped}",
    )
