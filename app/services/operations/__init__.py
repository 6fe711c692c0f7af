"""What happened to a warehouse: the audit log (and operations)."""
