"""Shared option conventions (issue 16 item 7): ``--out`` is a folder in every command, ``--out-file``
names the one file a one-file command writes, and each horizon option says what it does to a schedule."""

from __future__ import annotations

import numpy as np
import pytest
from test_cli import json_out, one_line_error, run, write_spec

from schedopt.schedule import Schedule, load_schedule, save_schedule

#: Commands that write one file: the default name ``--out DIR`` puts it under.
ONE_FILE = {
    "plot": "schedules.png",
    "export": "lin.optax.json",
    "recommend": "recommended-T500.json",
}


@pytest.fixture
def sched(tmp_path):
    lr = np.linspace(0.2, 0.02, 200)
    return save_schedule(Schedule(learning_rate=lr, provenance={"converged": True}), tmp_path / "lin.json")


def _args(command: str, sched) -> list:
    return {
        "plot": ["plot", sched],
        "export": ["export", sched],
        "recommend": ["recommend", "--horizon", "500", "--peak", "3e-4"],
    }[command]


@pytest.mark.parametrize("command", sorted(ONE_FILE))
def test_out_is_a_folder_for_one_file_commands_too(command, sched, tmp_path):
    folder = tmp_path / "new" / "folder"
    result = run(*_args(command, sched), "--out", folder, "--json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [ONE_FILE[command]]
    assert "note:" not in result.stderr


@pytest.mark.parametrize("command", sorted(ONE_FILE))
def test_out_file_names_the_file(command, sched, tmp_path):
    target = tmp_path / ("mine.png" if command == "plot" else "mine.json")
    result = run(*_args(command, sched), "--out-file", target, "--json")
    assert result.exit_code == 0, result.output
    assert target.is_file() and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["lin.json", target.name]
    )


@pytest.mark.parametrize(
    ("command", "value", "fragments"),
    [
        ("design", "a-file", ("--out", "must be a folder", "an existing file")),
        ("design", "new.json", ("--out", "must be a folder", "a file name")),
        ("compare", "a-file", ("--out", "must be a folder")),
        ("phase", "x.png", ("--out", "must be a folder")),
        ("pilots", "a-file", ("--out", "must be a folder")),
        ("plot", "a-file", ("--out", "must be a folder")),
        ("recommend", "notes.txt", ("--out", "must be a folder", "a file name")),
    ],
)
def test_out_given_a_file_is_a_usage_error(command, value, fragments, sched, tmp_path):
    (tmp_path / "a-file").write_text("mine\n")
    spec = write_spec(tmp_path)
    args = {
        "design": ["design", spec, "--no-baselines"],
        "compare": ["compare", spec, sched],
        "phase": ["phase", spec, "--horizons", "100,200"],
        "pilots": ["pilots", "--horizon", "400", "--peak", "0.01"],
        "plot": ["plot", sched],
        "recommend": ["recommend", "--horizon", "500", "--peak", "3e-4"],
    }[command]
    result = run(*args, "--out", tmp_path / value)
    assert result.exit_code == 2, result.output
    one_line_error(result, *fragments, value)
    assert (tmp_path / "a-file").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "lin.json", "tiny.toml"]


def test_out_file_given_a_folder_or_a_wrong_suffix_is_a_usage_error(sched, tmp_path):
    result = run("export", sched, "--out-file", tmp_path)
    assert result.exit_code == 2
    one_line_error(result, "--out-file", "must be a file", "existing folder")
    result = run("recommend", "--horizon", "500", "--peak", "3e-4", "--out-file", tmp_path / "r.txt")
    assert result.exit_code == 2
    one_line_error(result, "--out-file", ".json or .csv", "r.txt")
    result = run("export", sched, "--out", tmp_path / "d", "--out-file", tmp_path / "x.json")
    assert result.exit_code == 2
    one_line_error(result, "--out", "--out-file", "not both")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lin.json"]


def test_out_naming_a_file_still_works_with_a_note(sched, tmp_path):
    """The old form (``--out FILE`` in plot, fit, export, recommend) writes that file and says what replaced it."""
    target = tmp_path / "old.json"
    result = run("export", sched, "--out", target, "--json")
    assert result.exit_code == 0, result.output
    assert json_out(result)["path"] == str(target) and target.is_file()
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--out-file" in notes[0], result.stderr


def test_export_stretch_to_and_its_deprecated_name(sched, tmp_path):
    new = run("export", sched, "--stretch-to", "400", "--out-file", tmp_path / "new.json", "--json")
    assert new.exit_code == 0, new.output
    assert "note:" not in new.stderr
    old = run("export", sched, "--horizon", "400", "--out-file", tmp_path / "old.json", "--json")
    assert old.exit_code == 0, old.output
    (note,) = [line for line in old.stderr.splitlines() if line.startswith("note:")]
    assert "--stretch-to" in note and "transfer" in note
    a, b = load_schedule(tmp_path / "new.json"), load_schedule(tmp_path / "old.json")
    assert a.horizon == b.horizon == 400
    np.testing.assert_array_equal(a.learning_rate, b.learning_rate)
    both = run("export", sched, "--stretch-to", "400", "--horizon", "300", "--out-file", tmp_path / "x.json")
    assert both.exit_code == 2
    one_line_error(both, "--stretch-to", "--horizon")
    bad = run("export", sched, "--stretch-to", "soon", "--out-file", tmp_path / "y.json")
    assert bad.exit_code == 2
    one_line_error(bad, "--stretch-to", "soon")


def test_help_says_what_each_horizon_and_out_option_does():
    def options(command: str) -> str:
        result = run(command, "--help")
        assert result.exit_code == 0, result.output
        return " ".join(result.output.replace("│", " ").split())  # help text unwrapped

    export = run("export", "--help").output
    rows = [line.strip("│ ").split()[0] for line in export.splitlines() if line.strip("│ ").startswith("--")]
    assert "--stretch-to" in rows and "--horizon" not in rows  # the deprecated name is hidden
    assert "solved afresh" in options("design") and "phase rule" in options("transfer")
    for command in ("design", "compare", "phase", "scaling", "transfer", "sweep", "pilots"):
        assert "Folder to write into" in options(command), command
    for command in ("plot", "fit", "export", "recommend"):
        text = options(command)
        assert "Folder to write into" in text and "--out-file" in text, command


def test_pilots_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("pilots", "--horizon", "400", "--peak", "0.01", "--json")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "pilots").iterdir())
    assert written and all(name.endswith(".json") for name in written)
