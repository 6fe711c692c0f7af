"""Local-only tools: `warehouse dev` and the embedded servers it and the tests start."""
