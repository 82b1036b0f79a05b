"""The optional extras and the installed package: what works without them, and the wheel.

Without ``[casadi]`` and ``[plots]`` the core still designs (its figure is ``design.svg``,
written without matplotlib) and the commands that need them (``design --figure png``
among them) stop in one line naming the extra, before any work. The shipped problems load by name. (slow) A wheel built from this tree, installed
in a fresh virtual environment without extras, runs ``schedopt design easy-phase`` and
``schedopt recommend``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_spec import TINY_SPEC

from schedopt import problems

ROOT = Path(__file__).resolve().parents[1]

#: Runs the CLI in a fresh process where ``casadi`` and ``matplotlib`` cannot be imported.
WITHOUT_EXTRAS = """
import sys
for name in ("casadi", "matplotlib"):
    sys.modules[name] = None  # `import casadi` raises ImportError, as when not installed
from schedopt.cli import main
sys.argv = ["schedopt", *sys.argv[1:]]
main()
"""


def _cli_without_extras(*args, cwd):
    env = {**os.environ, "SCHEDOPT_NO_CACHE": "1"}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
        check=False,
    )


def test_the_core_designs_without_the_extras(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    done = _cli_without_extras(
        "design", spec, "--no-baselines", "--out", tmp_path / "d", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["converged"] is True
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "design.json",
        "design.svg",
        "schedule.csv",
        "schedule.json",
    ]
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (
            ["design", "{spec}", "--solver", "casadi", "--no-baselines", "--out", "{tmp}/c"],
            "schedopt[casadi]",
        ),
        (["design", "{spec}", "--figure", "png", "--out", "{tmp}/c"], "schedopt[plots]"),
        (["compare", "{spec}", "-b", "cosine", "--out", "{tmp}/cmp"], "schedopt[plots]"),
        (["phase", "{spec}", "--horizons", "100,200", "--out", "{tmp}/ph"], "schedopt[plots]"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, args, extra):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    argv = [a.format(spec=spec, tmp=tmp_path) for a in args]
    done = _cli_without_extras(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and extra in lines[0], done.stderr
    assert not any((tmp_path / d).exists() for d in ("c", "cmp", "ph"))


def test_shipped_problems_load_by_name(tmp_path):
    assert {"easy-phase", "hard-phase", "boundary", "batch-ramp", "custom-spectrum"} <= set(problems.names())
    easy = problems.load("easy-phase")
    assert easy.name == "easy-phase" and easy.model.a == 2.5 and easy.model.b == 1.2
    from schedopt.errors import SpecError

    with pytest.raises(SpecError, match=r"`problem` must be one of .*easy-phase.*got 'medium-phase'"):
        problems.path("medium-phase")


@pytest.mark.slow
def test_a_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    """``pip install`` of the wheel, no extras: the README's design by name and recommend work."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    dist = tmp_path / "dist"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], check=True, capture_output=True
    )
    wheel = next(dist.glob("schedopt-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--python", str(python), str(wheel), "-c", str(ROOT / "constraints.txt")],
        check=True,
        capture_output=True,
    )
    listed = subprocess.run(
        [uv, "pip", "list", "--python", str(python)], check=True, capture_output=True, text=True
    )
    installed = {line.split()[0].lower() for line in listed.stdout.splitlines()[2:] if line.strip()}
    assert "schedopt" in installed and "jax" in installed
    assert not {"casadi", "matplotlib", "torch"} & installed  # the core stays lean
    work = tmp_path / "work"  # not the source tree: the installed package must carry everything
    work.mkdir()
    schedopt = venv / "bin" / "schedopt"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SCHEDOPT_NO_CACHE"] = "1"
    done = subprocess.run(
        [str(schedopt), "design", "easy-phase", "--horizon", "300", "--blocks", "10", "--no-baselines", "--json"],
        capture_output=True, text=True, cwd=work, env=env, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["problem"] == "easy-phase" and report["horizon"] == 300 and report["converged"] is True
    assert (work / "exports" / "easy-phase" / "schedule.json").is_file()
    done = subprocess.run(
        [str(schedopt), "recommend", "--horizon", "5e4", "--peak", "3e-4", "--json"],
        capture_output=True, text=True, cwd=work, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["peak"] == 3e-4 and (work / "recommended-T50000.json").is_file()


def test_the_torch_export_path_loads_no_jax(tmp_path):
    """A PyTorch user's path (the LambdaLR factors, `schedopt export --to torch`) imports no JAX or optax."""
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from schedopt.schedule import Schedule, save_schedule\n"
        "from schedopt.export.torch import to_torch_lambda\n"
        "from schedopt.export.files import export_schedule\n"
        "s = Schedule(learning_rate=np.linspace(1.0, 0.1, 10))\n"
        "save_schedule(s, 's.json')\n"
        "export_schedule('s.json', to='torch', peak=0.5, horizon=20)\n"
        "f = to_torch_lambda(s, peak=0.5)\n"
        "heavy = sorted(m for m in ('jax', 'optax', 'casadi', 'diffrax', 'matplotlib') if m in sys.modules)\n"
        "print(json.dumps({'factor': f(3), 'heavy': heavy}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"factor": 0.7, "heavy": []}
    factors = json.loads((tmp_path / "s.torch.json").read_text())["factors"]
    assert len(factors) == 20 and factors[0] == 1.0
