"""PostgreSQL cluster plumbing: finding client programs, copying databases between clusters."""
