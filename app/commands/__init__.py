"""The `warehouse` command line, one module per group of subcommands (see `app.cli`)."""
