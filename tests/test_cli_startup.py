"""How the CLI process starts and ends: OpenBLAS threads, the exit without teardown (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "SCHEDOPT_NO_CACHE": "1"},
    )


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
