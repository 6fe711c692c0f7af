"""How a request is handled: the action registry and its decorator, the router factory that
registers every action under both prefixes, the guard (auth, scopes, admin), the error
handlers, idempotency and rate limits."""
