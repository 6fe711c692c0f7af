"""Shared test helpers: the harness (app, tenants, settings), HTTP, lifecycle and fixtures."""
