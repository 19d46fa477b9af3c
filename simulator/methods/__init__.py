"""methods: transformations of the workload — the ten KV-cache methods and their pipeline, and input-dependent (dynamic) weight sparsity."""
