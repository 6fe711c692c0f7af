"""Tests of the warehouse domain."""
