"""Packaging: the public API is pinned, dependencies are bounded and pinned, no download addresses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import schedopt

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

EXPECTED_API = [
    "CasadiOptions",
    "ControlGrid",
    "ControlSpec",
    "DivergenceError",
    "ExportError",
    "FitError",
    "InvalidDesign",
    "JaxOptions",
    "Model",
    "PontryaginOptions",
    "Problem",
    "ProblemError",
    "SchedoptError",
    "Schedule",
    "Solution",
    "SolverError",
    "SpecError",
    "Status",
    "Training",
    "Trajectory",
    "__version__",
    "block_edges",
    "default_problem",
    "design_many",
    "dump_problem",
    "final_loss",
    "grid_for",
    "load_problem",
    "load_schedule",
    "loss_curve",
    "parse_problem",
    "phase",
    "predicted_exponents",
    "save_schedule",
    "schedule_from_solution",
    "solve",
    "stability_threshold",
]

#: Host names whose appearance in a committed file records where a package was downloaded from.
DOWNLOAD_HOSTS = ("files.pythonhosted.org", "download.pytorch.org")
#: Never scanned when git is unavailable (git-ignored or generated).
SKIP_NAMES = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "exports",
    "dist",
    "build",
    "uv.lock",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"not a name==version pin: {raw!r}"
        name = normalise(match.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = match.group(2)
    return pins


def constraints_txt() -> dict[str, str]:
    return parse_pins((ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines())


def uv_constraints() -> dict[str, str]:
    return parse_pins(PYPROJECT["tool"]["uv"]["constraint-dependencies"])


# --- public API


def test_public_api_is_pinned():
    assert sorted(schedopt.__all__) == sorted(EXPECTED_API)
    assert len(schedopt.__all__) == len(set(schedopt.__all__))


@pytest.mark.parametrize("name", EXPECTED_API)
def test_every_public_name_resolves(name):
    assert getattr(schedopt, name) is not None


def test_public_errors_share_one_base():
    for name in ("DivergenceError", "ExportError", "FitError", "ProblemError", "SolverError", "SpecError"):
        assert issubclass(getattr(schedopt, name), schedopt.SchedoptError)


#: Slow-to-import dependencies that neither ``import schedopt`` nor ``schedopt --help`` may load
#: (issue 13: they load when a command or a public name needs them).
HEAVY_MODULES = ("jax", "scipy", "casadi", "matplotlib", "diffrax", "equinox", "optax", "numpy")

LOADED_PROBE = """
import sys
{code}
heavy = {heavy!r}
print(",".join(m for m in heavy if m in sys.modules))
"""


def _loaded_heavy_modules(code: str) -> list[str]:
    script = LOADED_PROBE.format(code=code, heavy=HEAVY_MODULES)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_schedopt_loads_no_heavy_dependency():
    assert _loaded_heavy_modules("import schedopt") == []


def test_cli_help_loads_no_heavy_dependency():
    code = (
        "import contextlib, io\n"
        "from schedopt.cli import app\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
        "    try:\n"
        "        app(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'design' in buf.getvalue()\n"
    )
    assert _loaded_heavy_modules(code) == []


def test_a_public_name_loads_its_module_and_not_float64():
    """The first access of a lazy name imports its module; JAX's x64 stays as the user had it."""
    code = "import schedopt\nassert schedopt.final_loss.__module__ == 'schedopt.dynamics.recursion'\n"
    code += "import jax\nassert not jax.config.jax_enable_x64\n"
    assert "jax" in _loaded_heavy_modules(code)


def test_dir_lists_the_public_api():
    assert set(EXPECTED_API) <= set(dir(schedopt))
    with pytest.raises(AttributeError, match="no_such_name"):
        schedopt.no_such_name  # noqa: B018


def test_version_is_the_installed_distribution_version():
    assert schedopt.__version__ == PYPROJECT["project"]["version"] == version("schedopt")


# --- dependencies


def test_constraints_file_equals_uv_constraint_dependencies():
    txt, uv = constraints_txt(), uv_constraints()
    assert txt, "constraints.txt holds no pins"
    assert txt == uv, {
        "only in constraints.txt": sorted(set(txt) - set(uv)),
        "only in pyproject": sorted(set(uv) - set(txt)),
        "different": sorted(k for k in set(txt) & set(uv) if txt[k] != uv[k]),
    }


def test_parse_pins_skips_comments_and_rejects_ranges():
    assert parse_pins(["# header", "", "Typing_Extensions==4.16.0  # why", "  numpy==2.4.6"]) == {
        "typing-extensions": "4.16.0",
        "numpy": "2.4.6",
    }
    with pytest.raises(AssertionError, match="not a name==version pin"):
        parse_pins(["numpy>=2"])


def _requirements(specs: list[str]) -> list[Requirement]:
    return [Requirement(s) for s in specs]


RUNTIME = _requirements(PYPROJECT["project"]["dependencies"])
DEV = _requirements(PYPROJECT["dependency-groups"]["dev"])


@pytest.mark.parametrize("req", RUNTIME + DEV, ids=str)
def test_dependency_has_lower_bound_and_a_pin_that_satisfies_it(req):
    lower = [s for s in req.specifier if s.operator in (">=", ">", "~=", "==")]
    assert lower, f"{req} has no lower bound"
    pins = constraints_txt()
    name = normalise(req.name)
    assert name in pins, f"{req.name} is not pinned in constraints.txt"
    assert req.specifier.contains(Version(pins[name]), prereleases=True), (str(req), pins[name])


@pytest.mark.parametrize("req", RUNTIME, ids=str)
def test_installed_runtime_dependency_matches_its_pin(req):
    try:
        installed = version(req.name)
    except PackageNotFoundError:  # pragma: no cover - the environment is broken
        pytest.fail(f"{req.name} is a dependency but is not installed")
    assert Version(installed) == Version(constraints_txt()[normalise(req.name)])


def test_optional_extras_have_lower_bounds():
    for extra, specs in PYPROJECT["project"].get("optional-dependencies", {}).items():
        for req in _requirements(specs):
            assert any(s.operator in (">=", ">", "~=") for s in req.specifier), (extra, str(req))


# --- no download addresses in committed files


def tracked_files() -> list[Path]:
    """Files git tracks; without git (or outside a work tree), every file not ignored by convention."""
    git = shutil.which("git")
    if git is not None:
        try:
            out = subprocess.run(
                [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None:
            return [ROOT / os.fsdecode(p) for p in out.split(b"\0") if p]
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_NAMES]
        files += [Path(folder) / n for n in names if n not in SKIP_NAMES]
    return files


def test_no_committed_file_records_download_addresses():
    this_file = Path(__file__).resolve()
    files = [p for p in tracked_files() if p.resolve() != this_file]
    assert any(p.name == "pyproject.toml" for p in files)
    offenders = []
    for path in files:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):  # deleted in the work tree, or a submodule
            continue
        offenders += [f"{path.relative_to(ROOT)}: {host}" for host in DOWNLOAD_HOSTS if host.encode() in data]
    assert not offenders


def test_uv_lock_is_git_ignored():
    lines = {line.strip() for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()}
    assert lines & {"uv.lock", "/uv.lock"}


def test_file_listing_without_git(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    files = {p.relative_to(ROOT).as_posix() for p in tracked_files()}
    assert {"pyproject.toml", "constraints.txt", "schedopt/__init__.py"} <= files
    assert not any(part in SKIP_NAMES for f in files for part in Path(f).parts)
