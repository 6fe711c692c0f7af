"""Tests of the api domain."""
