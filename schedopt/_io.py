"""Atomic file writes: a file is written to a temporary name in its folder and renamed.

An interrupted run therefore leaves either the old file or the new one, never a
half-written file. :func:`output_set` does the same for a set of files that must
match (``schedopt design``'s four), :func:`refuse_existing` guards against silent
overwrites, and :func:`json_text` writes strict JSON.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from schedopt.errors import ExportError

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "json_text",
    "output_set",
    "refuse_existing",
    "signals_deferred",
    "strict_json_value",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, else delete it."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create folder {str(target.parent)!r}: {exc.strerror}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a written file gets the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise ExportError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def strict_json_value(value: Any) -> Any:
    """``value`` with every non-finite float (nan, ±inf) replaced by ``None``, recursively.

    Strict JSON (RFC 8259) has no NaN or Infinity; a reader learns what a ``null``
    means from the document's status fields (``status``, ``diverged``).
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: strict_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json_value(v) for v in value]
    if not isinstance(value, str | int | bool | type(None)) and hasattr(value, "tolist"):
        return strict_json_value(value.tolist())  # numpy arrays and scalars (numpy not imported here)
    return value


def json_text(value: Any, *, indent: int | None = 1) -> str:
    """Strict JSON text of ``value`` (non-finite numbers as ``null``), newline-terminated."""
    return json.dumps(strict_json_value(value), indent=indent, allow_nan=False) + "\n"


PENDING_SIGNALS: list[int] = []
"""Signals the CLI's handlers have received (``schedopt.cli``); an output set is not committed after one."""


def refuse_existing(paths: Iterable[str | os.PathLike], *, option: str = "--force") -> None:
    """Raise :class:`ExportError` naming the first of ``paths`` that exists (a symlink counts)."""
    for path in paths:
        if os.path.lexists(path):
            raise ExportError(f"{str(path)!r} exists; use {option} to replace it")


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs, then deliver the first that arrived.

    Only in the main thread (elsewhere signal handlers cannot be set, and Python runs
    them in the main thread anyway). A short critical section (renames) thus either
    completes or never starts.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in held}
    for s in held:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the folder itself (no lock file is left behind)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: renames are still atomic one by one
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def output_set(
    folder: str | os.PathLike, names: Iterable[str], *, overwrite: bool, stale: Iterable[str] = ()
) -> Iterator[Path]:
    """Write a set of files into ``folder`` as one transaction.

    Yields a hidden staging folder inside ``folder`` (same file system); write every
    file of ``names`` there. On success the set is committed: under an exclusive lock
    on ``folder`` and with SIGINT/SIGTERM held, the old files are moved aside, the new
    ones renamed in (the old ones are put back if a rename fails) and ``stale`` files
    (of an older, larger set) removed. On any error or interrupt before the commit,
    nothing in ``folder`` changes. The staging folder never survives. So a reader,
    a concurrent run or an interrupted one sees the complete old set or the complete
    new set. Without ``overwrite`` an existing file of the set is an error naming it,
    checked before and again under the lock.
    """
    folder = Path(folder)
    names = tuple(names)
    stale = tuple(n for n in stale if n not in names)
    for name in (*names, *stale):
        if name != Path(name).name or name in ("", ".", ".."):
            raise ExportError(f"output {name!r} must be a plain file name inside {str(folder)!r}")
    if not overwrite:
        refuse_existing(folder / n for n in names)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".schedopt-", suffix=".tmp", dir=folder))
    except OSError as exc:
        raise ExportError(f"cannot create folder {str(folder)!r}: {exc.strerror or exc}") from None
    try:
        yield stage
        missing = [n for n in names if not (stage / n).is_file()]
        if missing:
            raise ExportError(f"internal: {missing[0]!r} was not written to the staging folder")
        umask = os.umask(0)
        os.umask(umask)
        for name in names:
            os.chmod(stage / name, 0o666 & ~umask)
        backup = stage / ".old"
        backup.mkdir()
        with signals_deferred(), _folder_lock(folder):
            if PENDING_SIGNALS:  # an interrupt was swallowed somewhere on the way: do not commit
                import signal

                signal.raise_signal(PENDING_SIGNALS[0])  # delivered when the block ends
                return
            if not overwrite:
                refuse_existing(folder / n for n in names)
            moved: list[str] = []
            placed: list[str] = []
            try:
                for name in (*names, *stale):
                    if os.path.lexists(folder / name):
                        os.replace(folder / name, backup / name)
                        moved.append(name)
                for name in names:
                    os.replace(stage / name, folder / name)
                    placed.append(name)
            except OSError as exc:
                for name in placed:
                    with contextlib.suppress(OSError):
                        os.unlink(folder / name)
                for name in moved:
                    with contextlib.suppress(OSError):
                        os.replace(backup / name, folder / name)
                raise ExportError(f"cannot write into {str(folder)!r}: {exc.strerror or exc}") from None
    except OSError as exc:
        where = str(exc.filename or folder).replace(str(stage), str(folder))  # name the real file
        raise ExportError(f"cannot write {where!r}: {exc.strerror or exc}") from None
    except ExportError as exc:  # from a writer in the staging folder: name the real file
        raise ExportError(str(exc).replace(str(stage), str(folder))) from None
    finally:
        with signals_deferred():
            shutil.rmtree(stage, ignore_errors=True)
