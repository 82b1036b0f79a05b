"""One BLAS thread inside schedopt's own computations, restored afterwards.

schedopt's host-side linear algebra is small (SciPy's L-BFGS-B on a few hundred parameters,
the fit's least squares; JAX does not use OpenBLAS), and OpenBLAS's idle workers busy-wait
after every threaded call: at its default thread count on a loaded 2-core machine a warm
solve cost 2-10x the CPU seconds of the same solve on one thread (benchmarks/README.md,
BLAS threads in the Python API). The ``schedopt`` command sets ``OPENBLAS_NUM_THREADS=1`` before NumPy loads
(``schedopt.cli._app``); a library user's process has NumPy loaded already, so schedopt
limits the thread count of every BLAS library loaded in the process (through
``threadpoolctl``) for the duration of its own calls, and puts back what it found on return.

:func:`one_blas_thread` is entered by every public function that runs schedopt's numerics
(``schedopt._jax.float64`` enters it). The scope is process-wide (a BLAS library has one
thread count per process, not per thread), so it is counted: the first call to enter it
(from any thread) records each library's thread count and sets it to one, nested and
concurrent calls only count, and the last to leave restores the recorded counts. While a
schedopt call runs, BLAS calls of the caller's other threads run on one thread too.
A library loaded during the scope (SciPy's OpenBLAS on the first solve) is found at the next
entry (the solver's own entry point, inside ``schedopt.solve``): the process's modules are
rescanned whenever ``sys.modules`` has grown.

Nothing is changed when the user set a thread count (``OPENBLAS_NUM_THREADS``,
``GOTO_NUM_THREADS`` or ``OMP_NUM_THREADS``, read at each call; the CLI sets the first), and
nothing at import. Results do not depend on it (the designed schedules are bitwise identical
either way, ``tests/test_side_effects.py``). If threadpoolctl cannot inspect the process
(an unknown library, an error or a warning turned into one), the call runs with BLAS as it
was.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["BLAS_THREAD_VARIABLES", "one_blas_thread"]

#: Variables by which a user sets OpenBLAS's thread count; any of them set: schedopt keeps it.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")

#: Internal switch (benchmarks/blas_threads.py): False leaves BLAS's thread counts alone.
enabled = True

_lock = threading.Lock()
_depth = 0  # schedopt calls inside the scope, all threads together
_libraries: list[Any] = []  # threadpoolctl's controllers of the BLAS libraries last found
_scanned = -1  # len(sys.modules) at that scan
_saved: dict[str, tuple[Any, int]] = {}  # filepath -> (controller, thread count found on entry)


def _wanted() -> bool:
    return enabled and not any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES)


def _scan() -> None:
    """Find the BLAS libraries loaded in the process (again only when modules were imported)."""
    global _libraries, _scanned
    modules = len(sys.modules)
    if modules == _scanned:
        return
    _scanned = modules
    try:
        from threadpoolctl import ThreadpoolController

        _libraries = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    except Exception:  # threadpoolctl could not inspect the process: leave BLAS as it is
        _libraries = []


def _limit() -> None:
    """Record and set to one the thread count of each library not yet limited in this scope."""
    for library in _libraries:
        if library.filepath in _saved:
            continue
        try:
            found = library.num_threads
            if found != 1:
                library.set_num_threads(1)
        except Exception:
            continue
        _saved[library.filepath] = (library, found)


def _restore() -> None:
    for library, found in _saved.values():
        if found != 1:
            with contextlib.suppress(Exception):
                library.set_num_threads(found)
    _saved.clear()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with every loaded BLAS library on one thread; restore on leaving (see module)."""
    global _depth
    if not _wanted():
        yield
        return
    with _lock:
        _depth += 1
        try:
            _scan()
            _limit()
        except BaseException:
            _depth -= 1
            if _depth == 0:
                _restore()
            raise
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore()
