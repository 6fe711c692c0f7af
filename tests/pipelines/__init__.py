"""Tests of the pipelines domain."""
