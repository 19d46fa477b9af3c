"""capacity: serving at steady state (continuous batching, chunked prefill), capacity planning, and the KV methods' capacity analyses."""
