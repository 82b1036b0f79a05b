"""JAX set-up shared by every module that uses JAX: scoped float64, persistent compilation cache.

schedopt's dynamics span losses from 1 down to 1e-12 and need float64
(ARCHITECTURE: "float64 everywhere in solvers and dynamics"). That precision is scoped
to schedopt's own computations: every public function that runs JAX is wrapped in
:func:`float64`, which turns on ``jax.enable_x64`` for the duration of the call and in
the calling thread only (JAX keeps it in a thread-local context and in the key of every
compiled program). Nothing here touches the process-wide ``jax_enable_x64``: a user's
model stays float32, and schedopt works the same whether or not the user turned x64 on.
The exported optax schedules run inside the user's step and return the user's default
float dtype (float32 unless the user turned x64 on; see ``schedopt.export.optax``).

Compiling the solver's programs costs seconds in every fresh process, more than the
solve itself; JAX's persistent compilation cache keeps the compiled programs on disk.
The cache is a process-wide JAX setting, so the library never turns it on by itself:
importing schedopt or calling it leaves every ``jax.config`` value as the user had it.
The ``schedopt`` command turns it on for its own process (``SCHEDOPT_CACHE=1``, which
the workers of a Ray cluster it starts inherit); a library user opts in with
:func:`enable_cache` or ``SCHEDOPT_CACHE=1`` in the environment. It lives in
``$SCHEDOPT_CACHE_DIR`` or else ``$XDG_CACHE_HOME/schedopt/jax`` (``~/.cache/schedopt/jax``);
``SCHEDOPT_NO_CACHE=1`` (``schedopt --no-cache``) keeps it off whatever asked for it,
and a cache directory the user gave JAX itself (``jax_compilation_cache_dir``) is left
alone. Every program is cached, however small or quick to compile. JAX's cache skips
only XLA's compilation (its key is a hash of the lowered program, so every program is
still traced and lowered); the solver's own programs are declared with :func:`cached_jit`,
which keeps the compiled executable whole in the same store and runs it untraced.

The cache never decides a result: a cached program is the bytes XLA compiled (results
are bitwise identical with and without it), and the store is :class:`FileCache`, not
JAX's own, because JAX's writes an entry in place (a reader in another process, or a
crash or a full disk mid-write, leaves a truncated entry that is then read back in every
later run). :class:`FileCache` writes each entry to a temporary file and renames it
into place (atomic on POSIX, so concurrent processes see a whole entry or none) and
checks a SHA-256 digest on reading. A corrupt entry is removed and recompiled; a cache
directory that cannot be created, read or written (permissions, a full disk) turns the
cache off for the process. Either gives one :class:`CacheWarning` per process and the
computation runs uncached.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path

import jax

from schedopt._blas import one_blas_thread

__all__ = [
    "CacheWarning",
    "FileCache",
    "cache_dir",
    "cache_requested",
    "cached_jit",
    "disable_cache",
    "enable_cache",
    "float64",
    "jax",
]


def float64(fn):
    """Run ``fn`` with JAX's float64 on for the duration of the call (this thread only).

    The scope is ``jax.enable_x64(True)``: arrays created and programs traced inside the
    call are float64, and the setting the caller had is restored on return (or on an
    exception). Results that leave the call are NumPy values or float64 JAX arrays.
    The call also runs with BLAS on one thread (``schedopt._blas.one_blas_thread``:
    the host-side linear algebra of schedopt's solvers), restored the same way.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True), one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper


logger = logging.getLogger(__name__)

#: Environment variables: "1" to turn the cache on when JAX loads (the CLI sets it), the
#: cache directory, and "1" to keep the cache off.
CACHE_ENV = "SCHEDOPT_CACHE"
CACHE_DIR_ENV = "SCHEDOPT_CACHE_DIR"
NO_CACHE_ENV = "SCHEDOPT_NO_CACHE"
#: File layout of an entry: magic, JAX's value, SHA-256 of the value.
_MAGIC = b"schedopt-jax-cache-1\n"
_DIGEST = 32
_SUFFIX = "-cache"


class _FreshCompile(threading.local):
    """Per thread: whether :func:`cached_jit` is compiling a program to store it (see :func:`_compiled_fresh`)."""

    active = False


_fresh_compile = _FreshCompile()


@contextlib.contextmanager
def _compiled_fresh():
    """In the block, in this thread, JAX's own reads and writes of the store do nothing: a program compiled here
    is compiled by XLA, not an executable JAX loads from one of its entries. Such a loaded executable, serialised
    again, lacks some of its kernels (XLA's CPU runtime: "Function bitcast_pad_fusion not found" in the next
    process): after every change of schedopt's sources, whose programs JAX's entries still held, six programs of a
    fitted design were stored that way and failed in the next process."""
    before, _fresh_compile.active = _fresh_compile.active, True
    try:
        yield
    finally:
        _fresh_compile.active = before


def _jax_entry_while_compiling_fresh(key: str) -> bool:
    """Whether ``key`` is one of JAX's own entries, asked for while this thread compiles a program to store."""
    return _fresh_compile.active and not key.startswith(_PREFIX)


_UNSTORABLE = "-unstorable"  # the mark of a program whose stored form proved unusable (FileCache.discard)


class CacheWarning(UserWarning):
    """The compilation cache could not be used; the computation runs uncached."""


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path | None:
    """The cache directory schedopt uses: ``None`` when ``SCHEDOPT_NO_CACHE`` is set."""
    if _truthy(os.environ.get(NO_CACHE_ENV)):
        return None
    explicit = os.environ.get(CACHE_DIR_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "schedopt" / "jax"


class FileCache:
    """A directory of compiled programs with atomic writes and checked reads (see the module).

    Implements JAX's cache interface (``get``/``put`` of bytes by key); never raises.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._warned = False
        self.disabled = False
        self.hits = 0
        self.misses = 0
        self.writes = 0
        try:
            self._path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._give_up(f"cannot create it ({exc.strerror or exc})")

    @property
    def path(self) -> Path:
        return self._path

    def _warn(self, message: str) -> None:
        with self._lock:
            if self._warned:
                logger.debug("compilation cache: %s", message)
                return
            self._warned = True
        warnings.warn(
            f"schedopt compilation cache {str(self._path)!r}: {message}", CacheWarning, stacklevel=3
        )

    def _give_up(self, reason: str) -> None:
        self.disabled = True
        self._warn(f"{reason}; running without the cache")

    def get(self, key: str) -> bytes | None:
        if self.disabled or _jax_entry_while_compiling_fresh(key):
            return None
        entry = self._path / f"{key}{_SUFFIX}"
        try:
            data = entry.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError as exc:
            self._give_up(f"cannot read {entry.name} ({exc.strerror or exc})")
            return None
        value = data[len(_MAGIC) : -_DIGEST]
        if (
            len(data) < len(_MAGIC) + _DIGEST
            or not data.startswith(_MAGIC)
            or hashlib.sha256(value).digest() != data[-_DIGEST:]
        ):
            self._warn(f"corrupt entry {entry.name} removed; compiling it again")
            try:
                entry.unlink()
            except OSError:
                pass
            self.misses += 1
            return None
        self.hits += 1
        return value

    def discard(self, key: str, reason: str) -> None:
        """Remove an entry that read well but proved unusable, with a warning (once per process), and leave
        a mark in its place (:meth:`storable`): a program that proved unusable once is not stored again, so
        later processes compile it (as ``jax.jit`` would) instead of failing on it every other time."""
        self._warn(
            f"{reason}: entry {key} removed; compiling it again, and in later runs, without storing it"
        )
        try:
            (self._path / f"{key}{_SUFFIX}").unlink(missing_ok=True)
            _write_bytes(self._path / f"{key}{_UNSTORABLE}", b"")
        except OSError:
            pass

    def storable(self, key: str) -> bool:
        """Whether ``key`` may be stored: no earlier run found its stored program unusable (:meth:`discard`)."""
        return not (self._path / f"{key}{_UNSTORABLE}").exists()

    def put(self, key: str, value: bytes) -> None:
        if self.disabled or _jax_entry_while_compiling_fresh(key):
            return  # a program cached_jit stores itself: no second copy under JAX's key
        entry = self._path / f"{key}{_SUFFIX}"
        tmp = self._path / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            _write_bytes(tmp, _MAGIC + value + hashlib.sha256(value).digest())
            os.replace(tmp, entry)  # atomic: readers see the old entry, none, or the whole new one
            self.writes += 1
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            self._give_up(f"cannot write to it ({exc.strerror or exc})")


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


#: The cache schedopt installed in this process (``None``: none, or the user's own).
_active: list[FileCache | None] = [None]


def _compilation_cache_module():
    """JAX's (internal) cache module, or ``None`` if this JAX does not have the hooks used here.

    The hook: ``_initialize_cache`` asks ``get_file_cache(path)`` for the store, which only
    needs ``get``/``put`` (duck-typed; JAX is pinned and tests/test_cache.py checks the hits).
    """
    try:
        from jax._src import compilation_cache as cc
    except ImportError:  # pragma: no cover
        return None
    if not all(hasattr(cc, name) for name in ("get_file_cache", "reset_cache")):  # pragma: no cover
        return None
    return cc


def _store_for(jax_store):
    """JAX's ``get_file_cache`` hook: schedopt's store for its own directory, JAX's for any other."""

    def get_file_cache(path):
        ours = _active[0]
        if ours is not None and str(path) == str(ours.path):
            return ours, str(ours.path)
        return jax_store(path)  # a directory the user set afterwards: JAX's own store

    get_file_cache._schedopt = True
    return get_file_cache


def enable_cache(path: str | os.PathLike | None = None) -> FileCache | None:
    """Turn on the persistent compilation cache in ``path`` (default :func:`cache_dir`).

    Returns the cache, or ``None`` when it stays off: ``SCHEDOPT_NO_CACHE`` set (and no
    ``path``), the user configured JAX's own cache, or this JAX lacks the hooks.
    """
    target = Path(path) if path is not None else cache_dir()
    if target is None:
        return None
    ours = _active[0]
    user_dir = jax.config.jax_compilation_cache_dir
    if user_dir and (ours is None or str(ours.path) != user_dir):
        logger.debug("JAX compilation cache configured by the user at %s; left alone", user_dir)
        return None
    cc = _compilation_cache_module()
    if cc is None:
        logger.debug("this JAX has no compilation-cache hooks; schedopt runs uncached")
        return None
    cache = FileCache(target)
    if cache.disabled:
        return None
    if not getattr(cc.get_file_cache, "_schedopt", False):
        cc.get_file_cache = _store_for(cc.get_file_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    # no XLA GPU side caches: their paths (under the cache directory) would enter every cache key
    jax.config.update("jax_persistent_cache_enable_xla_caches", "none")
    jax.config.update("jax_enable_compilation_cache", True)
    _active[0] = cache
    jax.config.update("jax_compilation_cache_dir", str(cache.path))
    cc.reset_cache()
    return cache


def disable_cache() -> None:
    """Turn off the cache schedopt installed (``schedopt --no-cache`` after JAX was loaded)."""
    if _active[0] is None:
        return
    cc = _compilation_cache_module()
    jax.config.update("jax_enable_compilation_cache", False)
    jax.config.update("jax_compilation_cache_dir", None)
    if cc is not None:
        cc.reset_cache()
    _active[0] = None


def active_cache() -> FileCache | None:
    """The cache schedopt installed in this process, if any (its hit and miss counts)."""
    return _active[0]


def cache_requested() -> bool:
    """Whether this process asked for the cache before JAX loaded (``SCHEDOPT_CACHE=1``: the CLI)."""
    return _truthy(os.environ.get(CACHE_ENV))


# --------------------------------------------------------------------------- compiled programs


def cached_jit(fun=None, *, static_argnames: tuple[str, ...] = ()):
    """``jax.jit(fun, static_argnames=...)`` whose compiled programs the cache keeps whole.

    Without the cache (or under another transformation: a traced argument) it is that
    ``jax.jit`` function. With :func:`enable_cache` on, a call looks its program up by the
    function, the shapes, dtypes and weak types of its arguments, the static arguments,
    JAX's trace-time settings (float64 among them) and the versions of everything that
    builds it (schedopt's sources, JAX, the backend), and runs the compiled executable
    directly: in memory after the first call of a process, else deserialised from the
    cache directory, else lowered and compiled (once) and stored there. A warm process
    so skips tracing and lowering, which JAX's own cache cannot (it needs the lowered
    program for its key) and which cost a warm ``design`` more than running its programs.
    The executable is the one ``jax.jit`` compiles from the same program, so the numbers
    are the same bit for bit. Any failure to load or run a stored program falls back to
    ``jax.jit``. Attributes of the ``jax.jit`` function (``lower``, ``_cache_size``) pass through.
    """
    if fun is None:
        return functools.partial(cached_jit, static_argnames=static_argnames)
    return _CachedJit(fun, tuple(static_argnames))


_PREFIX = "schedopt-exe-"
_UNUSABLE = object()  # a program this process runs through jax.jit instead (it failed to compile or to run)
_environment: list[str | None] = [None]


def _build_environment() -> str:
    """Everything besides the call that decides a compiled program: sources and versions."""
    if _environment[0] is None:
        import jaxlib

        digest = hashlib.sha256()
        package = Path(__file__).resolve().parent
        for source in sorted(package.rglob("*.py")):
            digest.update(str(source.relative_to(package)).encode() + b"\0" + source.read_bytes() + b"\0")
        device = jax.devices()[0]
        _environment[0] = repr(
            (
                digest.hexdigest(),
                jax.__version__,
                jaxlib.__version__,
                device.platform,
                device.device_kind,
                device.client.platform_version,
                jax.device_count(),
                os.environ.get("XLA_FLAGS", ""),
            )
        )
    return _environment[0]


def _trace_settings() -> str | None:
    """JAX's settings that change what a trace produces (float64 among them); ``None``: not stable."""
    from jax._src import config

    text = repr(tuple(x for x in config.trace_context() if type(x).__name__ != "AxisEnv"))
    return None if " at 0x" in text else text


class _CachedJit:
    """What :func:`cached_jit` returns."""

    def __init__(self, fun, static_argnames: tuple[str, ...]) -> None:
        import inspect

        self._jitted = jax.jit(fun, static_argnames=static_argnames)
        self._parameters = inspect.signature(fun)
        self._static = frozenset(static_argnames)
        self._name = f"{fun.__module__}.{fun.__qualname__}"
        self._programs: dict = {}
        self._unverified: dict = {}  # key -> cache name of programs read from disk and not yet run
        self._lock = threading.Lock()
        functools.update_wrapper(self, fun)

    def __getattr__(self, name):
        return getattr(self._jitted, name)

    def __call__(self, *args, **kwargs):
        store = _active[0]
        if store is None or store.disabled:
            return self._jitted(*args, **kwargs)
        try:
            bound = self._parameters.bind(*args, **kwargs)
        except TypeError:
            return self._jitted(*args, **kwargs)  # jax.jit's own error
        bound.apply_defaults()
        static = tuple((k, v) for k, v in bound.arguments.items() if k in self._static)
        dynamic = {k: v for k, v in bound.arguments.items() if k not in self._static}
        leaves, tree = jax.tree_util.tree_flatten(dynamic)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            return self._jitted(*args, **kwargs)  # under vmap, grad or an outer jit
        try:
            avals = tuple(jax.typeof(leaf) for leaf in leaves)
            key = (
                tree,
                tuple((a.shape, str(a.dtype), a.weak_type) for a in avals),
                static,
                _trace_settings(),
            )
            hash(key)
        except Exception:  # an argument jax.jit would refuse: its own error
            return self._jitted(*args, **kwargs)
        program = self._programs.get(key)
        if program is None:
            program = self._program(store, key, dynamic, dict(static))
        if program is _UNUSABLE:
            return self._jitted(*args, **kwargs)
        stored_name = self._unverified.get(key)
        try:
            out = program(**dynamic)
            if stored_name is not None:  # a program read from disk: its first run is checked to the end
                jax.block_until_ready(out)
                self._unverified.pop(key, None)
            return out
        except Exception as exc:  # e.g. an argument on another device: what jax.jit does with it
            if stored_name is not None:
                # a stored program that loads but cannot run (seen: "Function ... not found" from
                # XLA's CPU runtime): removed, and this process uses jax.jit for it
                store.discard(stored_name, f"stored program failed to run ({type(exc).__name__})")
                with self._lock:
                    self._programs[key] = _UNUSABLE
                    self._unverified.pop(key, None)
            return self._jitted(*args, **kwargs)

    def _program(self, store: FileCache, key: tuple, dynamic: dict, static: dict):
        """The compiled program of ``key``: from the cache directory, else compiled and stored there."""
        import pickle

        from jax.experimental import serialize_executable

        tree, avals, _, settings = key
        name = None
        if settings is not None and all(" at 0x" not in repr(v) for _, v in key[2]):
            text = repr((_build_environment(), self._name, str(tree), avals, key[2], settings))
            name = _PREFIX + hashlib.sha256(text.encode()).hexdigest()
        if name is not None and not store.storable(name):
            name = None  # its stored form failed to run in an earlier process: compiled here, never stored
        program = None
        stored = store.get(name) if name is not None else None
        if stored is not None:
            try:
                program = serialize_executable.deserialize_and_load(*pickle.loads(stored))
            except Exception:
                logger.debug("compilation cache: stored program %s unreadable; compiling it", name)
            else:
                with self._lock:
                    self._unverified[key] = name
        if program is None:
            try:
                with _compiled_fresh():
                    program = self._jitted.lower(**dynamic, **static).compile()
            except Exception:
                return _UNUSABLE  # jax.jit raises the same error
            if name is not None:
                try:
                    store.put(name, pickle.dumps(serialize_executable.serialize(program)))
                except Exception:
                    logger.debug("compilation cache: program %s not serialisable", name)
        with self._lock:
            return self._programs.setdefault(key, program)


if cache_requested():  # the CLI's process, or a user who opted in; a library import alone never
    enable_cache()
