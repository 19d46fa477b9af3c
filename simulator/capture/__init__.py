"""Measure real kernel timings with torch and write them as trace files (see docs/traces.md).

Run from a checkout: ``python -m simulator.capture --suite cpu --out hwspecs/<device-id>/traces/``.
This package depends on torch, numpy and the standard library only, and imports nothing here.
"""
