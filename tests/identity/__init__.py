"""Tests of the identity domain."""
