"""The HTTP API: dependencies, problem+json errors, schemas and thin route modules."""
