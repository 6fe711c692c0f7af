"""Thin modules that declare the public actions (next to their functions) and the internal API."""
