"""Shared test support: servers started for a test, free ports, readiness polls."""
