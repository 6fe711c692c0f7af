"""Only for local work: `warehouse dev` and the embedded servers it and the tests start."""
