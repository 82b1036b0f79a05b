"""Help texts render: ``-h`` works, boolean flags read ``--json/--no-json``, no text is eaten as markup."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from schedopt.cli import app

COMMANDS = [
    "simulate",
    "design",
    "phase",
    "scaling",
    "transfer",
    "compare",
    "fit",
    "pilots",
    "export",
    "recommend",
    "plot",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_dash_h_and_clean_flags(command):
    done = CliRunner().invoke(app, [command, "-h"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "Usage: schedopt " + command in done.output
    lines = [line for line in done.output.splitlines() if "<bool>" in line]
    assert all("--help" in line for line in lines), lines  # only typer's own --help keeps it
    listed = [line for line in done.output.splitlines() if "<list[" in line]
    assert not listed, listed  # a repeatable option names its value (FAMILY, KEY=RANGE), a file list FILE...
    if "--json" in done.output:
        assert re.search(r"--json\s+--no-json", done.output)


def test_export_help_shows_the_indexing_it_documents():
    done = CliRunner().invoke(app, ["export", "-h"], env={"COLUMNS": "200"})
    assert "index min(t, T - 1)" in " ".join(done.output.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_help_examples_run_after_pip_install(command):
    """An example names a shipped problem by name, not by its path in the source tree."""
    done = CliRunner().invoke(app, [command, "-h"], env={"COLUMNS": "200"})
    example = next((line for line in done.output.splitlines() if "Example:" in line), "")
    assert "problems/" not in example, example
