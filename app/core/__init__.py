"""Shared plumbing below the services: the error tree, database sessions, crypto and passwords,
the job queue wrapper, the request context, migrations, logging and scopes."""
