"""Course claims: see simulator/course/__init__.py."""
