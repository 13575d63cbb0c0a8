"""ai_generation worker: consumes AIGenerationJobRequested, runs the AI call, classifies, reports, alerts."""

__version__ = "0.1.0"
