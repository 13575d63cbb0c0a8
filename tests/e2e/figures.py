"""Timings the end-to-end test measures (name → seconds), shown at the end of the run."""

FIGURES: dict[str, float] = {}
