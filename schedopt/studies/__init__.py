"""Studies: many solves of one problem, varied along one axis, and what they show.

- :mod:`schedopt.studies.phase` solves across horizons and fits the exponents the theory
  predicts (``schedopt phase``).
- :mod:`schedopt.studies.scaling` finds the compute-optimal model size and horizon
  (``schedopt scaling``).
- :mod:`schedopt.studies.transfer` carries a designed schedule to a new horizon
  (``schedopt transfer``).
- :mod:`schedopt.studies.joint` studies batch size under a sample budget (the batch ramp, the
  wall-clock saving) and momentum.
"""
