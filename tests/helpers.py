"""What several test files share: the shipped problems, the tiny spec, small capped problems, example counts.

- :data:`PROBLEMS`: the folder of the shipped specs.
- :data:`TINY_SPEC` / :func:`tiny_spec`: a 50-mode, 200-step spec with 10 uniform blocks.
- :func:`capped_problem`: a learning-rate-only problem with its cap a fraction of the stability threshold.
- :func:`examples`: a property test's example count, scaled by the hypothesis profile
  (``HYPOTHESIS_PROFILE=ci`` runs four times as many; ``tests/conftest.py`` registers the profiles).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from schedopt.dynamics.stability import stability_threshold
from schedopt.problem import ControlSpec, Model, Problem, Training

#: The shipped problem specs (``problems/*.toml``).
PROBLEMS = Path(__file__).resolve().parent.parent / "problems"

#: Example counts of property tests are multiplied by this under a hypothesis profile.
EXAMPLE_SCALE = {"default": 1, "ci": 4}

TEMPLATE = """\
schema_version = 1
name = "tiny"

[model]
kind = "powerlaw"
a = {a}
b = {b}
n_modes = 50
noise_std = 0.5

[training]
horizon = 200

[controls.learning_rate]
min = 0.0
max = 0.35
blocks = 10
grid = "uniform"
"""


def tiny_spec(a: float = 2.5, b: float = 1.2) -> str:
    """The spec text with exponents ``a`` and ``b`` (default: the easy phase)."""
    return TEMPLATE.format(a=a, b=b)


TINY_SPEC = tiny_spec()

#: A spec as `schedopt fit` writes one: a small hard-phase model with a `[network]` map.
FITTED_SPEC = """\
schema_version = 1
name = "fitted"

[model]
kind = "powerlaw"
a = 1.5
b = 2.5
n_modes = 30
noise_std = 0.3

[training]
horizon = 120

[controls.learning_rate]
min = 0.0
max = 0.3
blocks = 12

[network]
learning_rate_scale = 60.0
loss_scale = 2.0
loss_offset = 1.0
"""


def capped_problem(
    model: Model,
    horizon: int,
    *,
    cap: float = 0.9,
    batch_size: float = 1.0,
    lr_min: float = 0.0,
    blocks: int = 10,
    name: str = "test",
) -> Problem:
    """A learning-rate-only problem whose cap is ``cap`` times the stability threshold."""
    threshold = stability_threshold(model, batch_size)
    spec = ControlSpec("learning_rate", lr_min, cap * threshold, blocks=blocks)
    return Problem(name, model, Training(horizon=horizon, batch_size=batch_size), {"learning_rate": spec})


def examples(count: int) -> int:
    """``count`` property-test examples, scaled by the active hypothesis profile."""
    return count * EXAMPLE_SCALE.get(os.environ.get("HYPOTHESIS_PROFILE", "default"), 1)


def fresh_process(
    code: str, *args: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python (``sys.argv[1:]`` = ``args``) at the repository root (what a
    user's own process would see: nothing of the test session); its output captured as text."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        timeout=timeout,
        check=False,
    )


def fresh_process_json(code: str, *args: str, env: dict[str, str]) -> dict:
    """:func:`fresh_process`'s last stdout line, parsed as JSON."""
    done = fresh_process(code, *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
