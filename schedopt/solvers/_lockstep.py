"""Lockstep batching: many independent solves, their evaluations stacked into vectorised JAX calls.

:func:`run` solves a batch of problems, each by its ordinary one-problem code (solver
``jax``: warm-start sweeps, L-BFGS-B with restarts, the augmented Lagrangian of a sample
budget, the polish of a compressed solve), each in its own thread. Where that code
evaluates its objective or runs a warm-start sweep it calls :func:`call`; inside
:func:`run` the request waits with the other solves' requests of equal *signature*
(function, static arguments, array shapes) until they are stacked along the problem axis
and evaluated by one compiled, ``vmap``-ped call (below: when), and each solve gets its own
row back. Outside :func:`run`, :func:`call` is a plain call.

Every row of a vectorised call is computed independently of the others, so each problem's
optimiser sees the numbers it would see alone: iterates, stopping decisions and statuses
are those of the one-by-one solve, up to the floating-point rounding of the vectorised
kernels, whichever rows share its call. Host work between evaluations (L-BFGS-B's two-loop
recursion on a few hundred parameters) stays per problem; the dynamics, which cost
:math:`O(TN)` per evaluation, run once per step for a whole call's rows.

**Scheduling.** One solve at a time runs its host code (it holds the *baton*, passed from
solve to solve in turn); the vectorised calls run on a small pool of threads (``workers``:
:func:`default_workers`, two a usable core on a CPU, one elsewhere), which JAX leaves free
of the GIL while a call executes, so that on a CPU the calls of several pieces use several
cores and the host code of some solves overlaps the calls of others. A caller passes the
modes of a row (``modes``); on a CPU a call takes at most :func:`max_rows` rows (a *piece*),
and a full piece starts as soon as a thread is free. Requests that fill no piece wait
while any solve runs or waits to run host code; once none does, they are spread over the
free threads, no more calls in flight than usable cores (:func:`_spread`). Elsewhere (no row
limit) every request of a step waits for the others: the step is one call per signature, on
one thread, as a rendezvous.

**Shapes.** Without a row limit a call's rows are padded to a power of two with the last
requests of solves that are finished or busy elsewhere (their results are dropped), so a
batch of ``B`` problems compiles at most :math:`\\log_2 B + 1` programs per signature, and a
batch that stays at one size re-uses its stacked constant arrays (tables) without copying
them. On a CPU a call's rows are instead cut into the binary digits of their count
(:func:`_piece_sizes`), all dispatched before any is read, without padding (a row costs what
it computes there): at most :math:`\\log_2` ``max_rows`` :math:`+ 1` programs a signature.

**Pieces (CPU).** On a CPU a vectorised step is fastest per row while the rows' per-step
state stays in cache; beyond about :data:`CPU_ROW_ENTRIES` rows x modes its cost per row
rises, whatever ``T`` (measured: ``benchmarks/README.md``, "Batched solves"). A program of
several rows is traced inside :func:`schedopt.dynamics.adjoint.whole_loops`, which compiles the
loops over a chunk's steps into single kernels instead of XLA's step-by-step dispatch of a
step's kernels (that dispatch was half of a row's cost at 8 rows); so is a one-row program of
at most :data:`~schedopt.dynamics.adjoint.WHOLE_LOOP_ENTRIES` state entries, as a one-by-one
solve on a compressed spectrum runs it (:func:`~schedopt.dynamics.adjoint.whole_loops_for`).
Each row is computed by the same program whatever the piece and whichever thread runs it, and a multi-row program's rows equal the one-row program's:
bitwise where measured on the solver's programs (8-row pieces, a 256-problem batch), to the
last bit of a few gradient entries in general (``tests/test_batch.py``), so the numbers do not
change beyond rounding.

**Shared host work.** :func:`shared` computes a value once per batch for every solve that
asks with the same key (the compressed spectrum of problems with one model spectrum); a
solve alone computes it itself. The value is the one it would compute alone.

**Devices.** Nothing here is host-bound except the optimiser itself: the evaluated
function is an ordinary jitted JAX function, placed by JAX on its default device.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt._jax import jax
from schedopt.dynamics.adjoint import vmap_rows

__all__ = [
    "CPU_ROW_ENTRIES",
    "CPU_WORKERS",
    "Lockstep",
    "call",
    "cores_limit",
    "default_workers",
    "max_rows",
    "run",
    "shared",
]

_local = threading.local()

#: Rows x modes of one vectorised call on a CPU (see "Pieces" in the module docstring): 8 rows of 128
#: modes. The SGD value-and-gradient cost 0.33 ms a row at 8 rows against 0.36-0.40 at 64 and 0.63
#: alone at low load; under load (~3) every size from 4 to 64 rows cost 0.53-0.72 (sweep 0.58-0.75)
#: against 0.77 (1.35) alone, and two threads running 8 rows each 0.42 (0.32) ms of wall a row. Small
#: pieces fill sooner, so both threads stay busy while the solves' host code runs (benchmarks/README.md).
#: With whole-loop kernels (``adjoint.whole_loops``; load ~4): value-and-gradient 0.33-0.35 ms a row at
#: 4 rows, 0.38-0.43 at 8, 0.45-0.57 at 16, 0.54-0.65 at 32 (0.73-0.80 alone); sweep 0.30-0.33 at 4,
#: 0.29 at 8, 0.45 at 16 (1.26-1.31 alone). 512 and 2048 entries a piece gave batches no steadier gain.
CPU_ROW_ENTRIES = 1024
#: Most threads evaluating vectorised calls at once on a CPU: two a usable core, at most this many.
#: A call's thread also runs Python (stacking its rows, handing results back), waiting for the GIL
#: while a solve runs its host code; a second call a core keeps the core busy meanwhile (2 cores,
#: B = 256: 5.1-5.6 s against 5.6-6.2 with one call a core, 3-6 % less CPU; B = 32-64: no difference).
CPU_WORKERS = 4
#: Stacked argument sets kept for re-use (:meth:`Lockstep._stack`).
_STACKS_KEPT = 64


#: Cores a caller has allotted to this process's work (:func:`cores_limit`), ``None``: no allotment.
_allotted: int | None = None


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, at most what a :func:`cores_limit` allots
    (a Ray task runs with one CPU of a node whose every core its process may see)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores if _allotted is None else max(1, min(cores, _allotted))


@contextlib.contextmanager
def cores_limit(cores: int) -> Iterator[None]:
    """Within the block, batches plan their threads for at most ``cores`` cores (:func:`usable_cores`)."""
    global _allotted
    previous, _allotted = _allotted, max(1, int(cores))
    try:
        yield
    finally:
        _allotted = previous


def default_workers() -> int:
    """Threads evaluating a batch's vectorised calls: two a usable core on a CPU (at most
    :data:`CPU_WORKERS`), one elsewhere (the device runs one call at a time)."""
    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(CPU_WORKERS, 2 * usable_cores()))


def max_rows(modes: int) -> int | None:
    """Rows of one vectorised call with ``modes`` modes a row: a power of two on a CPU, ``None``
    (no limit) on other devices."""
    if jax.default_backend() != "cpu":
        return None
    rows = max(1, CPU_ROW_ENTRIES // max(1, int(modes)))
    return 1 << (rows.bit_length() - 1)


@dataclass(eq=False)
class _Request:
    slot: int
    signature: tuple
    function: Callable[..., Any]
    args: tuple
    static: tuple
    stacked: bool  # True: every array of ``args`` already has a leading axis of length 1
    x64: bool  # the requesting thread's float64 scope, re-entered for the vectorised call
    rows: int | None  # most rows of one vectorised call (``None``: no limit)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


def _arg_signature(arg) -> tuple:
    """Tree structure, shapes and dtypes of one argument (a pytree of arrays and scalars)."""
    leaves, tree = jax.tree_util.tree_flatten(arg)
    return (
        tree,
        tuple((np.shape(a), np.dtype(a.dtype if hasattr(a, "dtype") else type(a)).str) for a in leaves),
    )


def _signature(function, args, static, stacked, known: dict[int, tuple[Any, tuple]]) -> tuple:
    """The request's signature; ``known``: the batch's signatures of the dicts its solves pass unchanged
    call after call (a group's tables), by ``id``, with the object itself so that the ``id`` stays its own."""
    parts = []
    for a in args:
        if isinstance(a, np.ndarray):  # the common case, without flattening a tree
            parts.append((a.shape, a.dtype.str))
        elif isinstance(a, dict):  # tables: the same object every call of a solve
            entry = known.get(id(a))
            if entry is None or entry[0] is not a:
                entry = known[id(a)] = (a, _arg_signature(a))
            parts.append(entry[1])
        else:
            parts.append(_arg_signature(a))
    return (id(function), tuple(static), stacked, tuple(parts))


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _piece_sizes(n: int, limit: int | None) -> list[int]:
    """Rows of each compiled call for ``n`` requests: powers of two, at most ``limit`` each.

    Without a limit (not a CPU), one call padded to a power of two. With one, full pieces of
    ``limit`` rows and the rest cut into its binary digits (45 rows: 32 + 8 + 4 + 1), so that no
    row is padding: on a CPU a row costs what it computes, and a call's fixed cost is about one
    row's (padding 45 requests to 64 rows cost 19 rows, the three more calls about three).
    """
    if limit is None:
        return [_next_power_of_two(n)]
    full, rest = divmod(n, limit)
    return [limit] * full + [1 << k for k in reversed(range(rest.bit_length())) if rest >> k & 1]


class Lockstep:
    """The rendezvous of the solves of one batch (see the module docstring)."""

    def __init__(self, slots: int, workers: int = 1, cores: int | None = None) -> None:
        self._lock = threading.Lock()
        # One solve at a time runs its own (host) code, the one holding the baton: concurrent
        # NumPy/BLAS calls of many threads oversubscribe the cores (measured: an eigh 100x slower
        # among 16 threads). The baton goes from thread to thread in turn (``_runnable``: the events
        # of the solves whose turn is due), so one thread wakes at a time: a lock all of them
        # contended for after each vectorised step cost ~40 us a solve and step.
        self._runnable: collections.deque[threading.Event] = collections.deque()
        self._host = False  # a solve holds the baton
        self._pending: dict[tuple, list[_Request]] = {}  # signature -> requests waiting for a call
        self.workers = max(1, int(workers))  # threads evaluating vectorised calls (``run``'s pool)
        self._idle = self.workers
        # calls the last requests of a step are spread over, at most (a piece of 2 rows costs more a
        # row than one of 4: more calls than cores would only split them finer)
        self.cores = self.workers if cores is None else max(1, int(cores))
        self._pool: concurrent.futures.Executor | None = None
        self._last: dict[tuple, dict[int, _Request]] = {}  # signature -> slot -> its last request
        self._stacks: dict[
            tuple, tuple[tuple, list[Any]]
        ] = {}  # (signature, slots) -> (arg objects, stacked)
        self.memo: dict[Any, Any] = {}  # :func:`shared`'s values, by key
        self.arg_signatures: dict[int, tuple[Any, tuple]] = {}  # see :func:`_signature`
        self.calls = 0  # vectorised calls made (a group of requests of one signature evaluated together)
        self.pieces = 0  # compiled calls they took (several on a CPU beyond ``max_rows``)
        self.rows = 0  # rows evaluated in them (padding included)
        self.largest_piece = 0  # most rows of one compiled call
        self.most_concurrent = 0  # most calls in flight at once

    def submit(self, request: _Request) -> Any:
        with self._lock:
            self._pending.setdefault(request.signature, []).append(request)
            self._host = False
            jobs, turn = self._dispatch(), self._grant()
        self._launch(jobs, turn)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def finish(self) -> None:
        with self._lock:
            self._host = False
            jobs, turn = self._dispatch(), self._grant()
        self._launch(jobs, turn)

    def start(self, turns: Sequence[threading.Event], pool: concurrent.futures.Executor) -> None:
        """Queue the solves' first turns and hand out the first one; calls run on ``pool``."""
        self._pool = pool
        with self._lock:
            self._runnable.extend(turns)
            turn = self._grant()
        self._launch([], turn)

    def _grant(self) -> threading.Event | None:
        """The next turn due, when no solve holds the baton (call with the lock held)."""
        if self._host or not self._runnable:
            return None
        self._host = True
        return self._runnable.popleft()

    def _dispatch(self) -> list[list[list[_Request]]]:
        """The jobs to start now, each a list of groups (requests of one signature), one job a free
        thread (call with the lock held; see "Scheduling" in the module docstring)."""
        jobs: list[list[list[_Request]]] = []
        waiting = self._host or bool(self._runnable)  # a solve runs or waits to run host code
        for requests in self._pending.values() if waiting else ():  # full pieces, while a thread is free
            limit = requests[0].rows
            while limit is not None and len(requests) >= limit and self._idle > len(jobs):
                jobs.append([requests[:limit]])
                del requests[:limit]
        if not waiting and self._idle:  # nothing more to come
            unlimited = [r for r in self._pending.values() if r and r[0].rows is None]
            if unlimited:  # not a CPU: one job, every signature's requests in one call
                jobs.append([list(r) for r in unlimited])
            limited = [r for r in self._pending.values() if r and r[0].rows is not None]
            if limited and self._idle > len(jobs):
                in_flight = self.workers - self._idle + len(jobs)
                jobs.extend(_spread(limited, max(1, min(self._idle - len(jobs), self.cores - in_flight))))
            else:
                limited = []
            for requests in (*unlimited, *limited):
                requests.clear()
        for signature in [s for s, r in self._pending.items() if not r]:
            del self._pending[signature]
        self._idle -= len(jobs)
        self.most_concurrent = max(self.most_concurrent, self.workers - self._idle)
        return jobs

    def _launch(self, jobs: list[list[list[_Request]]], turn: threading.Event | None) -> None:
        for job in jobs:
            assert self._pool is not None
            self._pool.submit(self._work, job)
        if turn is not None:
            turn.set()

    def _work(self, job: list[list[_Request]]) -> None:
        """Evaluate a job's groups in turn (on a thread of the pool), each group's solves returned to
        their turns as soon as it is evaluated."""
        for k, requests in enumerate(job):
            try:
                self._evaluate_group(requests)
            except BaseException as exc:  # delivered to every solve of the group, which re-raises it
                for r in requests:
                    r.error = exc
            with self._lock:
                self._runnable.extend(r.done for r in requests)
                if k == len(job) - 1:
                    self._idle += 1
                jobs, turn = self._dispatch(), self._grant()
            self._launch(jobs, turn)

    def _evaluate_group(self, requests: list[_Request]) -> None:
        first = requests[0]
        sizes = _piece_sizes(len(requests), first.rows)
        size = sum(sizes)
        rows = sorted(requests, key=lambda r: r.slot)
        if first.rows is None:  # no row limit: padded with the last requests of other solves
            last = self._last.setdefault(first.signature, {})
            for r in requests:
                last[r.slot] = r
            if size > len(requests):  # (with a limit the pieces hold exactly the requests)
                asking = {r.slot for r in requests}
                fillers = [last[s] for s in sorted(last) if s not in asking][: size - len(requests)]
                rows = sorted([*requests, *fillers], key=lambda r: r.slot)
                rows += [first] * (size - len(rows))
        args = self._stack(first.signature, rows)
        with jax.enable_x64(first.x64):  # the evaluating thread may be outside its own solve's scope
            if len(sizes) == 1:
                out = jax.device_get(first.function(*args, *first.static))
            else:  # every piece dispatched before any is read
                pending, start = [], 0
                for n in sizes:
                    piece = jax.tree_util.tree_map(lambda a, s=start, n=n: a[s : s + n], args)
                    pending.append(first.function(*piece, *first.static))
                    start += n
                parts = jax.device_get(pending)
                out = jax.tree_util.tree_map(lambda *leaves: np.concatenate(leaves), *parts)
        with self._lock:
            self.calls += 1
            self.pieces += len(sizes)
            self.rows += len(rows)
            self.largest_piece = max(self.largest_piece, *sizes)
        position = {id(r): i for i, r in reversed(list(enumerate(rows)))}
        leaves, tree = jax.tree_util.tree_flatten(out)
        leaves = [np.asarray(a) for a in leaves]
        for r in requests:
            i = position[id(r)]
            if r.stacked:
                r.result = tree.unflatten([a[i : i + 1] for a in leaves])
            else:
                r.result = tree.unflatten([a[i] for a in leaves])

    def _stack(self, signature: tuple, rows: list[_Request]) -> list[Any]:
        """The rows' arguments stacked on a leading axis; an argument every row passes unchanged
        since the previous call of the same rows (same objects) re-uses its stacked array."""
        key = (signature, tuple(r.slot for r in rows))
        with self._lock:
            previous_objects, previous = self._stacks.pop(key, ((), []))
        objects, stacked = [], []
        for j in range(len(rows[0].args)):
            column = tuple(r.args[j] for r in rows)
            objects.append(column)
            if j < len(previous_objects) and all(
                a is b for a, b in zip(previous_objects[j], column, strict=True)
            ):
                stacked.append(previous[j])
                continue
            join = np.concatenate if rows[0].stacked else np.stack
            stacked.append(
                jax.tree_util.tree_map(
                    lambda *leaves, join=join: join([np.asarray(x) for x in leaves]), *column
                )
            )
        with self._lock:
            self._stacks[key] = (tuple(objects), stacked)
            while len(self._stacks) > _STACKS_KEPT:  # the least recently used
                del self._stacks[next(iter(self._stacks))]
        return stacked


def _spread(groups: list[list[_Request]], threads: int) -> list[list[list[_Request]]]:
    """Pending groups cut into at most ``threads`` jobs of near-equal rows, no piece above its
    ``max_rows``: the last requests of a step, when no solve has host work left to add to them."""
    total = sum(len(g) for g in groups)
    count = min(threads, total)
    share = -(-total // count)
    parts = []
    for g in groups:
        size = min(g[0].rows or share, share)
        parts.extend(g[s : s + size] for s in range(0, len(g), size))
    jobs: list[list[list[_Request]]] = [[] for _ in range(count)]
    load = [0] * count
    for part in sorted(parts, key=len, reverse=True):
        j = load.index(min(load))
        jobs[j].append(part)
        load[j] += len(part)
    return [job for job in jobs if job]


def call(
    function: Callable[..., Any],
    batched: Callable[..., Any],
    args: tuple,
    static: tuple = (),
    *,
    stacked: bool = False,
    modes: int | None = None,
) -> Any:
    """``function(*args, *static)``, or, inside :func:`run`, one row of ``batched`` on the stacked batch.

    Args:
        function: the one-problem function (called as it is outside a lockstep).
        batched: the same over a leading problem axis of every array in ``args``
            (``jax.vmap`` of ``function``, or ``function`` itself when ``stacked``).
        args: pytrees of arrays, the per-problem arguments.
        static: hashable trailing arguments, equal across a vectorised call.
        stacked: the arrays of ``args`` already carry a leading axis of length 1 (and the
            results keep it).
        modes: the modes of a row's state, when a vectorised call should be cut into pieces on a
            CPU (:func:`max_rows`); ``None``: one call.
    """
    lockstep: Lockstep | None = getattr(_local, "lockstep", None)
    if lockstep is None:
        return function(*args, *static)
    x64 = bool(jax.config.read("jax_enable_x64"))
    rows = None if modes is None else max_rows(modes)
    request = _Request(
        slot=_local.slot,
        signature=(*_signature(batched, args, static, stacked, lockstep.arg_signatures), x64, rows),
        function=batched,
        args=tuple(args),
        static=tuple(static),
        stacked=stacked,
        x64=x64,
        rows=rows,
    )
    return lockstep.submit(request)


def batching() -> bool:
    """Whether this thread's solve runs inside :func:`run` (its arrays are stacked on the host there)."""
    return getattr(_local, "lockstep", None) is not None


def shared(key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()``, or inside :func:`run` its value for ``key`` computed once for the whole batch.

    ``key`` (hashable) must determine the value; the value must not be mutated by its users.
    Solves run their host code one at a time (the baton), so no two compute the same key at once.
    """
    lockstep: Lockstep | None = getattr(_local, "lockstep", None)
    if lockstep is None:
        return compute()
    if key not in lockstep.memo:
        lockstep.memo[key] = compute()
    return lockstep.memo[key]


def run(tasks: Sequence[Callable[[], Any]], *, workers: int | None = None) -> tuple[list[Any], Lockstep]:
    """Run ``tasks`` (one solve each) in lockstep threads; results in order, an exception as its value.

    ``workers``: threads evaluating vectorised calls (default :func:`default_workers`).
    """
    lockstep = Lockstep(len(tasks), default_workers() if workers is None else workers, usable_cores())
    results: list[Any] = [None] * len(tasks)

    turns = [threading.Event() for _ in tasks]

    def worker(slot: int) -> None:
        _local.lockstep, _local.slot = lockstep, slot
        turns[slot].wait()
        try:
            results[slot] = tasks[slot]()
        except Exception as exc:  # returned to the caller, who decides per problem
            results[slot] = exc
        finally:
            _local.lockstep = None
            lockstep.finish()

    if len(tasks) == 1:  # nothing to batch with: run in the caller's thread, as a plain solve
        try:
            results[0] = tasks[0]()
        except Exception as exc:
            results[0] = exc
        return results, lockstep
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(tasks))]
    with concurrent.futures.ThreadPoolExecutor(lockstep.workers, thread_name_prefix="lockstep") as pool:
        lockstep.start(turns, pool)  # the first solves run while the others' threads start
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results, lockstep


def _kept_loss(lam, c0, noise, lr, batch, weights):
    from schedopt.dynamics.recursion import final_loss_jax

    return final_loss_jax(lam, c0, noise, lr, batch, None, weights)


#: :func:`_kept_loss` of stacked rows (a final-loss check of each solve of a batch).
_kept_loss_rows = jax.jit(vmap_rows(_kept_loss))


def final_loss(model, learning_rate, *, batch_size=1.0, momentum=None, modes=None) -> float:
    """:func:`schedopt.dynamics.recursion.final_loss` of one schedule; inside :func:`run`, for plain
    SGD, one row of a vectorised call (the check every solve of a batch makes at the same point).

    The row's value is the one the plain call computes (the same recursion, residual and
    divergence limit; the vectorised kernel rounds like the single one: ``tests/test_batch.py``).
    """
    from schedopt.dynamics import recursion
    from schedopt.dynamics.compression import spectrum

    lockstep: Lockstep | None = getattr(_local, "lockstep", None)
    if lockstep is None or momentum is not None:
        return recursion.final_loss(
            model, learning_rate, batch_size=batch_size, momentum=momentum, modes=modes
        )
    lr, m, _ = recursion._controls(model, learning_rate, batch_size, None)
    if lr.ndim != 1:
        return recursion.final_loss(model, learning_rate, batch_size=batch_size, modes=modes)
    lam, c0, weights = spectrum(model, modes)
    args = (
        lam,
        c0,
        np.float64(model.effective_noise),
        lr,
        np.ascontiguousarray(m),
        weights,  # None: the eigenvalues, as the plain call has it
    )
    out = np.asarray(call(_kept_loss, _kept_loss_rows, args, modes=int(lam.size))) + model.residual
    limit = recursion.divergence_limit(model)
    return float(np.where(np.isfinite(out) & (out <= limit), out, np.inf))
