"""Storage rules: buckets per organization, snapshots, restores, retention (API.md §9)."""
