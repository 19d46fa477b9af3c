"""formats: what the work is stored and run as — sparsity formats, the LLM zoo's schema and parameter counts, runtime profiles. Imports core and hardware."""
