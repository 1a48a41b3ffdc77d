"""The tiny sweep spec shared by the sweep, sharding and distributed tests (one compile per
chunk size and session)."""

TINY_SPEC = """
name = "tiny"
model = "trap_detrap"
t1 = 2e-6
chunk_size = {chunk_size}
[fixed]
B = 1e-10
C = 1e-28
[axes]
A = {{ logspace = [1e5, 1e8, 4] }}
D = [0.0, 1e6, 1e8]
K1 = [1e2, 1e6]
n0 = {{ logspace = [1e15, 1e18, 4] }}
[observables]
summaries = ["tau_mean_pl", "plqy"]
"""


def tiny_spec(chunk_size: int) -> str:
    return TINY_SPEC.format(chunk_size=chunk_size)
