"""Schedule files: exact JSON and CSV round trips, every load error, atomic saves, provenance."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_SPEC
from numpy.testing import assert_allclose, assert_array_equal

import schedopt
from schedopt.controls import grid_for
from schedopt.errors import ExportError
from schedopt.schedule import (
    SCHEDULE_SCHEMA_VERSION,
    STEP_UNITS,
    Schedule,
    load_schedule,
    save_schedule,
    schedule_from_solution,
)
from schedopt.solution import Solution
from schedopt.spec import parse_problem

HORIZON = 7
# floats that do not survive a short decimal format: repr precision is needed
LR = np.array([0.1, 1 / 3, 2 / 3 * 1e-7, math.pi / 10, 0.0, 5e-324, np.nextafter(0.2, 1.0)])
BATCH = np.array([1.0, 2.0, 3.5, 8.0, 8.0, 16.0, 1.0 + 2**-40])
MOMENTUM = np.array([0.0, 0.5, 0.9, 0.99, np.nextafter(1.0, 0.0), 1 / 7, 0.25])
PROVENANCE = {"solver": "pontryagin", "final_loss": 0.123456789012345678, "nested": {"list": [1, 2.5, None]}}

LOSS_RTOL = 1e-12  # the same recursion evaluated twice


def full_schedule() -> Schedule:
    return Schedule(learning_rate=LR, batch_size=BATCH, momentum=MOMENTUM, provenance=PROVENANCE)


def valid_dict() -> dict:
    return {
        "schema_version": 1,
        "kind": "schedopt.schedule",
        "step_units": STEP_UNITS,
        "horizon": 3,
        "learning_rate": [0.1, 0.2, 0.3],
        "batch_size": None,
        "momentum": [0.0, 0.5, 0.9],
        "provenance": {"solver": "jax"},
    }


def write_json(tmp_path: Path, data, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def expect_load_error(path: Path, *fragments: str) -> ExportError:
    with pytest.raises(ExportError) as info:
        load_schedule(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "\n" not in message
    return info.value


# --- round trips


def test_json_round_trip_is_bitwise_exact(tmp_path):
    original = full_schedule()
    path = save_schedule(original, tmp_path / "s.json")
    loaded = load_schedule(path)
    for name in ("learning_rate", "batch_size", "momentum"):
        a, b = getattr(original, name), getattr(loaded, name)
        assert a.dtype == b.dtype == np.float64
        assert a.tobytes() == b.tobytes(), name
    assert dict(loaded.provenance) == PROVENANCE
    assert loaded.horizon == HORIZON


def test_json_file_has_the_documented_layout(tmp_path):
    path = save_schedule(full_schedule(), tmp_path / "s.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] == SCHEDULE_SCHEMA_VERSION == 1
    assert data["kind"] == "schedopt.schedule"
    assert data["step_units"] == STEP_UNITS
    assert data["horizon"] == HORIZON
    assert len(data["learning_rate"]) == HORIZON


def test_json_round_trip_without_optional_controls(tmp_path):
    original = Schedule(learning_rate=LR)
    loaded = load_schedule(save_schedule(original, tmp_path / "lr.json"))
    assert loaded.batch_size is None and loaded.momentum is None
    assert loaded.learning_rate.tobytes() == original.learning_rate.tobytes()
    assert dict(loaded.provenance) == {}
    assert loaded.converged  # no provenance: not marked unconverged


def test_csv_round_trip_equals_to_repr_precision(tmp_path):
    original = full_schedule()
    path = save_schedule(original, tmp_path / "s.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "step,learning_rate,batch_size,momentum"
    assert len(lines) == HORIZON + 1
    assert lines[2].split(",") == ["1", repr(1 / 3), "2.0", "0.5"]
    loaded = load_schedule(path)
    for name in ("learning_rate", "batch_size", "momentum"):
        assert_array_equal(getattr(loaded, name), getattr(original, name))


def test_csv_with_learning_rate_only_and_no_step_column(tmp_path):
    path = tmp_path / "lr.csv"
    path.write_text("learning_rate\n0.3\n0.2\n0.1\n", encoding="utf-8")
    loaded = load_schedule(path)
    assert_array_equal(loaded.learning_rate, [0.3, 0.2, 0.1])
    assert loaded.batch_size is None and loaded.momentum is None
    assert loaded.provenance["source"] == str(path)


# --- load errors: ExportError naming the file and the key


def test_bad_schema_version(tmp_path):
    data = valid_dict() | {"schema_version": 2}
    expect_load_error(write_json(tmp_path, data), "schema_version", "2")


def test_missing_schema_version(tmp_path):
    data = valid_dict()
    del data["schema_version"]
    expect_load_error(write_json(tmp_path, data), "schema_version", "None")


def test_unknown_key(tmp_path):
    data = valid_dict() | {"learnig_rate": [0.1, 0.2, 0.3]}
    expect_load_error(write_json(tmp_path, data), "learnig_rate", "unknown key")


def test_missing_learning_rate(tmp_path):
    data = valid_dict()
    del data["learning_rate"]
    expect_load_error(write_json(tmp_path, data), "learning_rate", "missing")


@pytest.mark.parametrize("name", ["learning_rate", "momentum"])
def test_wrong_length(tmp_path, name):
    data = valid_dict()
    data[name] = data[name][:2]
    expect_load_error(write_json(tmp_path, data), name, "(3)", "got 2")


@pytest.mark.parametrize("horizon", [0, -1, 2.5, "3", True, None])
def test_bad_horizon(tmp_path, horizon):
    data = valid_dict() | {"horizon": horizon}
    expect_load_error(write_json(tmp_path, data), "horizon", "positive integer")


def test_nan_learning_rate(tmp_path):
    # json.dumps writes NaN and json.loads reads it: the loader must catch it
    data = valid_dict() | {"learning_rate": [0.1, float("nan"), 0.3]}
    expect_load_error(write_json(tmp_path, data), "learning_rate", "finite", "step 1")


def test_infinite_momentum(tmp_path):
    path = write_json(tmp_path, json.dumps(valid_dict()).replace("0.9", "Infinity"))
    expect_load_error(path, "momentum", "finite", "step 2")


def test_negative_learning_rate(tmp_path):
    data = valid_dict() | {"learning_rate": [0.1, 0.2, -0.3]}
    expect_load_error(write_json(tmp_path, data), "learning_rate", ">= 0", "-0.3", "step 2")


def test_momentum_at_one(tmp_path):
    data = valid_dict() | {"momentum": [0.0, 1.0, 0.5]}
    expect_load_error(write_json(tmp_path, data), "momentum", "< 1", "step 1")


def test_batch_size_below_one(tmp_path):
    data = valid_dict() | {"batch_size": [1.0, 0.5, 2.0]}
    expect_load_error(write_json(tmp_path, data), "batch_size", ">= 1", "step 1")


def test_non_numeric_learning_rate(tmp_path):
    data = valid_dict() | {"learning_rate": [0.1, "fast", 0.3]}
    expect_load_error(write_json(tmp_path, data), "learning_rate", "numbers")


def test_provenance_must_be_an_object(tmp_path):
    data = valid_dict() | {"provenance": [1, 2]}
    expect_load_error(write_json(tmp_path, data), "provenance", "object")


def test_top_level_must_be_an_object(tmp_path):
    expect_load_error(write_json(tmp_path, [0.1, 0.2]), "JSON object")


def test_bad_json(tmp_path):
    path = write_json(tmp_path, '{"schema_version": 1,\n "horizon": 3,,}')
    expect_load_error(path, "invalid JSON", "line 2")


def test_missing_file(tmp_path):
    expect_load_error(tmp_path / "nowhere" / "schedule.json", "no such schedule file")


def test_csv_missing_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("step,lr\n0,0.1\n1,0.2\n", encoding="utf-8")
    expect_load_error(path, "learning_rate", "missing column")


def test_csv_unknown_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("step,learning_rate,weight_decay\n0,0.1,0\n", encoding="utf-8")
    expect_load_error(path, "weight_decay", "unknown column")


@pytest.mark.parametrize("steps", [(0, 2, 1), (1, 2, 3), (0, 0, 1)])
def test_csv_non_monotone_steps(tmp_path, steps):
    path = tmp_path / "bad.csv"
    path.write_text("step,learning_rate\n" + "".join(f"{s},0.1\n" for s in steps), encoding="utf-8")
    expect_load_error(path, "step", "0, 1, 2")


def test_csv_bad_cell_names_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("step,learning_rate,momentum\n0,0.1,0.5\n1,0.2,high\n", encoding="utf-8")
    expect_load_error(path, "line 3", "momentum", "'high'")


def test_csv_nan_and_out_of_range_values(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("step,learning_rate\n0,0.1\n1,nan\n", encoding="utf-8")
    expect_load_error(path, "line 3", "learning_rate", "not finite")
    path = tmp_path / "mom.csv"
    path.write_text("step,learning_rate,momentum\n0,0.1,0.5\n1,0.2,1.5\n", encoding="utf-8")
    expect_load_error(path, "momentum", "< 1")


def test_csv_without_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("step,learning_rate\n", encoding="utf-8")
    expect_load_error(path, "no rows")


# --- construction and saving


def test_schedule_validates_at_construction():
    with pytest.raises(ExportError, match="`momentum` must have one value per step"):
        Schedule(learning_rate=[0.1, 0.2], momentum=[0.5])
    with pytest.raises(ExportError, match="`learning_rate` must be >= 0"):
        Schedule(learning_rate=[0.1, -0.2])


def test_schedule_arrays_are_read_only():
    s = full_schedule()
    with pytest.raises(ValueError, match="read-only"):
        s.learning_rate[0] = 1.0
    with pytest.raises(TypeError):
        s.provenance["solver"] = "x"


def test_save_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ExportError, match=r"\.json or \.csv"):
        save_schedule(full_schedule(), tmp_path / "s.txt")
    assert list(tmp_path.iterdir()) == []


def test_save_creates_the_folder(tmp_path):
    path = save_schedule(full_schedule(), tmp_path / "a" / "b" / "s.json")
    assert path.is_file()


class _Interrupted(Exception):
    """Stands for a crash (disk full, kill) in the middle of a write."""


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_save_is_atomic(tmp_path, monkeypatch, suffix):
    target = tmp_path / f"schedule{suffix}"
    save_schedule(Schedule(learning_rate=[0.1, 0.2, 0.3]), target)
    before = target.read_bytes()
    real_write_text = Path.write_text

    def half_write(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise _Interrupted

    monkeypatch.setattr(Path, "write_text", half_write)
    with pytest.raises(_Interrupted):
        save_schedule(full_schedule(), target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert_array_equal(load_schedule(target).learning_rate, [0.1, 0.2, 0.3])


def test_save_replaces_an_existing_file(tmp_path):
    target = tmp_path / "s.json"
    save_schedule(Schedule(learning_rate=[0.1]), target)
    save_schedule(full_schedule(), target)
    assert load_schedule(target).horizon == HORIZON
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


# --- provenance of a solved schedule


def hand_solution(status: str = "max_iterations") -> Solution:
    problem = parse_problem(TINY_SPEC, path="specs/tiny.toml")
    g = grid_for(problem.learning_rate, problem.horizon)
    params = np.linspace(0.3, 0.01, g.n_params)
    lr = g.interpolation().expand(params)
    return Solution(
        problem=problem,
        solver="jax",
        status=status,
        final_loss=schedopt.final_loss(problem.model, lr),
        parameters={"learning_rate": params},
        grids={"learning_rate": g},
        iterations=17,
        message="stopped",
    )


def test_schedule_from_hand_built_solution_has_provenance(tmp_path):
    sol = hand_solution()
    sched = schedule_from_solution(sol, created="2026-01-02T03:04:05+00:00")
    p = sched.provenance
    assert p["spec_sha256"] == hashlib.sha256(TINY_SPEC.encode("utf-8")).hexdigest()
    assert p["spec"] == TINY_SPEC
    assert p["spec_path"] == "specs/tiny.toml"
    assert p["problem"] == "tiny"
    assert p["created"] == "2026-01-02T03:04:05+00:00"
    assert p["schedopt_version"] == schedopt.__version__
    assert (p["solver"], p["status"], p["converged"], p["iterations"]) == ("jax", "max_iterations", False, 17)
    assert p["final_loss"] == sol.final_loss
    assert p["horizon"] == 200
    assert p["fixed"] == {"batch_size": 1.0, "momentum": 0.0}
    assert p["grids"]["learning_rate"]["edges"] == list(range(0, 201, 20))
    assert_array_equal(p["parameters"]["learning_rate"], sol.parameters["learning_rate"])
    assert not sched.converged
    assert_array_equal(sched.learning_rate, sol.per_step("learning_rate"))
    assert sched.batch_size is None and sched.momentum is None
    # the provenance survives a JSON round trip unchanged
    loaded = load_schedule(save_schedule(sched, tmp_path / "s.json"))
    assert dict(loaded.provenance) == dict(sched.provenance)
    assert loaded.learning_rate.tobytes() == sched.learning_rate.tobytes()


def test_schedule_from_solution_created_defaults_to_utc_now():
    created = schedule_from_solution(hand_solution()).provenance["created"]
    assert created.endswith("+00:00") and created[:2] == "20"


def test_schedule_from_a_pontryagin_solve():
    problem = parse_problem(TINY_SPEC, path="tiny.toml")
    sol = schedopt.solve(problem, solver="pontryagin")
    sched = schedule_from_solution(sol)
    p = sched.provenance
    assert p["solver"] == "pontryagin"
    assert p["status"] == "converged" and p["converged"] is True and sched.converged
    assert p["spec_sha256"] == hashlib.sha256(TINY_SPEC.encode("utf-8")).hexdigest()
    assert sched.horizon == 200
    # the recorded final loss is the loss of the written schedule
    assert_allclose(schedopt.final_loss(problem.model, sched.learning_rate), p["final_loss"], rtol=LOSS_RTOL)
    assert np.all(sched.learning_rate <= problem.learning_rate.max)
