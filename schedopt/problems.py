"""The problems shipped with schedopt, by name: ``schedopt design easy-phase`` after ``pip install``.

The spec files live in the source tree's ``problems/`` folder (README, tests and benchmarks
name them there); the wheel carries the same files as ``schedopt/data/problems/``
(``[tool.hatch.build.targets.wheel.force-include]``). :func:`directory` finds whichever
this installation has.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from schedopt.errors import SpecError

__all__ = ["directory", "load", "names", "path"]

_SOURCE_TREE = Path(__file__).resolve().parents[1] / "problems"


def directory() -> Path:
    """The folder of the shipped specs: inside the installed package, else the source tree's."""
    packaged = Path(str(resources.files("schedopt").joinpath("data", "problems")))
    if packaged.is_dir():
        return packaged
    if _SOURCE_TREE.is_dir():
        return _SOURCE_TREE
    raise SpecError("the shipped problems are missing from this installation (schedopt/data/problems)")


def names() -> list[str]:
    """Names of the shipped problems (``easy-phase``, ``hard-phase``, ...), sorted."""
    return sorted(p.stem for p in directory().glob("*.toml"))


def path(name: str) -> Path:
    """The spec file of a shipped problem."""
    known = names()
    if name not in known:
        raise SpecError(f"`problem` must be one of {', '.join(known)}, got {name!r}")
    return directory() / f"{name}.toml"


def load(name: str):
    """The shipped problem ``name`` as a :class:`~schedopt.problem.Problem`."""
    from schedopt.spec import load_problem

    return load_problem(path(name))
