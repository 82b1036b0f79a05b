"""Where independent tasks run: this process (``local``) or the workers of a Ray cluster (``ray``).

A backend has one method, ``map(function, tasks, *, weights, progress)``: the results of
``function(task)`` for every task, in task order. ``function`` must be a module-level
function and the tasks picklable. Studies and :func:`schedopt.design_many` hand their
independent pieces (chunks of designs, points of a scan) to a backend; what a piece
computes never depends on the backend, so results are identical across backends.

**Ray** (optional extra: ``pip install "schedopt[ray]"``). ``address=None`` starts a local
cluster (``num_cpus`` workers, default: every CPU) and stops it on :meth:`RayBackend.close`;
an address (``"host:port"`` or ``"auto"``) joins an existing cluster and leaves it running.
Each task is a Ray task of one CPU, and a batch it solves plans its threads for
that one core (the lockstep's, :mod:`schedopt.solvers._lockstep`), not for every core of
the node its process sees. A task whose worker process dies (killed,
out of memory, node lost) is re-run by Ray up to ``max_retries`` times; results are
collected per task reference, so a retried task gives exactly one result: none is lost or
counted twice. An error raised by the task itself (a bug, bad input) is not retried: it
is raised in the caller as the task raised it.

Progress is reported as ``(done, total)`` in units of the tasks' ``weights`` (default 1
each), e.g. designs rather than chunks.
"""

from __future__ import annotations

import copyreg
import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from schedopt.errors import SchedoptError

__all__ = ["BACKENDS", "BackendError", "LocalBackend", "RayBackend", "get_backend"]

BACKENDS = ("local", "ray")

#: The start of the warning JAX's at-fork hook gives once its threads run (``jax._src.xla_bridge``).
_JAX_FORK_WARNING = r"os\.fork\(\) was called"
logger = logging.getLogger(__name__)


def _rebuild(cls, fields: dict[str, Any]):
    return cls(**fields)


def _reduce_problem(problem):
    """Pickle a Problem by its fields (its read-only ``controls`` view cannot be pickled as it is)."""
    fields = {f.name: getattr(problem, f.name) for f in dataclasses.fields(problem)}
    fields["controls"] = dict(fields["controls"])
    return _rebuild, (type(problem), fields)


def _register_pickling() -> None:
    """Problems travel to Ray's workers; copyreg (which cloudpickle honours) says how."""
    from schedopt.problem import Problem

    copyreg.pickle(Problem, _reduce_problem)


_register_pickling()  # here, so that a worker that unpickles a task has it for its results too


class BackendError(SchedoptError):
    """A backend could not be started or lost its tasks (missing extra, unreachable cluster, dead workers)."""


