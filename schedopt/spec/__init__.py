r"""Problem specs: TOML text -> validated :class:`~schedopt.problem.Problem`, and back.

A spec is a small TOML file (``schema_version = 1``)::

    schema_version = 1
    name = "easy-phase"

    [model]
    kind = "powerlaw"          # or "custom"
    a = 2.5                    # target exponent: lambda_k c_k(0) ~ k^-a
    b = 1.2                    # capacity exponent: lambda_k = k^-b
    n_modes = 1000
    noise_std = 1.0            # label-noise sigma (default 0)
    initial_loss = 1.0         # or "raw" (default 1.0)
    finite_size = false        # optional (default false)

    [training]
    horizon = 10000
    batch_size = 1             # default 1
    momentum = 0.0             # default 0
    # sample_budget = 1e6      # only with a batch_size control

    [controls.learning_rate]   # required; batch_size and momentum are optional
    min = 0.0
    max = 0.35
    blocks = 100               # default 100 (set by `edges` when grid = "custom")
    grid = "uniform"           # uniform | geometric-end | geometric-both | custom
    parameterisation = "linear"  # linear | constant
    # edges = [0, ..., 10000]  # only with grid = "custom"

    [network]                  # optional: a fitted map to a real network (schedopt fit)
    learning_rate_scale = 0.8  # model eta per unit of the network's learning rate
    loss_scale = 3.1           # network loss = loss_offset + loss_scale * model loss
    loss_offset = 1.2

A custom spectrum (``kind = "custom"``) gives its arrays either in a file
(``file = "spectrum.csv"``, relative to the spec's folder: a CSV with the
header ``eigenvalues,initial_error``, ``#`` comment lines allowed, or a
``.npz`` holding exactly those two arrays) or inline (``eigenvalues = [...]``,
``initial_error = [...]``), plus ``noise_std`` and an optional ``residual``.
``problems/README.md`` documents every key.

Modules: ``_schema.py`` (version, keys, limits), ``_read.py`` (text → ``Problem``: the
document, training and controls), ``_table.py`` (a TOML table's typed accessors),
``_model.py`` (the ``[model]`` table), ``_spectrum_files.py`` (a custom spectrum's CSV or
``.npz``), ``_write.py`` (``Problem`` → text).

Every invalid input raises exactly one :class:`~schedopt.errors.SpecError`
naming the file, the key path (``model.a``, ``controls.learning_rate.max``) and
the bad value; no other exception escapes :func:`parse_problem` or
:func:`load_problem`. The checks of values are those of the records in
:mod:`schedopt.problem` (their ``ProblemError.field`` is mapped back to the key
path); this module adds what only the file knows: syntax, unknown and missing
keys, types, the schema version and the custom-spectrum file. The stability
bound on ``controls.learning_rate.max`` is checked by the solvers, not here.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from schedopt.spec._read import default_problem, load_problem, parse_problem
from schedopt.spec._schema import MAX_MODES, SCHEMA_VERSION
from schedopt.spec._write import dump_problem

__all__ = [
    "MAX_MODES",
    "SCHEMA_VERSION",
    "default_problem",
    "dump_problem",
    "load_problem",
    "parse_problem",
]
