"""The model's loss dynamics: each step written once, run by JAX, NumPy or CasADi.

- ``sgd.py``, ``momentum.py``: the exact per-mode second-moment step of SGD and heavy-ball
  SGD, plain arithmetic over an array namespace (``ops.py``).
- ``recursion.py``: the recursion run in JAX (loss curves, final losses, the divergence limit).
- ``adjoint.py``, ``momentum_adjoint.py``: final losses with hand-written adjoints
  (:math:`O(\\sqrt T N)` memory by chunked recomputation).
- ``ode.py``: the continuous-time model by an exponential integrator (long horizons).
- ``stability.py``: mean-square stability thresholds.
- ``compression.py``: a large spectrum as a Gauss quadrature in :math:`\\log\\lambda`.

The theory behind them is in ``docs/theory.md`` (§2-3).
"""
