"""Events for other services: the webhook outbox (`outbox.emit_event`) and its delivery."""
