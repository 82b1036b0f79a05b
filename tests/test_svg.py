"""The design's figure as SVG (``schedopt.svg``, ``design.svg``) and ``schedopt design --figure``."""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_SPEC, fresh_process
from typer.testing import CliRunner

import schedopt
from schedopt.cli import app
from schedopt.plots import have_matplotlib
from schedopt.svg import MAX_POINTS, Panel, figure_svg, linear_ticks, log_ticks, tick_label

SVG = "{http://www.w3.org/2000/svg}"


def _points(polyline: ET.Element) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in polyline.get("points").split()])


def _axis(panel: ET.Element, which: str, log: bool):
    """The data value of a pixel along one axis, from the panel's tick lines (value and position)."""
    ticks = panel.findall(f"{SVG}line[@class='{which}tick']")
    values = np.array([float(t.get("data-value")) for t in ticks])
    pixels = np.array([float(t.get("x1" if which == "x" else "y1")) for t in ticks])
    values = np.log10(values) if log else values
    slope, offset = np.polyfit(values, pixels, 1)
    return lambda v: slope * (np.log10(v) if log else np.asarray(v)) + offset


def _panels(text: str) -> list[ET.Element]:
    root = ET.fromstring(text.encode("utf-8"))
    return root.findall(f"{SVG}g[@class='panel']")


@pytest.fixture(scope="module")
def designed():
    from schedopt.design import design

    return design(schedopt.parse_problem(TINY_SPEC), baselines=("cosine", "constant"), warmup=20)


def test_the_design_figure_draws_the_schedules_where_their_values_are(designed, tmp_path):
    from schedopt.design._figure import _schedules, svg_design

    path = tmp_path / "design.svg"
    svg_design(designed, str(path))
    panels = _panels(path.read_text(encoding="utf-8"))
    assert len(panels) == 3  # learning rates, loss curves, baselines against the optimum
    lr = panels[0]
    fx, fy = _axis(lr, "x", log=False), _axis(lr, "y", log=False)
    lines = lr.findall(f".//{SVG}polyline")
    assert [p.get("stroke") for p in lines][-1] == "black"  # the design, drawn over the baselines
    schedules = _schedules(designed)
    for polyline, values in zip(
        lines, [*list(schedules.values())[1:], next(iter(schedules.values()))], strict=True
    ):
        points = _points(polyline)
        steps = np.arange(values.size)
        # each point is one step's value (the pixel of step s is fx(s); 1.9 px per step at T = 200)
        step = np.rint((points[:, 0] - fx(0.0)) / (fx(1.0) - fx(0.0))).astype(int)
        assert np.all(np.abs(fx(steps[step]) - points[:, 0]) <= 0.1)
        assert np.all(np.abs(fy(values[step]) - points[:, 1]) <= 1.0)
    # the warmup's dotted mark, its words in the x label
    texts = [t.text for t in lr.iter(f"{SVG}text")]
    assert "step (dotted: warmup ends at 20)" in texts
    marks = [ln for ln in lr.iter(f"{SVG}line") if ln.get("stroke-dasharray")]
    assert len(marks) == 1 and abs(float(marks[0].get("x1")) - fx(20)) <= 0.1
    # the legend names every schedule, the design first, as design.png's does
    legend = texts[-len(schedules) :]
    assert legend == list(schedules)


def test_the_loss_panel_is_log_log_with_decades(designed, tmp_path):
    from schedopt.design._figure import svg_design

    path = tmp_path / "design.svg"
    svg_design(designed, str(path))
    loss = _panels(path.read_text(encoding="utf-8"))[1]
    for which in ("x", "y"):
        values = [float(t.get("data-value")) for t in loss.findall(f"{SVG}line[@class='{which}tick']")]
        assert len(values) >= 2
        exponents = np.log10(values)
        assert np.allclose(exponents, np.round(exponents)), (which, values)
    assert [float(t.get("data-value")) for t in loss.findall(f"{SVG}line[@class='xtick']")] == [1, 10, 100]


