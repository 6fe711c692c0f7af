"""The managed warehouse: lifecycle actions, the provisioning state machine, names, the
environments' membership, status reads and row ingest."""
