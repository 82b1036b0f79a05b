"""The tiny problem spec several test files share: 50 modes, 200 steps, 10 uniform blocks."""

from __future__ import annotations

TEMPLATE = """\
schema_version = 1
name = "tiny"

[model]
kind = "powerlaw"
a = {a}
b = {b}
n_modes = 50
noise_std = 0.5

[training]
horizon = 200

[controls.learning_rate]
min = 0.0
max = 0.35
blocks = 10
grid = "uniform"
"""


def tiny_spec(a: float = 2.5, b: float = 1.2) -> str:
    """The spec text with exponents ``a`` and ``b`` (default: the easy phase)."""
    return TEMPLATE.format(a=a, b=b)


TINY_SPEC = tiny_spec()