def test_log_ticks_are_decades_with_plain_labels():
    assert log_ticks(1.0, 1e4) == [1.0, 10.0, 100.0, 1000.0, 10000.0]
    assert log_ticks(0.5, 2e6) == [1.0, 10.0, 100.0, 1000.0, 1e4, 1e5, 1e6]
    many = log_ticks(1e-30, 1.0)  # 31 decades: every k-th
    assert len(many) <= 8 and all(math.log10(v).is_integer() for v in many)
    short = log_ticks(0.3, 0.9)  # under a decade: mantissas
    assert len(short) >= 3 and all(0.3 <= v <= 0.9 for v in short)
    assert log_ticks(1.3, 3.0) == [1.5, 2.0, 2.5, 3.0]  # narrower still: linear steps
    assert [tick_label(v) for v in (1e-3, 0.1, 1.0, 10.0, 1e6, 1e-7, 0.25)] == [
        "0.001",
        "0.1",
        "1",
        "10",
        "1000000",
        "1e-7",
        "0.25",
    ]


def test_linear_ticks_are_one_two_five_steps():
    assert linear_ticks(0.0, 1000.0) == [0, 200, 400, 600, 800, 1000]
    ticks = linear_ticks(0.0, 0.37)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0]) and steps[0] in (0.05, 0.1)
    assert 2 <= len(linear_ticks(-3.3, 7.9)) <= 8


def test_nonfinite_values_break_the_line_and_never_reach_the_file():
    panel = Panel("a <title> & more", "x", "y", ylog=True, ylim=(float("nan"), 1.0))
    y = np.array([1.0, 2.0, np.nan, 3.0, np.inf, -np.inf, 4.0, 5.0, 0.0, 6.0])
    panel.line(np.arange(y.size), y, label="with <gaps>")
    panel.hline(float("nan"))
    panel.vline(float("inf"))
    text = figure_svg([panel])
    assert "nan" not in text.lower() and "inf" not in text.lower()
    (g,) = _panels(text)
    runs = [_points(p) for p in g.iter(f"{SVG}polyline")]
    assert [len(r) for r in runs] == [2, 2]  # 1, 2 | 3 | 4, 5 | 6: two lines and two dots
    assert len(list(g.iter(f"{SVG}circle"))) == 2
    assert "a <title> & more" in [t.text for t in g.iter(f"{SVG}text")]


def test_a_long_line_is_decimated_keeping_its_extremes():
    steps = np.arange(1_000_000)
    values = np.sin(steps / 1000.0)
    values[123_457] = 5.0  # one spike
    panel = Panel()
    panel.line(steps, values)
    text = figure_svg([panel])
    assert len(text) < 100_000
    (polyline,) = _panels(text)[0].iter(f"{SVG}polyline")
    points = _points(polyline)
    assert 2 <= len(points) <= MAX_POINTS + 4
    fy = _axis(_panels(text)[0], "y", log=False)
    assert abs(points[:, 1].min() - fy(5.0)) <= 0.1  # the spike is kept (SVG y points down)


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_figure_formats(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC, encoding="utf-8")
    out = tmp_path / "out"
    if have_matplotlib():
        done = _run("design", spec, "--no-baselines", "--out", out, "--figure", "png", "--json")
        assert done.exit_code == 0, done.output
        plot = Path(json.loads(done.stdout)["files"]["plot"])
        assert plot == out / "design.png" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = _run("design", spec, "--no-baselines", "--out", out, "--force", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["files"]["plot"] == str(out / "design.svg")
    assert (out / "design.svg").is_file() and not (out / "design.png").exists()  # no stale figure
    ET.parse(out / "design.svg")
    done = _run("design", spec, "--no-baselines", "--out", out, "--force", "--figure", "none", "--json")
    assert done.exit_code == 0, done.output
    assert "plot" not in json.loads(done.stdout)["files"]
    assert sorted(p.name for p in out.iterdir()) == ["design.json", "schedule.csv", "schedule.json"]


def test_a_bad_figure_format_is_one_line_and_writes_nothing(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC, encoding="utf-8")
    done = _run("design", spec, "--out", tmp_path / "out", "--figure", "jpeg")
    assert done.exit_code == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "--figure" in lines[0] and "'jpeg'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_the_default_design_does_not_import_matplotlib(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC, encoding="utf-8")
    code = (
        "import sys\n"
        "from schedopt.cli import _app\n"
        "_app._leave = lambda code: print(code, 'matplotlib' in sys.modules)\n"
        "sys.argv = ['schedopt', *sys.argv[1:]]\n"
        "_app.main()\n"
    )
    args = ["design", str(spec), "--out", str(tmp_path / "out"), "--json"]
    done = fresh_process(code, *args, env={**os.environ, "SCHEDOPT_NO_CACHE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 False"
    assert (tmp_path / "out" / "design.svg").is_file()
