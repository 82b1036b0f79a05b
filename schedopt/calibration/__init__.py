"""Calibration: fit the model to short real training runs, and plan those runs.

- :mod:`schedopt.calibration.pilots` reads pilot runs (CSVs of step, learning rate, loss), every one
  from the same loss column (``read_pilots``).
- :mod:`schedopt.calibration.fit` fits a power-law model to pilots (``schedopt fit``) and
  predicts the network's loss under any schedule.
- :mod:`schedopt.calibration.plan` proposes the pilots for a horizon and budget
  (``schedopt pilots``).
- :mod:`schedopt.calibration.form` is the shape a design from a fitted model takes
  (``schedopt design --form``): a plateau, then an anneal the model shapes.
"""
