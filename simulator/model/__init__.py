"""model: the op graph of a whole LLM per phase, priced by the kernels in a handful of array calls (estimate_model, sweep, estimate_request)."""
