"""Object storage for each organization."""
