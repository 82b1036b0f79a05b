"""How the CLI process starts and ends: OpenBLAS threads, the exit without teardown (issue 13)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import TINY_SPEC, fresh_process

from schedopt.cli._app import GC_THRESHOLDS, _one_blas_thread


def test_the_cli_runs_openblas_on_one_thread_by_default():
    env: dict[str, str] = {}
    _one_blas_thread(env)
    assert env == {"OPENBLAS_NUM_THREADS": "1"}


@pytest.mark.parametrize("name", ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"])
def test_a_thread_count_the_user_set_is_kept(name):
    env = {name: "4"}
    _one_blas_thread(env)
    assert env == {name: "4"}


def test_an_empty_setting_counts_as_unset():
    env = {"OPENBLAS_NUM_THREADS": ""}
    _one_blas_thread(env)
    assert env == {"OPENBLAS_NUM_THREADS": "1"}


def test_the_cli_collects_garbage_less_often():
    done = _cli(
        "import gc, sys\n"
        "from schedopt.cli import _app\n"
        "_app._leave = lambda code: print(gc.get_threshold())\n"
        "sys.argv = ['schedopt', '--help']\n"
        "_app.main()\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(GC_THRESHOLDS)


def _cli(code: str, *args: str) -> subprocess.CompletedProcess:
    return fresh_process(code, *args, env={**os.environ, "SCHEDOPT_NO_CACHE": "1"}, timeout=300)


def test_the_cli_ends_with_its_exit_code_after_the_exit_handlers():
    done = _cli(
        "import atexit, sys\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "from schedopt.cli import main\n"
        "sys.argv = ['schedopt', *sys.argv[1:]]\n"
        "main()\n",
        "--no-such-option",
    )
    assert done.returncode == 2
    assert done.stdout == "handler ran\n"
    assert "--no-such-option" in done.stderr


def test_the_cli_waits_for_a_running_non_daemon_thread(tmp_path):
    marker = tmp_path / "finished"
    done = _cli(
        "import sys, threading, time\n"
        "from pathlib import Path\n"
        "marker = Path(sys.argv[1])\n"
        "def work():\n"
        "    time.sleep(0.5)\n"
        "    marker.write_text('done')\n"
        "threading.Thread(target=work).start()\n"
        "from schedopt.cli import main\n"
        "sys.argv = ['schedopt', '--version']\n"
        "main()\n",
        str(marker),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("schedopt ")
    assert marker.read_text() == "done"


def test_plain_option_values_are_coerced_without_pydantic(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC, encoding="utf-8")
    done = _cli(
        "import sys\n"
        "from schedopt.cli import _app\n"
        "_app._leave = lambda code: print(code, sorted(m for m in sys.modules if m.startswith('pydantic')))\n"
        "sys.argv = ['schedopt', *sys.argv[1:]]\n"
        "_app.main()\n",
        *[
            "simulate",
            str(spec),
            "--schedule",
            "cosine:0.3",
            "--horizon",
            "100",
            "--checkpoints",
            "5",
            "--json",
        ],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


VALUES = ["5", "+5", "-0", "007", "1e3", ".5", "5.", "-2.5E-3", "1e400", "nan", "1_000", " 5", "abc", "", "٣"]


@pytest.mark.parametrize("value", VALUES)
def test_plain_coercion_gives_what_typer_gives(value, tmp_path, monkeypatch):
    """The same values (type included) or the same error as typer's own coercion, for every kind."""
    import typer
    import typer.core
    from typer.testing import CliRunner

    import schedopt.cli  # noqa: F401  (installs the plain coercion)

    demo = typer.Typer()

    @demo.command()
    def show(
        i: int | None = None, f: float | None = None, s: str = "x", p: Path | None = None, q: Path = Path("q")
    ) -> None:
        print(repr((i, f, s, p, q)))

    def outcomes():
        got = []
        for option in ("--i", "--f", "--s", "--p", "--q"):
            result = CliRunner().invoke(demo, [option, value])
            got.append((result.exit_code, result.output))
        return got

    plain = typer.core.build_runtime_param
    assert plain.schedopt_plain
    fast = outcomes()
    monkeypatch.setattr(typer.core, "build_runtime_param", plain.typer_own)
    assert fast == outcomes()
