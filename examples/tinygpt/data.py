"""Byte-level corpus from the installed Python standard library, and deterministic batches.

The corpus is the source text of the ``*.py`` files under
``sysconfig.get_paths()["stdlib"]`` (no download, always present offline):

* files under a directory named ``site-packages``, ``test``, ``tests``,
  ``idlelib`` or ``lib2to3`` are left out;
* the files are visited in order of their relative POSIX path;
* a file belongs to the validation split iff ``zlib.crc32(relpath) % 10 == 0``,
  otherwise to the training split;
* each split is the concatenation of its files' bytes, cut at a byte cap
  (``max_train_bytes`` / ``max_val_bytes``; the file that crosses the cap is
  truncated), so loading reads about 10 MB and takes well under 2 s.

Tokens are bytes (vocabulary 256). Each split carries the SHA-256 of its bytes,
so a run records exactly which text it trained on (it depends on the Python
version that provides the standard library).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import sysconfig
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np

__all__ = [
    "EXCLUDED_DIRS",
    "Corpus",
    "batches",
    "corpus_files",
    "is_validation_file",
    "load_corpus",
    "load_prose_corpus",
    "validation_batches",
]

EXCLUDED_DIRS = frozenset({"site-packages", "test", "tests", "idlelib", "lib2to3"})
"""Directory names whose files are never part of the corpus."""

DEFAULT_MAX_TRAIN_BYTES = 8_000_000
DEFAULT_MAX_VAL_BYTES = 1_000_000


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


def is_validation_file(relpath: str) -> bool:
    """Whether the file at ``relpath`` (POSIX, relative to the stdlib root) is in the validation split."""
    return zlib.crc32(relpath.encode()) % 10 == 0


def corpus_files(root: str | os.PathLike | None = None) -> list[str]:
    """Relative POSIX paths of the corpus files under ``root`` (default: the stdlib), sorted."""
    root = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        rel_dir = Path(dirpath).relative_to(root)
        for name in filenames:
            if name.endswith(".py"):
                found.append((rel_dir / name).as_posix())
    return sorted(found)


@dataclass(frozen=True, eq=False)
class Corpus:
    """Training and validation bytes with their fingerprints.

    Attributes:
        train: ``(n_train,)`` uint8 tokens (read-only).
        val: ``(n_val,)`` uint8 tokens (read-only).
        train_sha256, val_sha256: SHA-256 hex digests of the two byte strings.
        train_files, val_files: number of files (the last one possibly truncated) in each split.
        root: the directory the files came from.
    """

    train: np.ndarray
    val: np.ndarray
    train_sha256: str
    val_sha256: str
    train_files: int
    val_files: int
    root: str

    def describe(self) -> dict[str, object]:
        """JSON-ready facts identifying the corpus."""
        return {
            "root": self.root,
            "python": sys.version.split()[0],
            "train_bytes": int(self.train.size),
            "val_bytes": int(self.val.size),
            "train_files": self.train_files,
            "val_files": self.val_files,
            "train_sha256": self.train_sha256,
            "val_sha256": self.val_sha256,
        }


def load_corpus(
    max_train_bytes: int = DEFAULT_MAX_TRAIN_BYTES,
    max_val_bytes: int = DEFAULT_MAX_VAL_BYTES,
    *,
    root: str | os.PathLike | None = None,
) -> Corpus:
    """Read the corpus: files in path order into their split until each split holds its cap.

    Args:
        max_train_bytes: at most this many training bytes.
        max_val_bytes: at most this many validation bytes.
        root: the directory to read (default: the standard library).

    Raises:
        ValueError: a cap is not a positive integer, or a split is empty.
    """
    caps = {
        "train": _positive_int("max_train_bytes", max_train_bytes),
        "val": _positive_int("max_val_bytes", max_val_bytes),
    }
    root = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    parts: dict[str, list[bytes]] = {"train": [], "val": []}
    sizes = {"train": 0, "val": 0}
    for rel in corpus_files(root):
        split = "val" if is_validation_file(rel) else "train"
        room = caps[split] - sizes[split]
        if room <= 0:
            if all(sizes[s] >= caps[s] for s in caps):
                break
            continue
        try:
            data = (root / rel).read_bytes()
        except OSError:  # an unreadable file is skipped (its absence changes the fingerprint)
            continue
        data = data[:room]
        parts[split].append(data)
        sizes[split] += len(data)
    blobs = {split: b"".join(parts[split]) for split in parts}
    return _corpus(blobs, {split: len(parts[split]) for split in parts}, root, "corpus")


def _corpus(blobs: dict[str, bytes], files: dict[str, int], root: Path, what: str) -> Corpus:
    """A :class:`Corpus` of the ``train`` and ``val`` byte strings, fingerprinted (an empty split is an error)."""
    arrays = {}
    for split in ("train", "val"):
        if not blobs[split]:
            raise ValueError(f"the {split} split of the {what} under {str(root)!r} is empty")
        arr = np.frombuffer(blobs[split], dtype=np.uint8).copy()
        arr.setflags(write=False)
        arrays[split] = (arr, hashlib.sha256(blobs[split]).hexdigest(), files[split])
    return Corpus(
        train=arrays["train"][0],
        val=arrays["val"][0],
        train_sha256=arrays["train"][1],
        val_sha256=arrays["val"][1],
        train_files=arrays["train"][2],
        val_files=arrays["val"][2],
        root=str(root),
    )


FORTUNES_DIR = "/usr/share/games/fortunes"
"""Debian's ``fortunes`` package: English prose (quotations, literature, jokes), one entry per ``%``."""

