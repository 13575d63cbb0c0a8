"""Runs the ai_generation stack on one machine without Docker (``./run-stack``); the tests use the same parts.

Each module starts one real component on loopback from the repo's own configuration files, so that
what ``./run-stack`` runs, what the end-to-end test runs and what docker/compose.yaml runs agree.
"""
