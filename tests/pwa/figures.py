"""Figures the PWA browser tests measure, printed at the end of the run as name=value."""

FIGURES: dict[str, float] = {}
