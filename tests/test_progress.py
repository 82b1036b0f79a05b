"""Live progress on stderr: solver and fit iterations with their objective, only when asked or on a terminal."""

from __future__ import annotations

import json
import math
import re

from tiny_spec import TINY_SPEC
from typer.testing import CliRunner

from schedopt._progress import listening, remaining, report, reporting
from schedopt.cli import app

#: The line prints log L_T with 6 significant digits.
PRINTED_ATOL = 1e-5
LINE = re.compile(r"^solve: iteration (\d+), log L_T (\S+), ([\d.]+) s$")


def test_report_reaches_only_an_installed_callback():
    seen = []
    report("solve", 1, 0.5)  # nobody listening: nothing happens
    with reporting(lambda *args: seen.append(args)):
        report("solve", 2, -1.25)
    report("solve", 3, 0.0)
    assert [(s, i, v) for s, i, v, _ in seen] == [("solve", 2, -1.25)]


def test_listening_says_whether_a_callback_is_installed():
    assert not listening()
    with reporting(lambda *args: None):
        assert listening()
    assert not listening()


def test_design_progress_without_a_terminal(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    done = CliRunner().invoke(
        app, ["design", str(spec), "--no-baselines", "--out", str(tmp_path / "d"), "--json", "--progress"]
    )
    assert done.exit_code == 0, done.output
    report_json = json.loads(done.stdout)
    lines = [m.groups() for m in map(LINE.match, done.stderr.splitlines()) if m]
    assert lines, done.stderr
    final = math.log(report_json["final_loss"])
    for _, objective, _ in lines:  # every reported iterate is no better than the optimum found
        assert float(objective) >= final - PRINTED_ATOL  # printed with 6 significant digits
    quiet = CliRunner().invoke(
        app, ["design", str(spec), "--no-baselines", "--out", str(tmp_path / "q"), "--json"]
    )
    assert quiet.exit_code == 0 and "iteration" not in quiet.stderr  # not a terminal, not asked


def test_remaining_time_is_the_mean_time_per_point_times_the_points_left():
    assert remaining(0.0, 0, 5) is None  # nothing done yet: no estimate
    assert remaining(12.0, 3, None) is None  # unknown total
    assert remaining(40.0, 1, 5) == 160.0
    assert remaining(90.0, 3, 4) == 30.0
    assert remaining(90.0, 4, 4) == 0.0


def test_study_bars_show_an_eta_after_the_first_point():
    """scaling's points take minutes: rich's own column (a 30 s speed window) stayed at -:--:--."""
    from rich.progress import TimeRemainingColumn

    from schedopt.cli._report import _bar

    clock = [0.0]
    bar = _bar(disable=True, get_time=lambda: clock[0])
    task = bar.add_task("solving computes", total=5)
    eta = bar.columns[-1]
    clock[0] = 10.0
    assert eta.render(bar.tasks[0]).plain == "eta -:--:--"
    clock[0] = 40.0
    bar.update(task, completed=1)
    assert eta.render(bar.tasks[0]).plain == "eta 0:02:40"
    assert TimeRemainingColumn().render(bar.tasks[0]).plain == "-:--:--"  # what the bar showed before
    clock[0] = 100.0
    bar.update(task, completed=3)
    assert eta.render(bar.tasks[0]).plain == "eta 0:01:07"  # 100 s / 3 points x 2 left
