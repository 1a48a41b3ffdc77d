"""Benchmarks: the chunk engine against SciPy and a naive diffrax vmap; fits against SciPy."""
