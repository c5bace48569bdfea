"""Wind's runtime, domain actors, core services, CLI and fault-injection API."""

__all__: list[str] = []
