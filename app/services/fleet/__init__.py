"""The fleet of warehouse clusters (API.md §8): registry, per-cluster backends, placement."""
