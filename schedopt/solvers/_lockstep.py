"""Lockstep batching: many independent solves, one vectorised JAX call per step.

:func:`run` solves a batch of problems, each by its ordinary one-problem code (solver
``jax``: warm-start sweeps, L-BFGS-B with restarts, the augmented Lagrangian of a sample
budget, the polish of a compressed solve), each in its own thread. Where that code
evaluates its objective or runs a warm-start sweep it calls :func:`call`; inside
:func:`run` the request waits until every solve of the batch has asked for an evaluation
or finished. Then the requests of equal *signature* (function, static arguments, array
shapes) are stacked along the problem axis and evaluated by one compiled, ``vmap``-ped
call, and each solve gets its own row back. Outside :func:`run`, :func:`call` is a plain
call.

Every row of a vectorised call is computed independently of the others, so each problem's
optimiser sees the numbers it would see alone: iterates, stopping decisions and statuses
are those of the one-by-one solve, up to the floating-point rounding of the vectorised
kernels. Host work between evaluations (L-BFGS-B's two-loop recursion on a few hundred
parameters) stays per problem; the dynamics, which cost :math:`O(TN)` per evaluation,
run once per step for the whole batch.

**Shapes.** A call's rows are padded to a power of two with the last requests of solves
that are finished or busy elsewhere (their results are dropped), so a batch of ``B``
problems compiles at most :math:`\\log_2 B + 1` programs per signature, and a batch that
stays at one size re-uses its stacked constant arrays (tables) without copying them. On a
CPU the rows are instead cut into pieces of powers of two (below), without padding.

**Pieces (CPU).** On a CPU a vectorised step is fastest per row while the rows' per-step
state stays in cache; beyond about :data:`CPU_ROW_ENTRIES` rows x modes its cost per row
rises by a third to a half, whatever ``T`` (measured: ``benchmarks/README.md``, "Batched
solves"). A caller passes the modes of a row (``modes``); on a CPU the rows are then evaluated
in pieces of at most ``CPU_ROW_ENTRIES / modes`` rows (a power of two), all dispatched before
any is read, the rest after the full pieces cut into its binary digits (:func:`_piece_sizes`).
Each row is computed by the same program whatever the piece, so the numbers do not change.
Other devices take the rows in one call.

**Shared host work.** :func:`shared` computes a value once per batch for every solve that
asks with the same key (the compressed spectrum of problems with one model spectrum); a
solve alone computes it itself. The value is the one it would compute alone.

**Devices.** Nothing here is host-bound except the optimiser itself: the evaluated
function is an ordinary jitted JAX function, placed by JAX on its default device.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt._jax import jax

__all__ = ["CPU_ROW_ENTRIES", "Lockstep", "call", "max_rows", "run", "shared"]

_local = threading.local()

#: Rows x modes of one vectorised call on a CPU (see "Pieces" in the module docstring): the SGD
#: value-and-gradient's and the sweep's cost per row is lowest at 64 rows of 128 modes (5-7 % below
#: 32 rows, a third above at 128) on the 2-core machine of ``benchmarks/README.md``.
CPU_ROW_ENTRIES = 8192


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

    def __init__(self, slots: int) -> None:
        self._lock = threading.Lock()
        # One solve at a time runs its own (host) code, the one holding the baton: concurrent
        # NumPy/BLAS calls of many threads oversubscribe the cores (measured: an eigh 100x slower
        # among 16 threads). The baton goes from thread to thread in slot order (``_runnable``: the
        # events of the solves whose turn is due), so one thread wakes at a time: a lock all of
        # them contended for after each vectorised step cost ~40 us a solve and step.
        self._runnable: collections.deque[threading.Event] = collections.deque()
        self._running = slots
        self._pending: dict[int, _Request] = {}
        self._last: dict[tuple, dict[int, _Request]] = {}  # signature -> slot -> its last request
        self._stacks: dict[tuple, tuple[tuple, list[Any]]] = {}  # signature -> (rows' arg objects, stacked)
        self.memo: dict[Any, Any] = {}  # :func:`shared`'s values, by key
        self.arg_signatures: dict[int, tuple[Any, tuple]] = {}  # see :func:`_signature`
        self.calls = 0  # vectorised steps made (one per signature and rendezvous)
        self.pieces = 0  # compiled calls they took (several on a CPU beyond ``max_rows``)
        self.rows = 0  # rows evaluated in them (padding included)

    def submit(self, request: _Request) -> Any:
        with self._lock:
            self._pending[request.slot] = request
            ready = self._take_ready()
        self._evaluate(ready)
        self._pass_baton()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def finish(self) -> None:
        with self._lock:
            self._running -= 1
            ready = self._take_ready()
        self._evaluate(ready)
        self._pass_baton()

    def _pass_baton(self) -> None:
        """Wake the next solve whose turn is due (every running solve is either waiting for its turn
        or has a request pending; when none waits, the pending ones were just evaluated)."""
        with self._lock:
            event = self._runnable.popleft() if self._runnable else None
        if event is not None:
            event.set()

    def _take_ready(self) -> list[_Request]:
        """Every pending request, once each running solve has made one (call with the lock held)."""
        if not self._pending or len(self._pending) < self._running:
            return []
        ready = [self._pending[s] for s in sorted(self._pending)]
        self._pending.clear()
        return ready

    def _evaluate(self, ready: Sequence[_Request]) -> None:
        groups: dict[tuple, list[_Request]] = {}
        for r in ready:
            groups.setdefault(r.signature, []).append(r)
        try:
            for signature, requests in groups.items():
                try:
                    self._evaluate_group(signature, requests)
                except Exception as exc:  # delivered to every solve of the group, which re-raises it
                    for r in requests:
                        r.error = exc
        finally:
            with self._lock:  # their turns, in slot order
                self._runnable.extend(r.done for r in ready)

    def _evaluate_group(self, signature: tuple, requests: list[_Request]) -> None:
        last = self._last.setdefault(signature, {})
        for r in requests:
            last[r.slot] = r
        sizes = _piece_sizes(len(requests), requests[0].rows)
        size = sum(sizes)
        asking = {r.slot for r in requests}
        fillers = [last[s] for s in sorted(last) if s not in asking][: size - len(requests)]
        rows = sorted([*requests, *fillers], key=lambda r: r.slot)
        rows += [requests[0]] * (size - len(rows))
        first = requests[0]
        args = self._stack(signature, rows)
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
        self.calls += 1
        self.pieces += len(sizes)
        self.rows += len(rows)
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
        since the previous call (same objects) re-uses its stacked array."""
        previous_objects, previous = self._stacks.get(signature, ((), []))
        objects, stacked = [], []
        for j in range(len(rows[0].args)):
            column = tuple(r.args[j] for r in rows)
            objects.append(column)
            if j < len(previous_objects) and len(previous_objects[j]) == len(column):
                if all(a is b for a, b in zip(previous_objects[j], column, strict=True)):
                    stacked.append(previous[j])
                    continue
            join = np.concatenate if rows[0].stacked else np.stack
            stacked.append(
                jax.tree_util.tree_map(
                    lambda *leaves, join=join: join([np.asarray(x) for x in leaves]), *column
                )
            )
        self._stacks[signature] = (tuple(objects), stacked)
        return stacked


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


def run(tasks: Sequence[Callable[[], Any]]) -> tuple[list[Any], Lockstep]:
    """Run ``tasks`` (one solve each) in lockstep threads; results in order, an exception as its value."""
    lockstep = Lockstep(len(tasks))
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
    lockstep._runnable.extend(turns)
    for t in threads:
        t.start()
    lockstep._pass_baton()
    for t in threads:
        t.join()
    return results, lockstep


def _kept_loss(lam, c0, noise, lr, batch, weights):
    from schedopt.dynamics.recursion import final_loss_jax

    return final_loss_jax(lam, c0, noise, lr, batch, None, weights)


#: :func:`_kept_loss` of stacked rows (a final-loss check of each solve of a batch).
_kept_loss_rows = jax.jit(jax.vmap(_kept_loss))


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
