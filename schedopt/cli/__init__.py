"""The ``schedopt`` command line: a thin typer layer over the library.

One module per command group, registered here in the order ``--help`` lists them:

- :mod:`schedopt.cli.design`: ``simulate``, ``design``, ``compare``, ``plot``;
- :mod:`schedopt.cli.studies`: ``phase``, ``scaling``, ``transfer``;
- :mod:`schedopt.cli.sweep`: ``sweep`` and the ``--backend``/``--address`` options;
- :mod:`schedopt.cli.calibration`: ``fit``, ``pilots``;
- :mod:`schedopt.cli.export`: ``export``, ``recommend``.

Shared pieces: ``_app.py`` (the app, global options, errors → one line and an exit code),
``_options.py`` (shared options and input checks), ``_report.py`` (tables, JSON, progress),
``_signals.py`` (interrupts). ``--json`` prints one documented JSON object on standard output
(see README, "JSON output").
"""

from __future__ import annotations

from schedopt.cli._app import app, main
from schedopt.cli._signals import Terminated, _install_signal_handlers
from schedopt.cli.calibration import fit, pilots
from schedopt.cli.design import compare, design, plot, simulate
from schedopt.cli.export import export, recommend
from schedopt.cli.studies import phase, scaling, transfer
from schedopt.cli.sweep import sweep

for _command in (
    simulate,
    design,
    phase,
    scaling,
    transfer,
    sweep,
    compare,
    fit,
    pilots,
    export,
    recommend,
    plot,
):
    app.command()(_command)
del _command

__all__ = ["Terminated", "_install_signal_handlers", "app", "main"]
