"""The README's "Use it in your training loop" snippets, run as a user would: fresh processes.

Each block marked ``<!-- tested: NAME -->`` runs in a new interpreter (JAX at its own
defaults, float32) in a folder holding ``recommended.json`` from ``schedopt recommend``;
the snippets assert their own numbers (the float32 dtype, the loss, the warmup join).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from schedopt.recommend import recommend
from schedopt.schedule import save_schedule

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- tested: (\w+) -->\n```python\n(.*?)```", re.S)


def _snippets() -> dict[str, str]:
    return dict(BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")))


def test_the_readme_marks_both_snippets():
    assert set(_snippets()) == {"optax", "torch"}


@pytest.mark.parametrize("name", ["optax", "torch"])
def test_readme_snippet_runs(name, tmp_path):
    if name == "torch":
        pytest.importorskip("torch")
    save_schedule(recommend(500, 1e-2).schedule, tmp_path / "recommended.json")
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:schedopt", "-c", _snippets()[name]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