def _report(progress, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


class LocalBackend:
    """Run the tasks one after another in this process."""

    name = "local"

    def map(
        self,
        function: Callable[[Any], Any],
        tasks: Sequence[Any],
        *,
        weights: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        weights = list(weights) if weights is not None else [1] * len(tasks)
        total, done, out = sum(weights), 0, []
        for task, w in zip(tasks, weights, strict=True):
            out.append(function(task))
            done += w
            _report(progress, done, total)
        return out

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendError('the Ray backend needs the optional extra: pip install "schedopt[ray]"') from None
    return ray


#: Further attempts to start a local cluster whose raylet did not register in time (Ray waits
#: 30 s; on an overloaded machine that can fail once).
START_RETRIES = 1
#: Seconds to wait for a cluster's address to accept a connection (Ray itself retries for minutes).
CONNECT_TIMEOUT = 5.0


def _check_reachable(address: str) -> None:
    """A ``host:port`` address must accept a TCP connection (``auto`` and ``ray://`` are Ray's to resolve)."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BackendError(f"`--address` must be HOST:PORT or 'auto', got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendError(f"no Ray cluster reachable at --address {address!r}: {reason}") from None


#: CPUs a Ray task asks for (and plans its batch's threads for: :func:`_run_on_cores`).
TASK_CPUS = 1


def _run_on_cores(function: Callable[[Any], Any], cores: int, task: Any) -> Any:
    """``function(task)`` with batches planned for ``cores`` cores: a worker's process sees every core
    of its node, but Ray reserved ``cores`` of them for the task."""
    from schedopt.solvers import _lockstep

    with _lockstep.cores_limit(cores):
        return function(task)


class RayBackend:
    """Run the tasks on a Ray cluster (see the module docstring)."""

    name = "ray"

    def __init__(
        self, address: str | None = None, *, num_cpus: int | None = None, max_retries: int = 3
    ) -> None:
        if num_cpus is not None and (
            isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1
        ):
            raise BackendError(f"`num_cpus` must be a positive integer, got {num_cpus!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise BackendError(f"`max_retries` must be a non-negative integer, got {max_retries!r}")
        ray = _import_ray()
        if address is not None:
            _check_reachable(address)
        self.address = address
        self.max_retries = max_retries
        self._owned = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if address is None:
                kwargs["num_cpus"] = num_cpus if num_cpus is not None else (os.cpu_count() or 1)
            else:
                kwargs["address"] = address
            for attempt in range(1 + START_RETRIES):
                try:
                    with warnings.catch_warnings():
                        # Ray starts its processes by fork and exec (with a preexec function), which
                        # runs JAX's at-fork hook: its "will likely lead to a deadlock" warning is
                        # about a child that keeps running JAX's threads, which these do not
                        warnings.filterwarnings("ignore", message=_JAX_FORK_WARNING, category=RuntimeWarning)
                        ray.init(**kwargs)
                    break
                except Exception as exc:  # Ray raises bare Exception when its raylet starts too slowly
                    ray.shutdown()  # stop what the attempt started
                    if attempt < START_RETRIES and address is None:
                        logger.warning("Ray cluster did not start (%s); retrying once", exc)
                        continue
                    where = f"at --address {address!r}" if address else "locally"
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise BackendError(f"could not start or reach a Ray cluster {where}: {first}") from None
            self._owned = address is None

    def map(
        self,
        function: Callable[[Any], Any],
        tasks: Sequence[Any],
        *,
        weights: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        ray = _import_ray()
        from ray.exceptions import RayTaskError, WorkerCrashedError

        weights = list(weights) if weights is not None else [1] * len(tasks)
        remote = ray.remote(num_cpus=TASK_CPUS, max_retries=self.max_retries, retry_exceptions=False)(
            _run_on_cores
        ).options(name=getattr(function, "__name__", "task"))  # the dashboard shows the function's name
        refs = [remote.remote(function, TASK_CPUS, task) for task in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(tasks)
        total, done, waiting = sum(weights), 0, list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            for ref in ready:
                i = index[ref]
                try:
                    results[i] = ray.get(ref)
                except RayTaskError as exc:  # the task itself raised: re-raise its own error
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    for other in waiting:
                        ray.cancel(other)
                    raise cause from None
                except WorkerCrashedError:
                    for other in waiting:
                        ray.cancel(other)
                    raise BackendError(
                        f"a Ray worker died running task {i + 1} of {len(tasks)} and its "
                        f"{self.max_retries} retries"
                    ) from None
                done += weights[i]
                _report(progress, done, total)
        return results

    def close(self) -> None:
        """Stop the local cluster this backend started (a joined cluster keeps running)."""
        if self._owned:
            ray = _import_ray()
            ray.shutdown()
            self._owned = False

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get_backend(name: str = "local", address: str | None = None, **kwargs: Any) -> LocalBackend | RayBackend:
    """The backend called ``name`` (``"local"`` or ``"ray"``); ``address`` is Ray's (default: a local cluster)."""
    if name == "local":
        if address is not None:
            raise BackendError(
                f"`--address` needs `--backend ray`, got backend {name!r} and address {address!r}"
            )
        return LocalBackend()
    if name == "ray":
        return RayBackend(address, **kwargs)
    raise BackendError(f"`backend` must be one of {', '.join(BACKENDS)}, got {name!r}")
