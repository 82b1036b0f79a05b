"""`schedopt recommend`: the stored shapes and evidence, the schedule's numbers, the command.

The evidence the command prints is checked against the benchmark results it was copied
from, and (slow) the stored shapes against a fresh solve of the shipped problems.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from schedopt.cli import app
from schedopt.errors import ProblemError
from schedopt.recommend import OPTIMIZERS, _data, recommend

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The stored shape against a fresh solve (the solver's own tolerance dominates).
SHAPE_ATOL = 2e-3


def test_evidence_is_the_measured_results():
    evidence = _data()["evidence"]
    scaling = json.loads((RESULTS / "scaling.json").read_text())["transfer"]
    for key, run in evidence["model_transfer"]["runs"].items():
        assert run["gap_transferred"] == scaling[key]["gaps"]["transferred"]
        assert run["gap_stretch"] == scaling[key]["gaps"]["stretch"]
        assert run["phase"] == scaling[key]["phase"]
    assert set(evidence["model_transfer"]["runs"]) == set(scaling)
    results = json.loads((RESULTS / "realtasks.json").read_text())
    tasks, headline = results["tasks"], results["protocol"]["headline_arm"]
    for name, task in evidence["real_tasks"]["tasks"].items():
        design = tasks[name]["design"]
        # the arm schedopt pilots -> fit -> design gives
        assert task["designed_minus_tuned_wsd"] == design["tuned wsd"][f"{headline}_minus_this"]
        assert task["designed_mean"] == design[headline]["mean"]
        assert task["tuned_wsd_mean"] == design["tuned wsd"]["mean"]
        # the same design from the pilots trained on other seeds (realtasks' pilot-seed-design stage); the
        # follow-up arm's draws are another design's
        redrawn = {
            k: v
            for k, v in (tasks[name].get("design_by_pilot_seed") or {}).items()
            if k.startswith("pilot seed ") and k != "pilot seed 0"
        }
        assert not any(k.startswith("followup") for k in task.get("other_pilot_draws", {}))
        assert set(task.get("other_pilot_draws", {})) == set(redrawn)
        for key, draw in task.get("other_pilot_draws", {}).items():
            assert draw["mean"] == redrawn[key]["design_minus_tuned_wsd"]["mean"]
    assert set(evidence["real_tasks"]["tasks"]) == set(tasks)
    # the fitted model's errors that `design` quotes: the planned pilots' fit, the held-out runs of the arms
    # realtasks counts as WSD-shaped, and the WSD runs
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from realtasks import _WSD_SHAPED

    prediction = evidence["prediction"]["tasks"]
    assert set(prediction) == set(tasks)
    for name, measured in prediction.items():
        fit = tasks[name]["prediction"]["fits"]["schedopt-plan-floor"]
        assert measured["pilot_horizon"] == fit["horizon"]
        for entry in measured["by_extrapolation"].values():
            shaped = ("wsd-", *(f"{arm}-T" for arm in _WSD_SHAPED))
            errors = [
                r["schedopt-plan-floor_error"]
                for r in tasks[name]["prediction"]["runs"]
                if r["label"].endswith(f"-T{entry['horizon']}") and r["label"].startswith(shaped)
            ]
            assert entry["runs"] == len(errors) > 0
            assert entry["max_abs"] == max(abs(e) for e in errors)
            assert entry["signed_median"] == pytest.approx(float(np.median(errors)), abs=0)


def test_optimizers_are_the_export_bases():
    from schedopt.export.optax import BASES

    assert set(OPTIMIZERS) == set(BASES)


@pytest.mark.parametrize("phase", ["easy", "hard"])
def test_schedule_is_the_stored_shape_at_the_users_peak(phase):
    stored = _data()["shapes"][phase]
    result = recommend(50_000, 3e-4, phase=phase)
    lr = result.schedule.learning_rate
    assert lr.size == 50_000 and lr.max() == 3e-4 and result.phase == phase
    t = np.array([0, 1234, 25_000, 49_999])
    pos = t * stored["horizon"] / 50_000
    expected = np.interp(pos, stored["steps"], stored["factor"]) / max(stored["factor"])
    assert_allclose(lr[t], 3e-4 * expected, rtol=1e-12)
    assert result.schedule.learning_rate_units == "network"


def test_peak_horizon_moves_the_peak_by_the_phase_rule():
    easy = _data()["shapes"]["easy"]
    xi = 1 - easy["b"] / easy["a"]
    moved = recommend(40_000, 1e-3, phase="easy", peak_horizon=10_000)
    assert moved.peak == pytest.approx(1e-3 * 4.0**-xi, rel=1e-12)
    kept = recommend(40_000, 1e-3, phase="hard", peak_horizon=10_000)
    assert kept.peak == 1e-3


def test_expected_gaps_are_stated_per_phase():
    easy = recommend(1000, 1e-3, phase="easy").expected
    assert [m["gap_phase_rule"] for m in easy["model"]] == [
        r["gap_transferred"]
        for r in _data()["evidence"]["model_transfer"]["runs"].values()
        if r["phase"] == "easy"
    ]
    hard = recommend(1000, 1e-3, phase="hard").expected
    assert len(hard["model"]) == 2 and all(m["gap_shape_only"] < 0.02 for m in hard["model"])
    tasks = _data()["evidence"]["real_tasks"]["tasks"]
    for entry in easy["real_tasks"]:
        task = tasks[entry["task"]]
        assert entry["relative"] == pytest.approx(
            entry["designed_minus_tuned_wsd"] / task["tuned_wsd_mean"], rel=1e-15
        )
    relative = [entry["relative"] for entry in easy["real_tasks"]]
    note = easy["real_note"]
    assert f"{min(relative):+.1%}" in note and f"{max(relative):+.1%}" in note  # the measured range, signed
    redrawn = [
        d["mean"] / task["tuned_wsd_mean"]
        for task in tasks.values()
        for d in task.get("other_pilot_draws", {}).values()
    ]
    assert redrawn  # another draw of the pilots (realtasks' pilot-seed-design): its range is said too
    assert (
        f"another draw of the same pilots (their seed), between {min(redrawn):+.1%} and {max(redrawn):+.1%}"
        in note
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"horizon": 0, "peak": 1e-3}, "horizon"),
        ({"horizon": 10.5, "peak": 1e-3}, "horizon"),
        ({"horizon": 100, "peak": -1.0}, "peak"),
        ({"horizon": 100, "peak": 1e-3, "phase": "medium"}, "phase"),
        ({"horizon": 100, "peak": 1e-3, "optimizer": "adamax"}, "optimizer"),
        ({"horizon": 100, "peak": 1e-3, "warmup": 100}, "warmup"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ProblemError, match=f"`{field}`"):
        recommend(**kwargs)


def test_cli_writes_once_and_prints_its_caveats(tmp_path):
    out = tmp_path / "r.json"
    args = ["recommend", "--horizon", "5e4", "--peak", "3e-4", "--warmup", "500", "--out-file", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "assumes:" in text and "how far from optimal" in text and "schedopt pilots --horizon 50000" in text
    assert "+30.21%" in text  # the measured cost of a peak not moved, from scaling.json
    # the printed next step passes the warmup on to pilots and to design
    assert "schedopt pilots --horizon 50000 --peak 0.0003 --warmup 500 " in text
    assert "schedopt design fitted.toml --horizon 50000 --warmup 500" in text
    schedule = json.loads(out.read_text())
    assert schedule["horizon"] == 50_000 and schedule["units"] == {"learning_rate": "network"}
    assert_allclose(schedule["learning_rate"][:3], [3e-4 / 500, 2 * 3e-4 / 500, 3 * 3e-4 / 500], rtol=1e-12)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output
    bad = CliRunner().invoke(
        app,
        [
            "recommend",
            "--horizon",
            "100",
            "--peak",
            "1e-3",
            "--phase",
            "x",
            "--out-file",
            str(tmp_path / "x.json"),
        ],
    )
    assert bad.exit_code == 2 and "`phase`" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_recommend_loads_no_jax():
    code = (
        "import sys\nfrom schedopt.recommend import recommend\n"
        "recommend(50000, 3e-4)\nprint(sorted(m for m in ('jax', 'optax', 'casadi', 'diffrax') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["easy", "hard"])
def test_stored_shapes_are_the_shipped_problems_optimum(phase):
    import schedopt

    stored = _data()["shapes"][phase]
    problem = schedopt.load_problem(ROOT / stored["source"])
    lr = schedopt.solve(problem).per_step("learning_rate")
    assert_allclose(np.array(stored["factor"]), lr[stored["steps"]] / lr.max(), atol=SHAPE_ATOL)