PROSE_EXCLUDED = frozenset({"ascii-art"})
"""Fortune files left out of the prose corpus (pictures made of characters, not prose)."""


def load_prose_corpus(
    max_train_bytes: int = DEFAULT_MAX_TRAIN_BYTES,
    max_val_bytes: int = DEFAULT_MAX_VAL_BYTES,
    *,
    root: str | os.PathLike = FORTUNES_DIR,
) -> Corpus:
    """English prose from Debian's ``fortunes`` package (``apt-get install fortunes``), split by entry.

    The fortune files (every file with a ``.dat`` index beside it, in name order,
    without :data:`PROSE_EXCLUDED`) are cut into entries at lines holding a single
    ``%``; an entry is in the validation split iff ``zlib.crc32(entry) % 10 == 0``.
    Each split is its entries joined by blank lines, cut at its cap.

    Raises:
        ValueError: the package is not installed (the message says how to install it), or a split is empty.
    """
    caps = {
        "train": _positive_int("max_train_bytes", max_train_bytes),
        "val": _positive_int("max_val_bytes", max_val_bytes),
    }
    root = Path(root)
    names = sorted(p.stem for p in root.glob("*.dat")) if root.is_dir() else []
    names = [n for n in names if n not in PROSE_EXCLUDED and (root / n).is_file()]
    if not names:
        raise ValueError(
            f"no fortune files under {str(root)!r}: install Debian's prose corpus with "
            "`apt-get install fortunes`"
        )
    parts: dict[str, list[bytes]] = {"train": [], "val": []}
    files = {"train": set(), "val": set()}
    for name in names:
        text = (root / name).read_bytes()
        for entry in re.split(rb"(?m)^%\n", text):
            entry = entry.strip()
            if entry:
                split = "val" if zlib.crc32(entry) % 10 == 0 else "train"
                parts[split].append(entry)
                files[split].add(name)
    blobs = {split: b"\n\n".join(parts[split])[: caps[split]] for split in parts}
    return _corpus(blobs, {split: len(files[split]) for split in files}, root, "prose corpus")


def _check_tokens(tokens: np.ndarray, context: int) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"`tokens` must be one-dimensional, got shape {tokens.shape}")
    if tokens.size < context + 1:
        raise ValueError(f"`tokens` must hold at least context + 1 = {context + 1} tokens, got {tokens.size}")
    return tokens


def _windows(tokens: np.ndarray, starts: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    index = starts[:, None] + np.arange(context + 1)[None, :]
    window = tokens[index].astype(np.int32)
    return window[:, :-1], window[:, 1:]


def batches(
    tokens: np.ndarray, batch: int, context: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless, seeded stream of ``(x, y)`` windows drawn uniformly from ``tokens``.

    Each batch draws ``batch`` start positions with ``numpy.random.default_rng(seed)``;
    ``x`` is ``tokens[s : s + context]`` and ``y`` the same window shifted by one
    (next-byte targets). Both are ``(batch, context)`` int32. The same seed gives
    the same stream.
    """
    batch = _positive_int("batch", batch)
    context = _positive_int("context", context)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}")
    tokens = _check_tokens(tokens, context)
    rng = np.random.default_rng(int(seed))
    high = tokens.size - context  # starts in [0, n - context - 1]: the target window fits

    def stream():
        while True:
            yield _windows(tokens, rng.integers(0, high, size=batch), context)

    return stream()


def validation_batches(
    val_tokens: np.ndarray, n_batches: int, batch: int, context: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed validation set: ``n_batches`` batches of windows at evenly spaced positions.

    The ``n_batches * batch`` windows start at ``linspace(0, n - context - 1)``
    (rounded down), so the set depends on the tokens and the sizes only.
    """
    n_batches = _positive_int("n_batches", n_batches)
    batch = _positive_int("batch", batch)
    context = _positive_int("context", context)
    val_tokens = _check_tokens(val_tokens, context)
    starts = np.floor(np.linspace(0, val_tokens.size - context - 1, n_batches * batch)).astype(np.int64)
    x, y = _windows(val_tokens, starts, context)
    return [(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]) for i in range(n_batches)]
