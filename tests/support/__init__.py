"""Shared loopback fakes and fixtures for the test suites (each module documents its own API)."""
