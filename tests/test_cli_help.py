"""Help texts render: ``-h`` works, boolean flags read ``--json/--no-json``, no text is eaten as markup."""

from __future__ import annotations

import itertools
import re

import pytest
import typer
from typer.testing import CliRunner

from schedopt.cli import app

COMMANDS = [
    "simulate",
    "design",
    "phase",
    "scaling",
    "transfer",
    "sweep",
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
    assert "<bool>" not in done.output, done.output  # typer's own --help included
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


def _help(args: list[str], columns: int) -> str:
    done = CliRunner().invoke(app, [*args, "-h"], env={"COLUMNS": str(columns)})
    assert done.exit_code == 0, done.output
    return done.output


def _option_rows(output: str) -> dict[str, str]:
    """Each option row of the help's panels: its long name -> the rest of its first line."""
    rows = {}
    for line in output.splitlines():
        cells = line.strip("│ ").lstrip("* ")
        if cells.startswith("--"):
            name, _, rest = cells.partition(" ")
            rows[name] = rest
    return rows


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_flags_print_without_a_type(command):
    """A boolean flag takes no value, so its row names none: ``--help  -h  Show this message``,
    ``--json  --no-json  Print ...``, never ``<bool>`` (typer prints it for its own --help)."""
    from schedopt.cli._app import app as the_app

    group = typer.main.get_command(the_app)
    ctx = group.make_context("schedopt", ["-h"], resilient_parsing=True)
    cmd = group if command is None else group.get_command(ctx, command)
    flags = [p for p in (*cmd.params, cmd.get_help_option(ctx)) if getattr(p, "is_flag", False)]
    assert any("--help" in p.opts for p in flags)
    for columns in (80, 200):
        rows = _option_rows(_help([] if command is None else [command], columns))
        for flag in flags:
            (name,) = [o for o in flag.opts if o.startswith("--")]
            rest = rows[name].split()
            shown = [word for word in rest if word not in flag.opts + flag.secondary_opts]
            assert shown and not shown[0].startswith("<"), (name, rows[name])


def _description(output: str) -> list[list[str]]:
    """The paragraphs of the text between the usage line and the first panel, as their lines."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    paragraphs, current = [], []
    for line in lines[start:end]:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append(current)
            current = []
    return paragraphs + ([current] if current else [])


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_renders_at_80_columns(command):
    """At 80 columns no line is longer, no sentence breaks where the next word would have fit
    (a docstring's own line breaks kept inside a paragraph: ``... stay fixed; the`` / ``solver ...``),
    and an example's continuation line (after a trailing backslash) is indented under it."""
    output = _help([] if command is None else [command], 80)
    assert max(len(line) for line in output.splitlines()) <= 80
    for paragraph in _description(output):
        if paragraph[0].strip().startswith("Example:"):
            for line, following in itertools.pairwise(paragraph):
                if line.endswith("\\"):
                    assert following.startswith("     "), paragraph
                assert len(line) <= 78, paragraph  # a command line does not wrap
            continue
        for line, following in itertools.pairwise(paragraph):
            next_word = following.split()[0]
            assert len(line) + 1 + len(next_word) > 78, (line, following)
