"""Where the CPU seconds of one ``schedopt`` process go (issue 13): imports, JAX, solve, baselines, plot.

Runs one CLI command in this (fresh) process, as the console script does, and prints the CPU
seconds (``time.process_time``: user + system of this process) of each phase: the heavy
imports, the solve (its warm start and final full-spectrum check apart), the baselines'
tuning, the plot (its loss curves, then drawing and writing the SVG, or the PNG with
``--figure png``) and the rest of the
command. Inside each phase, JAX's own overhead: tracing (outermost ``jit`` traces), lowering
to MLIR and the compilation-cache fetch (or the compile, cold). The interpreter's teardown is
not counted (the CLI skips it since issue 13). Only JAX internals of the pinned version are
wrapped (``jax._src``); numbers are for reading, not for tests.

Usage: uv run python benchmarks/startup_profile.py design benchmarks/authors-default.toml \\
    --horizon 100 --json --out /tmp/x --force
Set ``SCHEDOPT_CACHE_DIR`` to a warmed directory for the warm-cache profile.
``STARTUP_PROFILE_BLAS=default`` leaves OpenBLAS's thread count alone (the CLI before issue 13).
"""

from __future__ import annotations

import functools
import os
import sys
import time

T0 = time.process_time()
if os.environ.get("STARTUP_PROFILE_BLAS") != "default":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI's main() does, before NumPy loads

REST = "rest of the command (parse, spec, report)"
cpu: dict[str, float] = {}
jax_cpu: dict[tuple[str, str], float] = {}
phase = [REST]


def _add(table: dict, key, value: float) -> None:
    table[key] = table.get(key, 0.0) + value


def _phased(fn, label: str):
    """``fn`` with its CPU time counted under ``label`` (and taken out of the enclosing phase)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        outer, phase[0] = phase[0], label
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.process_time() - start
            _add(cpu, label, spent)
            _add(cpu, outer, -spent)
            phase[0] = outer

    return wrapper


def _timed_import(label: str, statement: str) -> None:
    start = time.process_time()
    exec(statement, {})
    _add(cpu, label, time.process_time() - start)


def _wrap_jax() -> None:
    from jax._src import compiler, pjit
    from jax._src.interpreters import pxla

    depth = [0]
    trace, lower, fetch = pjit._trace_for_jit, pxla.lower_sharding_computation, compiler.compile_or_get_cached

    def traced(*args, **kwargs):
        depth[0] += 1
        start = time.process_time()
        try:
            return trace(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                _add(jax_cpu, (phase[0], "trace"), time.process_time() - start)

    def timed(fn, what):
        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                _add(jax_cpu, (phase[0], what), time.process_time() - start)

        return wrapper

    pjit._trace_for_jit = traced
    pxla.lower_sharding_computation = timed(lower, "lower")
    compiler.compile_or_get_cached = timed(fetch, "fetch")


def main() -> None:
    import schedopt.cli._app

    fewer = getattr(schedopt.cli._app, "_fewer_collections", None)  # absent before issue 13's third pass
    if fewer is not None:
        fewer()  # as the CLI's main() does
    _add(cpu, "imports: Python, typer, schedopt.cli", time.process_time() - T0)
    _timed_import("imports: Python, typer, schedopt.cli", "import typer, schedopt.cli")
    _timed_import("imports: jax", "import jax, jax.numpy")
    _timed_import("imports: scipy.optimize", "import scipy.optimize")
    _timed_import(
        "imports: schedopt modules", "import schedopt.design, schedopt.baselines, schedopt.solvers.jax"
    )
    _wrap_jax()
    import schedopt.baselines as baselines
    import schedopt.cli
    import schedopt.design._figure as figure
    import schedopt.design._files as files
    import schedopt.design._run as run
    import schedopt.plots as plots
    import schedopt.solvers.jax._driver as driver

    run.solve = _phased(run.solve, "solve")
    driver._warm_start = _phased(driver._warm_start, "solve: warm start (Pontryagin sweeps)")
    driver.final_loss = _phased(driver.final_loss, "solve: final full-spectrum check")
    baselines.tune_baselines = _phased(baselines.tune_baselines, "baselines")
    files.plot_design = _phased(files.plot_design, "plot: matplotlib import, figure")
    if hasattr(files, "svg_design"):  # design.svg, the default figure since issue 13's fifth pass
        import schedopt.svg as svg

        files.svg_design = _phased(files.svg_design, "plot: SVG figure (panels)")
        svg.figure_svg = _phased(svg.figure_svg, "plot: SVG text")
    figure.loss_at = _phased(figure.loss_at, "plot: loss curves (loss_at)")
    plots.save_figure = _phased(plots.save_figure, "plot: draw + PNG")
    files.write_design = _phased(files.write_design, "write files")
    import schedopt.design as design

    design.write_design = files.write_design
    sys.argv = ["schedopt", *sys.argv[1:]]
    start = time.process_time()
    try:
        schedopt.cli._app.app(standalone_mode=False)  # main() would end the process
    finally:
        _add(cpu, REST, time.process_time() - start)
        total = time.process_time() - T0
        print(f"{'phase':45s} CPU s  (JAX: trace / lower / cache fetch)", file=sys.stderr)
        for label, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
            t, lo, f = (jax_cpu.get((label, what), 0.0) for what in ("trace", "lower", "fetch"))
            print(f"{label:45s} {seconds:6.3f}  ({t:.3f} / {lo:.3f} / {f:.3f})", file=sys.stderr)
        print(f"{'total':45s} {total:6.3f}  load {os.getloadavg()[0]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
