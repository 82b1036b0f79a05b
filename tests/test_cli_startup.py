"""How the CLI process starts: OpenBLAS threads (issue 13)."""

from __future__ import annotations

import pytest

from schedopt.cli._app import _one_blas_thread


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
